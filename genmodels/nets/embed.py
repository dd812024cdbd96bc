"""Noise-level / time embeddings."""

from __future__ import annotations

import jax.numpy as jnp

from genmodels.core.types import Array


def sinusoidal_embedding(t: Array, dim: int, max_period: float = 10_000.0) -> Array:
    """Transformer-style sinusoidal features of a scalar per example (DDPM, Ho et al. 2020).

    Args:
      t: [B] times or noise levels.
      dim: even embedding size.
      max_period: longest wavelength.

    Returns:
      [B, dim] features ``[cos(t w_k), sin(t w_k)]`` with ``w_k = max_period^(-k/(dim/2))``.
    """
    half = dim // 2
    freqs = jnp.exp(-jnp.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
