"""Masks for padded states.

Padding keeps shapes static (one jit per size bucket). ``ctx["masks"][key]`` is a float
array broadcastable to ``state[key]``; entries where it is 0 are padding and are held at
exactly 0 by every sampler through :func:`apply_masks`.
"""

from __future__ import annotations

import jax.numpy as jnp

from genmodels.core.types import Array, Context, State


def get_mask(ctx: Context | None, key: str) -> Array | None:
    """The mask of leaf ``key`` in ``ctx`` or ``None`` when the leaf is not padded."""
    if ctx is None:
        return None
    masks = ctx.get("masks") if hasattr(ctx, "get") else None
    if not masks:
        return None
    return masks.get(key)


def apply_masks(state: State, ctx: Context | None) -> State:
    """Zero the padded entries of every leaf that has a mask in ``ctx``.

    Args:
      state: dict of arrays with a leading batch axis.
      ctx: context, optionally with ``ctx["masks"]``.

    Returns:
      The state with ``leaf * mask`` for masked leaves (exact zeros in padding).
    """
    out = {}
    for k, v in state.items():
        m = get_mask(ctx, k)
        out[k] = v if m is None else jnp.where(m > 0, v, jnp.zeros_like(v))
    return out


def graph_masks(node_mask: Array) -> dict[str, Array]:
    """Masks for a dense graph state from its node mask.

    Args:
      node_mask: [B, N] with 1 for real nodes and 0 for padding.

    Returns:
      ``{"x": [B, N, 1], "adj": [B, N, N]}``; the adjacency mask also zeros the diagonal.
    """
    m = node_mask.astype(jnp.float32)
    n = m.shape[-1]
    adj = m[..., :, None] * m[..., None, :] * (1.0 - jnp.eye(n, dtype=m.dtype))
    return {"x": m[..., None], "adj": adj}


def masked_mean(values: Array, mask: Array | None, axis_start: int = 1) -> Array:
    """Mean over all axes from ``axis_start`` on, counting only unmasked entries.

    Args:
      values: [B, ...].
      mask: broadcastable to ``values`` or ``None`` (all entries count).
      axis_start: first axis to reduce.

    Returns:
      [B] per-example means.
    """
    axes = tuple(range(axis_start, values.ndim))
    if mask is None:
        return jnp.mean(values, axis=axes)
    m = jnp.broadcast_to(mask, values.shape).astype(values.dtype)
    return jnp.sum(values * m, axis=axes) / jnp.maximum(jnp.sum(m, axis=axes), 1.0)
