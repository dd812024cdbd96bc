"""Masked diffusion on generic graphs (community_small, ego_small, ENZYMES, grid).

The method of :mod:`genmodels.models.mdm` on GDSS's data
(:class:`~genmodels.models.tasks.graphs.GraphTask`; Jo, Lee, Hwang, ICML 2022) with one
token per node pair: a graph padded to ``N = max_node_num`` nodes is the leaf ``edges``
[B, N (N - 1) / 2] of the pairs ``i < j`` (``numpy.triu_indices`` order) in ``{0: no
edge, 1: edge}`` (mask id 2), pairs with a padded end being padding. The adjacency stays
symmetric by construction; ``fhs`` makes ``n (n - 1) / 2`` network calls for the batch's
largest graph. Node features are not modelled (GDSS ignores them for generic graphs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import networkx as nx
import numpy as np
from flax import nnx

from genmodels.core.types import Array, Context, State
from genmodels.datasets.graphs import GRAPH_DATASETS
from genmodels.datasets.user import is_user_path
from genmodels.domains.graphs import dense_to_pairs, pairs_to_dense
from genmodels.models.mdm import MDM, MDMConfig, pair_mask
from genmodels.models.tasks.graphs import GraphTask
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.nets.graph_transformer import GraphTransformerConfig
from genmodels.nets.tokens import NUM_EDGE_TYPES, MDMEdgeNet

__all__ = ["GRAPH_DATASETS", "NUM_EDGE_TYPES", "MDMEdgeNet", "MDMGraphConfig", "MDMGraphs"]


@dataclass(frozen=True)
class MDMGraphConfig(MDMConfig):
    """A masked-diffusion recipe for generic graphs (shared fields: :class:`MDMConfig`).

    Attributes:
      dataset: community_small, ego_small, ENZYMES or grid (GDSS's data and padded size),
        or a user's path (padded to its largest training graph).
      net: graph transformer sizes.
    """

    dataset: str = "community_small"
    net: GraphTransformerConfig = field(default_factory=GraphTransformerConfig)
    sample_batch: int = 128

    def build(self) -> MDMGraphs:
        return MDMGraphs(self)


class MDMGraphs(MDM):
    """Masked diffusion on one generic-graph data set: the leaf ``edges`` [B, P]."""

    def __init__(self, config: MDMGraphConfig):
        if not (config.dataset in GRAPH_DATASETS or is_user_path(config.dataset)):
            raise ValueError(f"unknown graph data set {config.dataset!r}; choose {GRAPH_DATASETS}")
        # a user's path: its largest training graph (the task's N), community_small's F
        gdss = GDSS_NET_CONFIGS.get(config.dataset, GDSS_NET_CONFIGS["community_small"])
        task = GraphTask(config.dataset, gdss.max_node_num, gdss.max_feat_num, config.data)
        super().__init__(config, task)
        self.max_atoms = self.max_nodes = task.max_nodes

    def vocab(self) -> dict[str, int]:
        return {"edges": NUM_EDGE_TYPES}

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        return {"edges": (batch, self.max_nodes * (self.max_nodes - 1) // 2)}

    def token_masks(self, node_mask: Array) -> dict[str, Array]:
        return {"edges": pair_mask(node_mask)}

    def tokens(self, batch: dict) -> tuple[State, Context]:
        """Args: the task's ``{"adj": [B, N, N] 0/1, "node_mask": [B, N], ...}``."""
        ctx = self.context(batch["node_mask"])
        edges = dense_to_pairs(jnp.asarray(batch["adj"])).astype(jnp.int32)
        return {"edges": jnp.where(ctx["masks"]["edges"] > 0, edges, 0)}, ctx

    def init_model(self, key: Array) -> MDMEdgeNet:
        c = self.config
        return MDMEdgeNet(
            c.net, self.max_nodes, NUM_EDGE_TYPES, c.time_conditioning, rngs=nnx.Rngs(key)
        )

    def decode(self, state: State, ctx: Context) -> list[nx.Graph]:
        """GDSS decoding (threshold 0.5, no isolated nodes; an edgeless graph is a node)."""
        node_mask = np.asarray(ctx["node_mask"], np.float32)  # [B, N]
        adj = pairs_to_dense(np.asarray(state["edges"]), node_mask.shape[1]).astype(np.float32)
        return self.task.decode({"adj": adj}, {"node_mask": node_mask})
