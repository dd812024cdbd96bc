"""Pair packing: the strict upper triangle of symmetric [B, N, N] matrices as [B, P] pairs
(``numpy.triu_indices(N, 1)`` order), and back."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.types import Array

__all__ = ["dense_to_pairs", "pairs_to_dense"]


def dense_to_pairs(a: Array) -> Array:
    """The strict upper triangle of [B, N, N] as [B, P] (``numpy.triu_indices(N, 1)``)."""
    iu, ju = np.triu_indices(a.shape[-1], 1)
    return a[..., iu, ju]


def pairs_to_dense(p: Array, n: int, diag: int = 0) -> Array:
    """Symmetric [B, N, N] matrices from their upper-triangle pairs [B, P].

    Args:
      p: [B, P] values of the pairs ``i < j`` (numpy or jax).
      n: N.
      diag: value on the diagonal.

    Returns:
      [B, N, N] with ``out[i, j] = out[j, i] = p[pair(i, j)]``.
    """
    iu, ju = np.triu_indices(n, 1)
    idx = np.full((n, n), len(iu))  # the diagonal reads the extra slot
    idx[iu, ju] = idx[ju, iu] = np.arange(len(iu))
    xp = jnp if isinstance(p, jax.Array) else np
    full = xp.concatenate([p, xp.full((*p.shape[:-1], 1), diag, p.dtype)], axis=-1)
    return full[..., idx.reshape(-1)].reshape(*p.shape[:-1], n, n)
