"""The process contract and helpers that apply one process per state leaf.

A *process* describes how one leaf of the state is corrupted and what the network is
trained to predict for it. Processes are frozen dataclasses (hashable, so they can be
static arguments of ``jax.jit``) with at least these methods, all batched over a leading
axis and all taking the leaf's padding ``mask`` (broadcastable to the leaf, or ``None``):

- ``prior(key, shape, mask=None) -> x``: a draw from the terminal distribution.
- ``corrupt(key, x0, t, mask=None) -> (xt, aux)``: a draw from the forward kernel at
  times ``t`` [B]; ``aux`` is a dict with whatever the loss needs (noise, std, ...).
- ``loss(pred, x0, xt, t, aux, mask=None) -> [B]``: the per-example training loss of the
  network prediction ``pred`` (padding excluded).

Continuous processes also expose drift/diffusion and the marginal mean/std; masked ones
expose ``alpha(t)`` and its derivative. Processes never import domains: the domain only
enters through ``ctx["masks"]`` and the ``constrain`` hook of the samplers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from genmodels.core.masks import apply_masks, get_mask
from genmodels.core.random import split_like
from genmodels.core.types import Array, Aux, Context, Mask, State


class Process(Protocol):
    """Structural type of a per-leaf forward process (see the module docstring)."""

    def prior(self, key: Array, shape: tuple[int, ...], mask: Array | None = None) -> Array: ...

    def corrupt(self, key: Array, x0: Array, t: Array, mask: Mask = None) -> tuple[Array, Aux]: ...

    def loss(
        self, pred: Array, x0: Array, xt: Array, t: Array, aux: Aux, mask: Mask = None
    ) -> Array: ...


Processes = Mapping[str, Any]


def prior_state(
    processes: Processes, key: Array, shapes: Mapping[str, tuple[int, ...]], ctx: Context
) -> State:
    """Draw every leaf from its process's prior; padded entries are exactly zero.

    Args:
      processes: leaf name -> process.
      key: PRNG key.
      shapes: leaf name -> full shape including the batch axis.
      ctx: context (masks).

    Returns:
      The initial state of a sampler.
    """
    keys = split_like(key, dict(processes))
    state = {
        k: p.prior(keys[k], tuple(shapes[k]), mask=get_mask(ctx, k)) for k, p in processes.items()
    }
    return apply_masks(state, ctx)


def corrupt_state(
    processes: Processes, key: Array, x0: State, t: Array, ctx: Context
) -> tuple[State, dict[str, dict[str, Array]]]:
    """Apply each leaf's forward kernel at the shared times ``t`` [B].

    Returns:
      ``(xt, aux)`` with one entry per leaf.
    """
    keys = split_like(key, dict(processes))
    xt, aux = {}, {}
    for k, p in processes.items():
        xt[k], aux[k] = p.corrupt(keys[k], x0[k], t, mask=get_mask(ctx, k))
    return apply_masks(xt, ctx), aux


def loss_state(
    processes: Processes,
    preds: State,
    x0: State,
    xt: State,
    t: Array,
    aux: Mapping[str, dict[str, Array]],
    ctx: Context,
    weights: Mapping[str, float] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Weighted sum of the per-leaf losses.

    Returns:
      ``(loss [B], per_leaf)`` where ``per_leaf[k]`` is leaf k's [B] loss.
    """
    per_leaf = {
        k: p.loss(preds[k], x0[k], xt[k], t, aux[k], mask=get_mask(ctx, k))
        for k, p in processes.items()
    }
    w = weights or {}
    total = sum(w.get(k, 1.0) * v for k, v in per_leaf.items())
    return jnp.asarray(total), per_leaf


def uniform_times(key: Array, batch: int, eps: float = 1e-5, t_max: float = 1.0) -> Array:
    """Training times ``t ~ U(eps, t_max)`` [B], as in score_sde and GDSS."""
    return jax.random.uniform(key, (batch,), minval=eps, maxval=t_max)
