"""Token networks of the masked-diffusion methods: ``(state, t, ctx) -> logits`` per leaf.

Each wraps a backbone (graph transformer, token conv net, set transformer) and maps the
method's token leaves to and from its inputs; the methods are in :mod:`genmodels.models.mdm`,
``mdm_graphs`` and ``mdm_crystals``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.core.pairs import pairs_to_dense
from genmodels.core.types import Array, Context, State
from genmodels.nets.graph_transformer import GraphTransformerConfig
from genmodels.nets.set_transformer import SetTransformerConfig

__all__ = [
    "NUM_BOND_TYPES",
    "NUM_EDGE_TYPES",
    "MDMCrystalNet",
    "MDMEdgeNet",
    "MDMGraphNet",
    "MDMImageNet",
]

#: bond classes: none, single, double, triple
NUM_BOND_TYPES = 4
#: pair classes of generic graphs: no edge, edge
NUM_EDGE_TYPES = 2


class MDMGraphNet(nnx.Module):
    """``(state, t, ctx) -> {"atoms": [B, N, K_atom], "bonds": [B, P, 4]}`` logits: a
    :class:`~genmodels.nets.graph_transformer.GraphTransformer` (sizes ``net``, node
    vocabulary K_atom + 1 with the mask) on the atoms and the bond pairs made a symmetric
    [B, N, N] matrix, its edge logits read back on the pairs."""

    def __init__(
        self,
        net: GraphTransformerConfig,
        num_atom_types: int,
        time_conditioning: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        self.net = net.make(num_atom_types + 1, NUM_BOND_TYPES + 1, time_conditioning, rngs)

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        n = state["atoms"].shape[1]
        edges = pairs_to_dense(state["bonds"], n)  # [B, N, N]
        node_logits, edge_logits = self.net(state["atoms"], edges, ctx["node_mask"], t)
        iu, ju = np.triu_indices(n, 1)
        return {"atoms": node_logits, "bonds": edge_logits[:, iu, ju]}


class MDMImageNet(nnx.Module):
    """``(state, t, ctx) -> {"image": [B, H, W, K]}`` logits (a :class:`TokenConvNet`)."""

    def __init__(self, config: Any, *, rngs: nnx.Rngs):
        self.net = config.net.make(
            config.levels + 1, config.height, config.width, config.time_conditioning, rngs
        )

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        return {"image": self.net(state["image"], t)}


class MDMEdgeNet(nnx.Module):
    """``(state, t, ctx) -> {"edges": [B, P, K_edge]}`` logits of the clean pair classes.

    A :class:`~genmodels.nets.graph_transformer.GraphTransformer` on edge tokens
    ``pairs_to_dense(edges)`` and node tokens = each node's number of revealed edges
    (class-1 pairs), capped at ``max_nodes - 1``; the node logits are unused. With
    identical node tokens softmax attention keeps every node feature identical and the
    network learns only the edge density (measured: NELBO per pair flat at 0.61 nats on
    community_small); DiGress (Vignac et al., ICLR 2023) adds such noisy-graph features
    for the same reason. Vocabularies: nodes 0..``max_nodes`` - 1, edges K_edge + 1.
    """

    def __init__(
        self,
        net: GraphTransformerConfig,
        max_nodes: int,
        num_edge_types: int = NUM_EDGE_TYPES,
        time_conditioning: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        self.max_nodes = int(max_nodes)
        self.net = net.make(self.max_nodes, num_edge_types + 1, time_conditioning, rngs)

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        node_mask = ctx["node_mask"]  # [B, N]
        n = node_mask.shape[1]
        edges = pairs_to_dense(state["edges"], n)  # [B, N, N]
        revealed = jnp.sum((edges == 1) * node_mask[:, None, :], -1)  # [B, N] known degree
        nodes = jnp.minimum(revealed, self.max_nodes - 1).astype(jnp.int32) * (node_mask > 0)
        _, edge_logits = self.net(nodes, edges, node_mask, t)  # [B, N, N, K_edge]
        iu, ju = np.triu_indices(n, 1)
        return {"edges": edge_logits[:, iu, ju]}


class MDMCrystalNet(nnx.Module):
    """``(state, t, ctx) -> {"types": [B, N, K]}`` logits: a :class:`SetTransformer`
    (sizes ``net``, input vocabulary K + 1 with the mask) on the atoms."""

    def __init__(
        self,
        net: SetTransformerConfig,
        num_types: int,
        time_conditioning: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        self.net = net.make(num_types + 1, time_conditioning, rngs)

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        return {"types": self.net(state["types"], ctx["node_mask"], t)}
