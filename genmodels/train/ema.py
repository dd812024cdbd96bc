"""Exponential moving average of parameters (Polyak averaging)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ema_update(ema, params, decay: float):
    """``ema <- decay * ema + (1 - decay) * params`` leaf by leaf.

    Args:
      ema: pytree of the running average.
      params: pytree of the current parameters (same structure).
      decay: in [0, 1); 0 makes the EMA equal to the parameters.

    Returns:
      The updated EMA pytree.
    """
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def ema_decay_at(decay: float, step, warmup: bool):
    """The decay of the update after optimizer step ``step`` (0-based).

    With ``warmup``, ``min(decay, (1 + n) / (10 + n))`` for the ``n = step + 1``-th update
    (score_sde's ``ExponentialMovingAverage(use_num_updates=True)``, which GDSS and MDLM
    use); else ``decay``.

    Args:
      decay: the configured decay.
      step: int or traced int scalar.
      warmup: apply the warm-up.

    Returns:
      A float (no warm-up) or a float32 scalar.
    """
    if not warmup or decay == 0.0:
        return decay
    n = jnp.asarray(step, jnp.float32) + 1.0
    return jnp.minimum(decay, (1.0 + n) / (10.0 + n))
