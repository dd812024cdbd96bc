"""Annealed Langevin dynamics over discrete noise levels (NCSN; CDVAE's decoder sampler).

Song & Ermon 2019, Algorithm 1: for each level ``sigma_i`` (largest first) run
``n_steps_each`` Langevin steps targeting the noised density ``p_{sigma_i}``, with a step
size proportional to ``sigma_i^2``. Written as CDVAE does (txie-93/cdvae ``model.py``,
``langevin_dynamics``)::

    step = step_lr * (sigma_i / sigma_L)^2          # sigma_L: the smallest level
    x <- x + step * score(x, sigma_i) + sqrt(2 step) z

which is Song & Ermon's update with their ``alpha_i = 2 step`` (so CDVAE's ``step_lr`` is
half of NCSN's ``epsilon``). Optionally a final denoising step (Jolicoeur-Martineau et al.
2021; Song & Ermon 2020, "Improved techniques", Sec. 4.4 / Tweedie's formula)
``x <- x + sigma_L^2 score(x, sigma_L)`` returns E[x_0 | x] instead of a sample of
``p_{sigma_L}``.

What ``t`` means here: the sampler calls ``score_fn(state, sigma, ctx)`` with ``sigma``
the current noise level, broadcast to one value per example, shape [B] (the standard
deviation of the noise, not a level index and not a time in [0, 1]).

Assigned leaves (``assign``): CDVAE moves the coordinates by Langevin steps but *sets* the
atom types to the argmax of the decoder's type logits after every step. A leaf named in
``assign`` is not diffused: its new value is whatever ``score_fn`` returns for it, with
no step size and no noise. With ``assign`` empty (the default) the sampler is unchanged,
random stream included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.masks import apply_masks
from genmodels.core.types import Array, ConstrainFn, Context, State, identity_constrain
from genmodels.processes.levels import NoiseLevels

ScoreFn = Callable[[State, Array, Context], State]


def _sigma_array(levels_or_sigmas: Any) -> Array | np.ndarray:
    """The [L] decreasing noise levels of a ``NoiseLevels``, a mapping of identical
    ``NoiseLevels`` (one per leaf) or an array of sigmas."""
    if isinstance(levels_or_sigmas, NoiseLevels):
        # numpy, not jnp: concrete even under jit, so ``min_sigma`` can cut the schedule
        lv = levels_or_sigmas
        return np.exp(
            np.linspace(np.log(lv.sigma_begin), np.log(lv.sigma_end), lv.num_levels)
        ).astype(np.float32)
    if isinstance(levels_or_sigmas, Mapping):
        procs = list(levels_or_sigmas.values())
        if not procs or any(p != procs[0] for p in procs):
            raise ValueError("annealed Langevin needs one noise schedule shared by all leaves")
        return _sigma_array(procs[0])
    if isinstance(levels_or_sigmas, np.ndarray | Sequence):
        return np.asarray(levels_or_sigmas, np.float32)
    return jnp.asarray(levels_or_sigmas, jnp.float32)


def _noises(key: Array, like: State, ctx: Context) -> State:
    """Standard normal noise for every leaf from one PRNG call; zero on padding."""
    names = sorted(like)
    sizes = [math.prod(like[n].shape) for n in names]
    flat = jax.random.normal(key, (sum(sizes),), jnp.float32)
    out, offset = {}, 0
    for n, size in zip(names, sizes):
        out[n] = flat[offset : offset + size].reshape(like[n].shape).astype(like[n].dtype)
        offset += size
    return apply_masks(out, ctx)


def annealed_langevin_sample(
    score_fn: ScoreFn,
    levels_or_sigmas: NoiseLevels | Mapping[str, NoiseLevels] | Sequence[float] | Array,
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    n_steps_each: int = 100,
    step_lr: float = 1e-4,
    min_sigma: float = 0.0,
    denoise: bool = False,
    init: State | None = None,
    constrain: ConstrainFn = identity_constrain,
    return_trajectory: bool = False,
    assign: Sequence[str] = (),
) -> tuple[State, dict[str, Any]]:
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1, in CDVAE's form).

    Args:
      score_fn: ``score_fn(state, sigma [B], ctx) -> dict`` of scores of ``p_sigma``, one per
        leaf; ``sigma`` is the current noise level (a standard deviation) per example.
      levels_or_sigmas: a ``NoiseLevels``, a mapping leaf -> ``NoiseLevels`` (all equal: one
        schedule for the whole state), or an array of decreasing sigmas [L].
      ctx: context; ``ctx["masks"]`` holds padding masks.
      key: PRNG key.
      shapes: leaf name -> full shape, batch first.
      n_steps_each: Langevin steps per level (CDVAE ``n_step_each``).
      step_lr: CDVAE's ``step_lr``; the step at level ``sigma`` is
        ``step_lr (sigma / sigma_L)^2`` with ``sigma_L`` the smallest level of the schedule.
      min_sigma: levels below it are skipped (CDVAE ``min_sigma``); needs concrete sigmas.
      denoise: add the final Tweedie step ``x + sigma^2 score(x, sigma)`` at the last level
        run (one more network call).
      init: initial state; default ``N(0, sigma_1^2 I)`` per leaf (``NoiseLevels.prior``).
        CDVAE starts fractional coordinates from ``U[0, 1)``: pass that here.
      constrain: domain hook applied (after masking) after every update.
      return_trajectory: also return the state at the end of every level.
      assign: leaves set to ``score_fn``'s output for them after every step instead of
        a Langevin update (no step size, no noise; CDVAE's argmax atom types). They need
        an ``init`` value and are left as they are by ``denoise``.

    Returns:
      ``(state, info)`` with ``info["nfe"] = L_run * n_steps_each (+ 1 if denoise)``,
      ``info["sigmas"]`` the levels run and, if requested, ``info["trajectory"]``
      leaf -> [L_run, B, ...].
    """
    sigmas = _sigma_array(levels_or_sigmas)  # [L]
    sigma_last = sigmas[-1]
    if min_sigma > 0:
        # The number of levels fixes the loop length, so this cut needs concrete values.
        kept = np.asarray(sigmas)
        sigmas = kept[kept >= min_sigma]
        if sigmas.shape[0] == 0:
            raise ValueError(f"no noise level is >= min_sigma={min_sigma}")
    n_levels = int(sigmas.shape[0])
    b = {int(s[0]) for s in shapes.values()}
    if len(b) != 1:
        raise ValueError(f"all leaves must share the batch size, got {sorted(b)}")
    b = b.pop()

    def finish(x: State) -> State:
        return constrain(apply_masks(x, ctx), ctx)

    def field(x: State, sigma: Array) -> State:
        s = score_fn(x, sigma, ctx)
        return apply_masks({k: s[k] for k in x}, ctx)

    assign = tuple(assign)
    unknown = sorted(set(assign) - set(shapes))
    if unknown:
        raise ValueError(f"assigned leaves {unknown} are not in shapes {sorted(shapes)}")
    if assign and (init is None or any(n not in init for n in assign)):
        raise ValueError(f"assigned leaves {list(assign)} need an initial value in init")

    k_init, k_loop = jax.random.split(key)
    if init is None:
        z = _noises(k_init, {k: jnp.zeros(tuple(s), jnp.float32) for k, s in shapes.items()}, ctx)
        init = {k: sigmas[0] * v for k, v in z.items()}
    x0 = finish({k: jnp.asarray(init[k]) for k in shapes})

    def level(x: State, inp):
        sigma_scalar, k = inp
        sigma = jnp.full((b,), sigma_scalar, jnp.float32)  # [B]
        step = step_lr * (sigma_scalar / sigma_last) ** 2

        def langevin(xc: State, kc: Array):
            score = field(xc, sigma)
            # without assigned leaves: one draw over the whole state, as before
            z = _noises(kc, {n: v for n, v in xc.items() if n not in assign}, ctx)
            new = {
                n: score[n]
                if n in assign
                else xc[n] + step * score[n] + jnp.sqrt(2.0 * step) * z[n]
                for n in xc
            }
            return finish(new), None

        x, _ = jax.lax.scan(langevin, x, jax.random.split(k, n_steps_each))
        return x, (x if return_trajectory else None)

    keys = jax.random.split(k_loop, n_levels)
    x, traj = jax.lax.scan(level, x0, (sigmas, keys))
    if denoise:
        sig = sigmas[-1]
        score = field(x, jnp.full((b,), sig, jnp.float32))
        x = finish({n: x[n] if n in assign else x[n] + sig**2 * score[n] for n in x})
    info: dict[str, Any] = {
        "nfe": n_levels * n_steps_each + int(denoise),
        "sigmas": sigmas,
    }
    if return_trajectory:
        info["trajectory"] = traj
    return x, info


__all__ = ["annealed_langevin_sample"]
