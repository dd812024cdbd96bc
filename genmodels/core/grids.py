"""Time and noise-level grids shared by the samplers."""

from __future__ import annotations

import jax.numpy as jnp

from genmodels.core.types import Array


def uniform_grid(steps: int, t_start: float = 1.0, t_end: float = 0.0) -> Array:
    """``steps + 1`` evenly spaced times from ``t_start`` to ``t_end`` (both included)."""
    return jnp.linspace(t_start, t_end, steps + 1)


def edm_sigma_grid(
    steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> Array:
    """EDM's noise levels (Karras et al. 2022, eq. 5) followed by a final 0.

    sigma_i = (sigma_max^(1/rho) + i/(steps-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
    for i = 0..steps-1, then sigma_steps = 0.

    Returns:
      [steps + 1] decreasing noise levels ending at 0.
    """
    i = jnp.arange(steps, dtype=jnp.float32)
    denom = max(steps - 1, 1)
    inv = 1.0 / rho
    sig = (sigma_max**inv + i / denom * (sigma_min**inv - sigma_max**inv)) ** rho
    return jnp.concatenate([sig, jnp.zeros((1,), sig.dtype)])


def geometric_levels(sigma_begin: float, sigma_end: float, num: int) -> Array:
    """``num`` noise levels from ``sigma_begin`` down to ``sigma_end``, geometric spacing."""
    return jnp.exp(jnp.linspace(jnp.log(sigma_begin), jnp.log(sigma_end), num))
