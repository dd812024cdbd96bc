"""Predictor-corrector sampling of a system of score SDEs, and GDSS's S4 solver.

Song et al. 2021 (score SDE), Algorithms 1-5: a predictor integrates the reverse-time SDE
(eq. 6) or the probability-flow ODE (eq. 13) by one step, a corrector runs Langevin MCMC
at the current time. GDSS (Jo et al. 2022, Sec. 3.3 and harryjo97/GDSS ``solver.py``)
extends it to a *system* of SDEs, one per state leaf (node features under one SDE,
adjacency under another): every leaf is updated simultaneously from one network call
that returns the scores of all leaves at the current state. This module follows GDSS's
``get_pc_sampler`` and ``S4_solver``:

- time grid ``linspace(T, eps, steps)`` (``steps`` points) and Euler step ``dt = -T/steps``;
- at each time: the corrector (``n_steps`` Langevin steps), then the predictor;
- ``denoise=True`` returns the predictor's last mean (no noise added at the last step);
- SDEs that carry a discretization size ``N`` are re-discretized to ``N = steps`` (GDSS and
  score_sde always sample with ``steps = sde.N``; the DDPM/SMLD tables of the
  reverse-diffusion predictor and the corrector's ``alpha`` depend on it).

Padding: scores and noise are masked with ``ctx["masks"]`` and after every update the
state becomes ``constrain(apply_masks(state, ctx), ctx)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from genmodels.core.masks import apply_masks
from genmodels.core.types import Array, ConstrainFn, Context, State, identity_constrain
from genmodels.processes.base import prior_state
from genmodels.processes.sde import VPSDE, subVPSDE

ScoreFn = Callable[[State, Array, Context], State]


def _bcast(v: Array, x: Array) -> Array:
    v = jnp.asarray(v, x.dtype)
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


# ------------------------------------------------------------------------------------
# Predictors and corrector (small frozen dataclasses instead of string flags)
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EulerMaruyama:
    """Euler-Maruyama step of the reverse SDE (GDSS ``EulerMaruyamaPredictor``):
    ``x_mean = x + [f - g^2 score] dt``, ``x = x_mean + g sqrt(-dt) z`` (``dt < 0``)."""

    def step(self, process, x, score, t, dt, z, probability_flow):
        drift, g = process.reverse_sde(x, t, score, probability_flow)
        x_mean = x + drift * dt
        return x_mean + _bcast(g, x) * math.sqrt(-dt) * z, x_mean


@dataclass(frozen=True)
class ReverseDiffusion:
    """Reverse-diffusion step (Song et al. 2021, App. E; GDSS ``ReverseDiffusionPredictor``)
    on the process's DDPM/SMLD discretization: ``x_mean = x - (f - G^2 score)``,
    ``x = x_mean + G z``."""

    def step(self, process, x, score, t, dt, z, probability_flow):
        del dt
        rev_f, rev_g = process.reverse_discretize(x, t, score, probability_flow)
        x_mean = x - rev_f
        return x_mean + _bcast(rev_g, x) * z, x_mean


@dataclass(frozen=True)
class LangevinCorrector:
    """Langevin corrector (Song et al. 2021, Algorithms 4-5; GDSS ``LangevinCorrector``).

    Step size ``eps = 2 alpha (snr ||z|| / ||score||)^2`` and update
    ``x_mean = x + eps score``, ``x = x_mean + sqrt(2 eps) * scale_eps * z``, where
    ``alpha = process.corrector_alpha(t)`` (``1 - beta_i`` for VP-type SDEs, 1 for VE).

    Args:
      snr: target signal-to-noise ratio (GDSS default 0.1).
      scale_eps: multiplies the injected noise (GDSS's ``scale_eps``; 1 is plain Langevin).
      n_steps: corrector steps per time step (one network call each). Every step moves all
        leaves together from one call; for ``n_steps > 1`` GDSS instead runs the feature
        steps with the adjacency fixed and then the adjacency steps (same for 1 step).
      per_example: ``False`` (default) is GDSS/score_sde exactly: the per-example norms
        are averaged over the batch, one step size for the whole batch (times ``alpha``).
        ``True`` uses each example's own norms, so a sample does not depend on the rest of
        the batch, but the step then depends on the state (``eps ~ 1/||score(x)||^2``):
        without the matching drift correction Langevin is biased away from the modes.
        That is negligible for examples with many entries but large for small ones
        (components ~12 % too wide with 16 entries per example and snr 0.1).
    """

    snr: float = 0.1
    scale_eps: float = 1.0
    n_steps: int = 1
    per_example: bool = False

    def step_size(self, process, score: Array, z: Array, t: Array) -> Array:
        """Per-example step size [B] of one Langevin step for one leaf."""
        b = score.shape[0]
        g_norm = jnp.linalg.norm(score.reshape(b, -1), axis=-1)  # [B]
        z_norm = jnp.linalg.norm(z.reshape(b, -1), axis=-1)  # [B]
        if not self.per_example:
            g_norm = jnp.broadcast_to(jnp.mean(g_norm), (b,))
            z_norm = jnp.broadcast_to(jnp.mean(z_norm), (b,))
        alpha = process.corrector_alpha(t)  # [B]: 1 - beta_i (VP-type), else 1
        # A fully padded example has zero norms: take no step instead of 0/0.
        safe = jnp.where(g_norm > 0, g_norm, 1.0)
        return jnp.where(g_norm > 0, 2.0 * alpha * (self.snr * z_norm / safe) ** 2, 0.0)

    def update(self, process, x: Array, score: Array, t: Array, z: Array):
        """One Langevin step for one leaf. Returns ``(x, x_mean)``."""
        step = _bcast(self.step_size(process, score, z, t), x)
        x_mean = x + step * score
        return x_mean + jnp.sqrt(2.0 * step) * z * self.scale_eps, x_mean


# ------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------


def _check_discretization(processes: Mapping[str, Any], steps: int) -> None:
    """Reverse diffusion and the Langevin corrector use the DDPM betas ``beta(t)/N``: with
    ``N = steps`` too small they reach 1 and ``sqrt(1 - beta)`` is NaN; say so instead."""
    for name, p in processes.items():
        beta_max = p.beta_max if isinstance(p, VPSDE | subVPSDE) else None
        if beta_max is not None and beta_max / steps >= 1.0:
            raise ValueError(
                f"leaf {name!r}: {steps} steps give a discrete beta of {beta_max / steps:.3g} >= 1 "
                f"for beta_max={beta_max}; use more than {int(beta_max)} steps with the "
                "reverse-diffusion predictor or the Langevin corrector"
            )


def _with_steps(processes: Mapping[str, Any], steps: int) -> dict[str, Any]:
    """Re-discretize every process that has an ``N`` field to ``N = steps``."""
    out = {}
    for k, p in processes.items():
        if dataclasses.is_dataclass(p) and "N" in {f.name for f in dataclasses.fields(p)}:
            p = dataclasses.replace(p, N=steps) if p.N != steps else p
        out[k] = p
    return out


def _end_time(processes: Mapping[str, Any]) -> float:
    ts = {float(getattr(p, "T", 1.0)) for p in processes.values()}
    if len(ts) != 1:
        raise ValueError(f"all processes must share one end time T, got {sorted(ts)}")
    return ts.pop()


def _batch_size(shapes: Mapping[str, tuple[int, ...]]) -> int:
    sizes = {int(s[0]) for s in shapes.values()}
    if len(sizes) != 1:
        raise ValueError(f"all leaves must share the batch size, got {sorted(sizes)}")
    return sizes.pop()


def _noises(key: Array, like: State, count: int) -> State:
    """``count`` independent standard normal draws per leaf, leaf -> [count, *shape].

    One ``jax.random.normal`` call per step for all leaves and sub-steps: every separate
    call adds its own PRNG kernel to the compiled loop body.
    """
    names = sorted(like)
    sizes = [math.prod(like[n].shape) for n in names]
    flat = jax.random.normal(key, (count, sum(sizes)), jnp.float32)
    out, offset = {}, 0
    for n, size in zip(names, sizes):
        chunk = flat[:, offset : offset + size]
        out[n] = chunk.reshape((count,) + like[n].shape).astype(like[n].dtype)
        offset += size
    return out


def _pick(noise: State, i: int, ctx: Context) -> State:
    """Draw ``i`` of ``_noises``, zero on padding."""
    return apply_masks({n: v[i] for n, v in noise.items()}, ctx)


def _masked_field(score_fn: ScoreFn, keys, ctx: Context) -> Callable[[State, Array], State]:
    """The network's scores for the state's leaves, zero on padding (the network's values
    there are meaningless and must not enter the corrector's norms)."""

    def field(x: State, t: Array) -> State:
        s = score_fn(x, t, ctx)
        return apply_masks({k: s[k] for k in keys}, ctx)

    return field


def _finish(x: State, ctx: Context, constrain: ConstrainFn) -> State:
    return constrain(apply_masks(x, ctx), ctx)


def _initial_state(processes, key, shapes, ctx, constrain) -> State:
    return _finish(prior_state(processes, key, shapes, ctx), ctx, constrain)


# ------------------------------------------------------------------------------------
# Samplers
# ------------------------------------------------------------------------------------


def pc_sample(
    score_fn: ScoreFn,
    processes: Mapping[str, Any],
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    steps: int = 1000,
    predictor: EulerMaruyama | ReverseDiffusion = EulerMaruyama(),
    corrector: LangevinCorrector | None = None,
    eps: float = 1e-3,
    denoise: bool = True,
    probability_flow: bool = False,
    constrain: ConstrainFn = identity_constrain,
    return_trajectory: bool = False,
) -> tuple[State, dict[str, Any]]:
    """Predictor-corrector sampler for a system of SDEs (GDSS ``get_pc_sampler``).

    Args:
      score_fn: ``score_fn(state, t [B], ctx) -> dict`` of scores, one per leaf.
      processes: leaf name -> SDE (``genmodels.processes.sde``); each leaf has its own.
      ctx: context; ``ctx["masks"]`` holds padding masks.
      key: PRNG key.
      shapes: leaf name -> full shape, batch first.
      steps: number of time steps (grid ``linspace(T, eps, steps)``).
      predictor: ``EulerMaruyama()`` or ``ReverseDiffusion()``.
      corrector: ``LangevinCorrector(...)`` or ``None``.
      eps: last time of the grid (GDSS/score_sde: 1e-3).
      denoise: return the last predictor mean instead of the noisy last sample.
      probability_flow: integrate the probability-flow ODE with the predictor (no noise).
      constrain: domain hook applied (after masking) after every update.
      return_trajectory: also return the state after every time step.

    Returns:
      ``(state, info)``; ``info["nfe"] = steps * (1 + corrector.n_steps)`` network calls
      (``steps`` without a corrector), ``info["trajectory"]`` leaf -> [steps, B, ...] if
      requested.
    """
    procs = _with_steps(processes, steps)
    big_t = _end_time(procs)
    b = _batch_size(shapes)
    field = _masked_field(score_fn, list(procs), ctx)
    dt = -big_t / steps  # GDSS: dt = -1/N with N = steps

    k_prior, k_loop = jax.random.split(key)
    x0 = _initial_state(procs, k_prior, shapes, ctx, constrain)
    times = jnp.linspace(big_t, eps, steps)  # [steps]

    n_corr = corrector.n_steps if corrector is not None else 0
    if n_corr or isinstance(predictor, ReverseDiffusion):
        _check_discretization(procs, steps)

    def corrector_step(x: State, z: State, t: Array) -> State:
        score = field(x, t)
        z = apply_masks(z, ctx)
        new = {n: corrector.update(procs[n], x[n], score[n], t, z[n])[0] for n in procs}
        return _finish(new, ctx, constrain)

    def body(carry, inp):
        x, _ = carry
        t_scalar, k = inp
        t = jnp.full((b,), t_scalar, jnp.float32)  # [B]
        noise = _noises(k, x, n_corr + 1)  # leaf -> [n_corr + 1, B, ...]
        if n_corr:
            x, _ = jax.lax.scan(
                lambda xc, zc: (corrector_step(xc, zc, t), None),
                x,
                {n: v[:n_corr] for n, v in noise.items()},
            )
        score = field(x, t)
        z = _pick(noise, n_corr, ctx)
        new, mean = {}, {}
        for n, p in procs.items():
            new[n], mean[n] = predictor.step(p, x[n], score[n], t, dt, z[n], probability_flow)
        # Only the last mean is ever used: it is masked and constrained after the loop.
        new = _finish(new, ctx, constrain)
        return (new, mean), (new if return_trajectory else None)

    keys = jax.random.split(k_loop, steps)
    (x, x_mean), traj = jax.lax.scan(body, (x0, x0), (times, keys))
    info: dict[str, Any] = {"nfe": steps * (1 + n_corr)}
    if return_trajectory:
        info["trajectory"] = traj
    return (_finish(x_mean, ctx, constrain) if denoise else x), info


def s4_sample(
    score_fn: ScoreFn, processes: Mapping[str, Any], ctx: Context, key: Array, *,
    shapes: Mapping[str, tuple[int, ...]], steps: int = 1000,
    snr: float = 0.1,
    scale_eps: float = 1.0,
    per_example: bool = False,
    eps: float = 1e-3,
    denoise: bool = True,
    constrain: ConstrainFn = identity_constrain,
    return_trajectory: bool = False,
) -> tuple[State, dict[str, Any]]:  # fmt: skip
    """GDSS's S4 solver (Jo et al. 2022, Sec. 3.3; ``S4_solver`` in GDSS ``solver.py``).

    One network call per time step. At time ``t`` with ``dt = -T/steps``:

    1. ``score = score_fn(x, t)``; keep ``S = -g(t)^2 score`` (the score part of the
       reverse drift).
    2. Correction: one Langevin step with that same score (step size as
       ``LangevinCorrector(snr, scale_eps, per_example=per_example)``).
    3. Prediction by splitting the reverse SDE into its linear part and its score part
       (Strang splitting): a half step of the linear part with ``process.transition``
       from ``t`` to ``t + dt/2`` (mean plus fresh noise), the full score-drift step
       ``x += S dt``, another half step from ``t + dt/2`` to ``t + dt``.
    4. The returned mean (``denoise=True``) is the last transition's mean.

    Differences from GDSS: GDSS reports 0 NFE for S4 (it makes ``steps`` calls, reported
    here); the corrector's ``alpha`` comes from ``process.corrector_alpha`` (GDSS uses the
    DDPM alphas only for its ``VPSDE`` class and indexes the adjacency's table with the
    feature SDE's ``N``); sub-VP gets a transition (GDSS defines none).

    Args:
      score_fn, processes, ctx, key, shapes, steps, eps, denoise, constrain,
      return_trajectory: as ``pc_sample``; every process needs ``transition``.
      snr, scale_eps, per_example: the Langevin correction (see ``LangevinCorrector``).

    Returns:
      ``(state, info)`` with ``info["nfe"] = steps``.
    """
    procs = _with_steps(processes, steps)
    big_t = _end_time(procs)
    b = _batch_size(shapes)
    field = _masked_field(score_fn, list(procs), ctx)
    corr = LangevinCorrector(snr=snr, scale_eps=scale_eps, n_steps=1, per_example=per_example)
    dt = -big_t / steps

    k_prior, k_loop = jax.random.split(key)
    x0 = _initial_state(procs, k_prior, shapes, ctx, constrain)
    times = jnp.linspace(big_t, eps, steps)

    def body(carry, inp):
        x, _ = carry
        t_scalar, k = inp
        t = jnp.full((b,), t_scalar, jnp.float32)
        # GDSS steps dt = -T/N from every grid time; with N = 1000 and eps = 1e-3 the last
        # step ends exactly at 0. With fewer steps that step would cross t = 0, where the
        # VP transition variance is negative, so it is shortened to end at 0.
        h = jnp.maximum(dt, -t_scalar)
        half = jnp.full((b,), h / 2, jnp.float32)  # [B]
        score = field(x, t)
        noise = _noises(k, x, 3)
        z1, z2, z3 = (_pick(noise, i, ctx) for i in range(3))
        new, mean = {}, {}
        for n, p in procs.items():
            g = p.sde(x[n], t)[1]  # [B]
            s_drift = -(_bcast(g, x[n]) ** 2) * score[n]
            y, _ = corr.update(p, x[n], score[n], t, z1[n])
            mu, sd = p.transition(y, t, half)
            y = mu + _bcast(sd, y) * z2[n]
            y = y + s_drift * h
            mu, sd = p.transition(y, t + half, half)
            new[n], mean[n] = mu + _bcast(sd, y) * z3[n], mu
        # Only the last mean is ever used: it is masked and constrained after the loop.
        new = _finish(new, ctx, constrain)
        return (new, mean), (new if return_trajectory else None)

    keys = jax.random.split(k_loop, steps)
    (x, x_mean), traj = jax.lax.scan(body, (x0, x0), (times, keys))
    info: dict[str, Any] = {"nfe": steps}
    if return_trajectory:
        info["trajectory"] = traj
    return (_finish(x_mean, ctx, constrain) if denoise else x), info


__all__ = [
    "EulerMaruyama",
    "LangevinCorrector",
    "ReverseDiffusion",
    "pc_sample",
    "s4_sample",
]
