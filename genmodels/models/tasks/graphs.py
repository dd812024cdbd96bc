"""Generic graphs (community_small, ego_small, ENZYMES, grid, or a user's file): GDSS's data.

State ``{"x": [B, N, F] degree one-hot, "adj": [B, N, N] 0/1}``; the test split is the
first 20% of the file (GDSS) or a user file's (:func:`~genmodels.datasets.graphs.graph_splits`);
node counts are drawn from the training graphs; decoding thresholds ``adj`` at 0.5 and
drops self loops and isolated nodes; samples are graph6 files; ``evaluate`` is GDSS's MMD
suite against the test graphs."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from genmodels.core.masks import graph_masks
from genmodels.core.types import Context, State
from genmodels.datasets.graphs import graph_splits
from genmodels.datasets.user import UserData, is_user_path
from genmodels.domains.files import check_suffix
from genmodels.domains.graphs import GraphDomain, read_graph6, write_graph6
from genmodels.models.tasks.base import check_split, concat_lists, reference_split
from genmodels.samplers.guidance import Conditioning


class DenseGraphTask:
    """What the dense-graph tasks share: node / atom counts from the training set, the
    ``{"x": [B, N, F], "adj": [B, N, N]}`` shapes and the domain's ``constrain``.
    Subclasses set ``dims = (N, F)``, ``domain`` and ``count_sampler``."""

    dims: tuple[int, int]
    condition = Conditioning()  # unconditional (property conditions: not yet)

    def sample_context(self, key, batch: int) -> tuple[Context, jax.Array]:
        """``(ctx, prior key)`` of a sampling round: node counts drawn with one half of
        ``key`` (``count_sampler``), the other half left for the prior."""
        kc, ks = jax.random.split(key)
        return self.count_sampler(kc, batch), ks

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        n, f = self.dims
        return {"x": (batch, n, f), "adj": (batch, n, n)}

    def constrain(self, state: State, ctx: Context) -> State:
        return self.domain.constrain(state, ctx)


class GraphTask(DenseGraphTask):
    """Generic graphs of one data set (module docstring).

    Args:
      dataset: community_small, ego_small, ENZYMES, grid, or a user's path.
      max_nodes: padded node count N (a path: its largest training graph's instead).
      max_feat: degree one-hot classes F (a path: larger degrees share the last class).
      data: the options of a user's file (split).
    """

    sample_suffix = ".g6"
    sample_suffixes, eval_splits = (".g6",), ("test", "train")

    def __init__(self, dataset: str, max_nodes: int, max_feat: int, data: UserData = UserData()):
        self.dataset, self.data, user = dataset, data, is_user_path(dataset)
        if user:
            max_nodes = max(g.number_of_nodes() for g in self.splits[0])
        self.domain = GraphDomain(max_nodes, max_feat, clip_degree=user)
        self.max_nodes, self.max_feat = max_nodes, max_feat
        self.dims = (max_nodes, max_feat)

    @cached_property
    def splits(self) -> tuple[list[nx.Graph], list[nx.Graph]]:
        """(train, test) graphs (:func:`~genmodels.datasets.graphs.graph_splits`)."""
        return graph_splits(self.dataset, self.data)

    def train_arrays(self) -> dict[str, np.ndarray]:
        """``x`` [M, N, F], ``adj`` [M, N, N], ``node_mask`` [M, N] of the training graphs."""
        state, ctx = self.domain.encode(self.splits[0])
        return {
            "x": np.asarray(state["x"]),
            "adj": np.asarray(state["adj"]),
            "node_mask": np.asarray(ctx["node_mask"]),
        }

    @staticmethod
    def dense_batch(batch: dict, key=None) -> tuple[State, Context]:
        """Loader arrays -> ``({"x", "adj"}, {"node_mask", "masks"})`` (jit-compatible;
        ``key``: augmentation randomness, none for graphs)."""
        node_mask = jnp.asarray(batch["node_mask"], jnp.float32)
        x0 = {k: jnp.asarray(batch[k], jnp.float32) for k in ("x", "adj")}
        return x0, {"node_mask": node_mask, "masks": graph_masks(node_mask)}

    @cached_property
    def count_sampler(self):
        """``(key, batch) -> {"node_mask", "masks"}`` with training node counts."""
        return self.domain.node_count_sampler(self.splits[0])

    def decode(self, state: State, ctx: Context) -> list[nx.Graph]:
        return self.domain.decode(state, ctx)

    def collate(self, parts: list[list[nx.Graph]], num: int) -> list[nx.Graph]:
        return concat_lists(parts, num)

    def write_samples(self, samples: list[nx.Graph], path: Path) -> None:
        write_graph6(samples, path)

    def read_samples(self, path: Path) -> list[nx.Graph]:
        return read_graph6(check_suffix(path, self.sample_suffixes, "graphs"))

    def default_num_samples(self) -> int:
        """The test split's size (GDSS's ``sampler.py`` keeps ``len(test_graph_list)``)."""
        return len(self.splits[1])

    def evaluate(
        self, samples: list[nx.Graph | None], split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """GDSS's MMD suite (degree, clustering, orbit, spectral) against ``split``."""
        from genmodels.metrics.graphs import graph_mmd

        del meta
        check_split(split, self.eval_splits)
        ref = reference_split(self.splits, split)
        gen = [g for g in samples if g is not None]
        out = graph_mmd(ref, gen, metrics=("degree", "clustering", "orbit", "spectral"))
        out = {k: float(v) for k, v in out.items()}
        out["num_samples"] = len(gen)
        out["num_reference"] = len(ref)
        return out
