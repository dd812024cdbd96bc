"""Shape-typed aliases for the pytrees that flow between processes, samplers and models.

A *state* is a ``dict[str, Array]`` with a leading batch axis, one leaf per modality
(graphs: ``x`` [B, N, F] and ``adj`` [B, N, N]; images: ``image`` [B, H, W, C]; ...).
A *context* is what stays fixed while sampling: masks, node counts, labels, a latent.
By convention ``ctx["masks"]`` (optional) maps a state key to a float mask that
broadcasts against that leaf; padded entries have mask 0 and must stay exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax

Array = jax.Array
State = dict[str, Array]
Context = Mapping[str, Any]
#: a process's per-leaf auxiliary outputs of ``corrupt`` (noise, std, target, ...)
Aux = dict[str, Array]
#: a padding mask broadcastable to its leaf, or ``None``
Mask = Array | None
#: ``field_fn(state, t, ctx) -> dict`` with the same keys as ``state``; ``t`` is [B].
FieldFn = Callable[[State, Array, Context], State]
#: ``constrain(state, ctx) -> state``: the domain hook samplers call after every step.
ConstrainFn = Callable[[State, Context], State]


def identity_constrain(state: State, ctx: Context) -> State:
    """The default ``constrain`` hook: leave the state unchanged."""
    del ctx
    return state
