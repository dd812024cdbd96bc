"""Samplers for masked (absorbing-state) diffusion: ancestral with caching, and first-hitting.

Both take ``logits_fn(state, t, ctx) -> {leaf: logits [B, ..., K_leaf]}``: the network's
prediction of the clean token at every position, over the leaf's K real categories (MDLM's
SUBS parameterization; see :mod:`genmodels.processes.masked`). Every leaf of the state is an
int32 token leaf driven by a :class:`~genmodels.processes.masked.MaskedDiffusion`; the
unpadded tokens of all leaves (e.g. atom tokens [B, N] and upper-triangle edge tokens [B, E])
form one sequence of positions. Tokens already unmasked are never changed ("carry-over").

Categorical draws go through :func:`genmodels.core.precision.categorical`: float64-grade by
default (Zheng et al. 2024: float32 Gumbel noise is truncated, which lowers the
effective temperature), ``precision=jnp.float32`` for the truncated float32 behaviour. The
ancestral sampler's ``draw="joint"`` makes MDLM's single draw over the K classes and the
mask (:func:`genmodels.core.precision.categorical_race`; in float32 exactly MDLM's noise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from genmodels.core.grids import uniform_grid
from genmodels.core.masks import apply_masks, get_mask
from genmodels.core.precision import categorical, categorical_race
from genmodels.core.types import Array, ConstrainFn, Context, State, identity_constrain
from genmodels.processes.base import prior_state

#: ``logits_fn(state, t, ctx) -> {leaf: [B, ..., K_leaf] logits}``; ``t`` is [B].
LogitsFn = Callable[[State, Array, Context], State]


def _check_processes(processes: Mapping[str, Any]) -> list[str]:
    names = sorted(processes)
    if not names:
        raise ValueError("processes is empty")
    for k in names:
        p = processes[k]
        if p.kind != "masked":
            raise TypeError(f"leaf {k!r}: the masked samplers need MaskedDiffusion processes")
    return names


def _real(ctx: Context, key: str, shape: tuple[int, ...]) -> Array:
    """bool [B, ...]: True on unpadded tokens of leaf ``key``."""
    m = get_mask(ctx, key)
    if m is None:
        return jnp.ones(shape, bool)
    return jnp.broadcast_to(m, shape) > 0


def _logits(logits_fn: LogitsFn, names, state: State, t: Array, ctx: Context) -> State:
    out = logits_fn(state, t, ctx)
    return {k: jnp.asarray(out[k], jnp.float32) for k in names}


#: the ancestral sampler's per-step draws; the first is the default
ANCESTRAL_DRAWS = ("split", "joint")


def ancestral_update(
    key: Array,
    x: Array,
    logits: Array,
    m_t: Array,
    m_s: Array,
    *,
    mask_id: int,
    precision=jnp.float64,
    draw: str = "split",
) -> Array:
    """One ancestral step ``t -> s`` of the masked tokens of ``x`` (unmasked ones are kept).

    The reverse kernel of a masked token (MDLM eq. 7 with SUBS, MD4) is, with
    ``m = 1 - alpha`` the mask probability and ``p = softmax(logits)``,

        q(x_s = k | x_t = mask) = p_k (m_t - m_s) / m_t,   q(x_s = mask | ...) = m_s / m_t.

    ``draw="split"``: an unmask test ``u < (m_t - m_s) / m_t`` and an independent K-way
    draw from ``p`` (:func:`~genmodels.core.precision.categorical`). ``draw="joint"``: one
    draw over the K + 1 weights ``(p (m_t - m_s), m_s)`` (MDLM's ``_ddpm_update``, the
    ``1/m_t`` dropped), by :func:`~genmodels.core.precision.categorical_race`: with
    ``precision=jnp.float32`` MDLM's float32 noise, whose truncation then also acts on the
    mask-vs-class competition. Both have the same exact law.

    Args:
      key: PRNG key.
      x: [B, ...] int32 tokens, ``mask_id`` where masked.
      logits: [B, ..., K] the network's clean-token logits.
      m_t, m_s: scalar mask probabilities ``1 - alpha`` at ``t > s`` (``m_s = 0`` unmasks
        every token).
      mask_id: the mask token (K for the SUBS layout).
      precision: ``jnp.float64`` or ``jnp.float32`` categorical draws.
      draw: ``"split"`` or ``"joint"``.

    Returns:
      [B, ...] int32 tokens.
    """
    k_u, k_c = jax.random.split(key)
    is_mask = x == mask_id  # [B, ...]
    if draw == "split":
        # (alpha_s - alpha_t) / (1 - alpha_t), exactly 1 on the last step (m_s = 0).
        p_unmask = (m_t - m_s) / m_t
        unmask = is_mask & (jax.random.uniform(k_u, x.shape) < p_unmask)
        drawn = categorical(k_c, logits, axis=-1, precision=precision)  # [B, ...]
        return jnp.where(unmask, drawn, x)
    if draw != "joint":
        raise ValueError(f"unknown draw {draw!r}; choose one of {ANCESTRAL_DRAWS}")
    vocab = logits.shape[-1]
    log_cls = jax.nn.log_softmax(logits, axis=-1) + jnp.log(m_t - m_s)  # [B, ..., K]
    log_stay = jnp.broadcast_to(jnp.log(m_s), (*x.shape, 1)).astype(log_cls.dtype)
    lw = jnp.concatenate([log_cls, log_stay], axis=-1)  # [B, ..., K + 1]; -inf at m_s = 0
    drawn = categorical_race(k_c, lw, axis=-1, precision=precision)  # [B, ...], K = stay
    return jnp.where(is_mask & (drawn < vocab), drawn, x)


def _stack_trajectory(first: State, rest: State) -> State:
    """Prepend the initial state: leaves [S, B, ...] -> [S + 1, B, ...]."""
    return {k: jnp.concatenate([first[k][None], rest[k]], axis=0) for k in first}


def ancestral_sample(
    logits_fn: LogitsFn,
    processes: Mapping[str, Any],
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    steps: int = 128,
    precision=jnp.float64,
    draw: str = "split",
    cache: bool = True,
    constrain: ConstrainFn = identity_constrain,
    return_trajectory: bool = False,
) -> tuple[State, dict[str, Any]]:
    """Ancestral sampling of masked diffusion on ``steps`` uniform steps from t = 1 to 0.

    On the step ``t -> s`` every masked token is unmasked with probability
    ``(alpha(s) - alpha(t)) / (1 - alpha(t))`` and then takes a category drawn from
    ``softmax(logits)`` at its position (the reverse kernel of MDLM Sec. 3 / MD4's
    ``ancestral_sample_step``); the last step (s = 0, alpha = 1) unmasks everything.
    :func:`ancestral_update` makes the step, as an unmask test and a K-way draw
    (``draw="split"``) or as MDLM's one draw over K + 1 classes (``draw="joint"``).
    Tokens unmasked in the same step are drawn independently given the current state, the
    discretization error of this sampler, which vanishes as ``steps`` grows.

    Caching (MDLM's ``ddpm_cache`` predictor): when no token changed since the last network
    call, the call is skipped (``lax.cond``) and the cached logits are reused, so the number
    of network evaluations is dynamic: at most ``min(steps, 1 + number of steps that changed
    a token)``;
    the skip is decided for the whole batch (the call is batched), so it pays off when
    ``steps`` is large compared with the tokens of the batch. For a time-agnostic network
    (MDLM's default, no time conditioning) this is exact. For a time-conditioned network
    the cache reuses logits computed at an earlier time of the same, unchanged, state; MDLM
    disables its cache in that case, and ``cache=False`` does the same here.

    Cost: a category is drawn at every position on every step (static shapes), i.e. K
    Gumbel variates per position per step (2K random words at float64 grade); the
    first-hitting sampler draws one category per step.

    Args:
      logits_fn: ``(state, t [B], ctx) -> {leaf: logits [B, ..., K_leaf]}``.
      processes: leaf -> ``MaskedDiffusion`` (each leaf uses its own schedule).
      ctx: context; ``ctx["masks"]`` marks padding (padded tokens stay exactly 0).
      key: PRNG key.
      shapes: leaf -> full token shape [B, ...].
      steps: number of steps T (MDLM's default sampling.steps is 128).
      precision: ``jnp.float64`` (default) or ``jnp.float32`` categorical sampling.
      draw: ``"split"`` (default) or ``"joint"`` (:func:`ancestral_update`).
      cache: skip network calls when the state did not change.
      constrain: domain hook applied after every step.
      return_trajectory: also return the states after every step.

    Returns:
      ``(state, info)``: int32 tokens with no mask left; ``info["nfe"]`` (int32 scalar,
      the number of network calls) and, with ``return_trajectory``,
      ``info["trajectory"]`` (leaf -> [T + 1, B, ...]) and ``info["times"]`` [T + 1].
    """
    names = _check_processes(processes)
    if draw not in ANCESTRAL_DRAWS:
        raise ValueError(f"unknown draw {draw!r}; choose one of {ANCESTRAL_DRAWS}")
    k_prior, k_loop = jax.random.split(key)
    state = prior_state(processes, k_prior, shapes, ctx)
    state = constrain(apply_masks(state, ctx), ctx)
    batch = int(shapes[names[0]][0])
    times = uniform_grid(steps)  # [T + 1], 1 -> 0
    cached0 = {k: jnp.zeros((*shapes[k], processes[k].vocab_size), jnp.float32) for k in names}

    def step(carry, inp):
        state, cached, dirty, nfe = carry
        i, t, s = inp
        tb = jnp.full((batch,), t, jnp.float32)

        def call(_):
            return _logits(logits_fn, names, state, tb, ctx)

        if cache:
            logits = lax.cond(dirty, call, lambda _: cached, None)
            nfe = nfe + dirty.astype(jnp.int32)
        else:
            logits = call(None)
            nfe = nfe + 1
        step_key = jax.random.fold_in(k_loop, i)
        new = {}
        for j, k in enumerate(names):
            proc = processes[k]
            m_t, m_s = proc.schedule.mask_prob(t), proc.schedule.mask_prob(s)
            kw = dict(mask_id=proc.mask_id, precision=precision, draw=draw)
            new[k] = ancestral_update(
                jax.random.fold_in(step_key, j), state[k], logits[k], m_t, m_s, **kw
            )  # [B, ...]
        new = constrain(apply_masks(new, ctx), ctx)
        changed = jnp.any(jnp.stack([jnp.any(new[k] != state[k]) for k in names]))
        return (new, logits, changed, nfe), (new if return_trajectory else None)

    inputs = (jnp.arange(steps), times[:-1], times[1:])
    carry0 = (state, cached0, jnp.asarray(True), jnp.asarray(0, jnp.int32))
    (final, _, _, nfe), traj = lax.scan(step, carry0, inputs)
    info: dict[str, Any] = {"nfe": nfe}
    if return_trajectory:
        info["trajectory"] = _stack_trajectory(state, traj)
        info["times"] = times
    return final, info


def first_hitting_sample(
    logits_fn: LogitsFn,
    processes: Mapping[str, Any],
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    precision=jnp.float64,
    constrain: ConstrainFn = identity_constrain,
    return_trajectory: bool = False,
) -> tuple[State, dict[str, Any]]:
    """First-hitting sampler (FHS; Zheng et al. 2024): one token per network call.

    In the absorbing process each token has its own masking time, and given the state at
    time t the n masked tokens' times are i.i.d. with CDF ``(1 - alpha(s)) / (1 - alpha(t))``
    on ``[0, t]``. The next unmasking (first hitting) time is their maximum, drawn exactly as

        1 - alpha(t_next) = (1 - alpha(t)) u^(1/n),   u ~ U(0, 1)

    (``t_next = t u^(1/n)`` for the linear schedule, ``(2/pi) arcsin(sin(pi t/2) u^(1/n))``
    for the cosine one); the unmasked position is uniform among the masked ones and its
    category is drawn from the network's distribution at that position, evaluated at
    ``(state, t_next)``. No time discretization is involved: with an exact (time-agnostic)
    model the samples follow the model's joint exactly, with exactly L network calls for L
    tokens.

    Batching and padding: each step unmasks one token of every unfinished example. The loop
    runs ``L_max`` steps, the largest number of unpadded tokens in the batch (a dynamic trip
    count), and examples with fewer tokens are no-ops once they are done (their time stays
    where it stopped). ``info["nfe"] = L_max``.

    Args:
      logits_fn: ``(state, t [B], ctx) -> {leaf: logits [B, ..., K_leaf]}``.
      processes: leaf -> ``MaskedDiffusion``; all leaves must share one schedule (the
        hitting time is drawn for the union of their positions).
      ctx: context; ``ctx["masks"]`` marks padding (padded tokens stay exactly 0).
      key: PRNG key.
      shapes: leaf -> full token shape [B, ...].
      precision: ``jnp.float64`` (default) or ``jnp.float32`` categorical sampling.
      constrain: domain hook applied after every step.
      return_trajectory: also return the states after every step.

    Returns:
      ``(state, info)``: int32 tokens with no mask left; ``info["nfe"]`` (int32 scalar,
      ``L_max``) and, with ``return_trajectory``, ``info["trajectory"]``
      (leaf -> [P + 1, B, ...] with P the number of positions per example; entries after
      step ``L_max`` repeat the final state) and ``info["times"]`` [P + 1, B].
    """
    names = _check_processes(processes)
    schedule = processes[names[0]].schedule
    if any(processes[k].schedule != schedule for k in names):
        raise ValueError("first_hitting_sample needs one schedule shared by all leaves")
    k_prior, k_loop = jax.random.split(key)
    state = prior_state(processes, k_prior, shapes, ctx)
    state = constrain(apply_masks(state, ctx), ctx)
    batch = int(shapes[names[0]][0])
    sizes = [math.prod(shapes[k][1:]) for k in names]  # positions per example, per leaf
    offsets = [sum(sizes[:j]) for j in range(len(names))]
    total = sum(sizes)
    real = jnp.concatenate(
        [_real(ctx, k, tuple(shapes[k])).reshape(batch, -1) for k in names], axis=1
    )  # [B, P]
    n_steps = jnp.max(jnp.sum(real, axis=1)).astype(jnp.int32)  # L_max

    def masked_flat(state: State) -> Array:
        flat = [state[k].reshape(batch, -1) == processes[k].mask_id for k in names]
        return jnp.concatenate(flat, axis=1) & real  # [B, P]

    def body(i, carry):
        state, t, traj, traj_t = carry
        is_m = masked_flat(state)  # [B, P]
        n = jnp.sum(is_m, axis=1)  # [B]
        active = n > 0
        step_key = jax.random.fold_in(k_loop, i)
        k_t, k_pos, k_cat = jax.random.split(step_key, 3)
        # u > 0 keeps t_next > 0 while tokens remain masked.
        u = jax.random.uniform(k_t, (batch,), minval=jnp.finfo(jnp.float32).tiny)
        m_next = schedule.mask_prob(t) * u ** (1.0 / jnp.maximum(n, 1))
        t_next = jnp.where(active, schedule.mask_prob_inverse(m_next), t).astype(jnp.float32)
        logits = _logits(logits_fn, names, state, t_next, ctx)
        # The (r+1)-th masked position, r uniform in [0, n): exactly uniform, no ties.
        r = jax.random.randint(k_pos, (batch,), 0, jnp.maximum(n, 1))
        hit = is_m & (jnp.cumsum(is_m, axis=1) == (r + 1)[:, None])  # [B, P]
        pos = jnp.argmax(hit, axis=1)  # [B]
        new = {}
        for j, k in enumerate(names):
            size, vocab = sizes[j], processes[k].vocab_size
            local = pos - offsets[j]
            in_leaf = active & (local >= 0) & (local < size)  # [B]
            idx = jnp.clip(local, 0, size - 1)
            lg = logits[k].reshape(batch, size, vocab)
            lg = jnp.take_along_axis(lg, idx[:, None, None], axis=1)[:, 0]  # [B, K]
            drawn = categorical(jax.random.fold_in(k_cat, j), lg, precision=precision)  # [B]
            flat = state[k].reshape(batch, size)
            put = in_leaf[:, None] & (jnp.arange(size)[None] == idx[:, None])  # [B, size]
            new[k] = jnp.where(put, drawn[:, None], flat).reshape(state[k].shape)
        new = constrain(apply_masks(new, ctx), ctx)
        if return_trajectory:
            traj = {k: traj[k].at[i + 1].set(new[k]) for k in names}
            traj_t = traj_t.at[i + 1].set(t_next)
        return new, t_next, traj, traj_t

    t0 = jnp.ones((batch,), jnp.float32)
    if return_trajectory:
        traj0 = {k: jnp.broadcast_to(state[k], (total + 1, *state[k].shape)) for k in names}
        traj_t0 = jnp.broadcast_to(t0, (total + 1, batch))
    else:
        traj0, traj_t0 = {}, jnp.zeros((), jnp.float32)
    final, t_final, traj, traj_t = lax.fori_loop(0, n_steps, body, (state, t0, traj0, traj_t0))
    info: dict[str, Any] = {"nfe": n_steps}
    if return_trajectory:
        after = jnp.arange(total + 1) > n_steps  # [P + 1]: slots never written
        info["trajectory"] = {
            k: jnp.where(after.reshape((-1,) + (1,) * final[k].ndim), final[k][None], traj[k])
            for k in names
        }
        info["times"] = jnp.where(after[:, None], t_final[None], traj_t)
    return final, info


#: sampler names of :func:`masked_sample`; the first is the default
MASKED_SAMPLERS = ("fhs", "ancestral")


def masked_sample(
    logits_fn: LogitsFn,
    processes: Mapping[str, Any],
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    sampler: str = "fhs",
    steps: int = 128,
    precision=jnp.float64,
    draw: str = "split",
    time_conditioning: bool = False,
    constrain: ConstrainFn = identity_constrain,
) -> tuple[State, dict[str, Any]]:
    """A masked-diffusion sampler by name, as every masked-diffusion method calls it.

    ``"fhs"``: :func:`first_hitting_sample` (``steps`` unused); ``"ancestral"``:
    :func:`ancestral_sample` on ``steps`` uniform steps, with MDLM's logit cache only for a
    time-agnostic network (the cache reuses logits of an unchanged state computed at an
    earlier time: exact only when the network ignores ``t``; MDLM disables it otherwise).

    Args:
      logits_fn, processes, ctx, key, shapes, precision, constrain: as for both samplers.
      sampler: ``"fhs"`` or ``"ancestral"``.
      steps: ancestral steps.
      draw: the ancestral step's draw, ``"split"`` or ``"joint"`` (:func:`ancestral_update`).
      time_conditioning: whether ``logits_fn`` reads ``t``.

    Returns:
      ``(state, info)`` of the chosen sampler.
    """
    if sampler == "fhs":
        return first_hitting_sample(
            logits_fn, processes, ctx, key, shapes=shapes, precision=precision, constrain=constrain
        )
    if sampler == "ancestral":
        return ancestral_sample(
            logits_fn,
            processes,
            ctx,
            key,
            shapes=shapes,
            steps=steps,
            precision=precision,
            draw=draw,
            cache=not time_conditioning,
            constrain=constrain,
        )
    raise ValueError(
        f"unknown masked-diffusion sampler {sampler!r}; choose one of {MASKED_SAMPLERS}"
    )
