"""PRNG helpers: one key per state leaf, deterministic and order independent."""

from __future__ import annotations

import jax

from genmodels.core.types import Array


def split_like(key: Array, tree: dict) -> dict:
    """One independent key per key of ``tree`` (sorted order, so the split is stable)."""
    names = sorted(tree)
    keys = jax.random.split(key, len(names))
    return {n: k for n, k in zip(names, keys)}
