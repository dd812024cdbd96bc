"""Exponential moving average of parameters (Polyak averaging)."""

from __future__ import annotations

import jax


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
