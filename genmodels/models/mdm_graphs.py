"""Masked diffusion (absorbing state) on generic graphs, with the first-hitting sampler.

The same process, loss and samplers as :class:`~genmodels.models.mdm.MDMMolecules`, on
GDSS's unattributed graphs (community_small, ego_small, ENZYMES, grid; Jo, Lee, Hwang,
ICML 2022), with GDSS's data, splits, decoding, ``.g6`` files and MMD metrics
(:class:`~genmodels.models.gdss.GDSS`).

**Tokens.** A graph with ``n`` nodes, padded to ``N = max_node_num`` (community_small 20,
ego_small 18, ENZYMES 125, grid 361), is ONE token leaf

- ``edges`` [B, P], ``P = N (N - 1) / 2``: the node pairs ``i < j`` in the order of
  ``numpy.triu_indices(N, 1)``, each in ``{0: no edge, 1: edge}`` (mask id 2); a pair
  with a padded end is padding (``ctx["masks"]["edges"]``): never masked, counted or
  sampled, and always 0.

A pair is one token, so the adjacency stays symmetric by construction. Node features are
not modelled (GDSS ignores them for generic graphs): the network's node tokens are each
node's revealed degree in the noisy graph (below); node counts for sampling are drawn from the
training graphs (GDSS ``init_flags``, :meth:`GraphDomain.node_count_sampler`). A graph
with ``n`` nodes therefore has ``L(n) = n (n - 1) / 2`` real tokens.

**Forward process** (:class:`~genmodels.processes.masked.MaskedDiffusion`, MDLM Sahoo et
al. 2024 / MD4 Shi et al. 2024): every real token is independently replaced by the mask
``m`` with probability ``1 - alpha(t)``,

    q(z_t^l | x^l) = alpha(t) [z_t^l = x^l] + (1 - alpha(t)) [z_t^l = m],

with ``alpha(t) = 1 - t`` (``linear``) or MD4's ``cosine`` ``alpha(t) = 1 - cos(pi/2 (1 -
t))``.

**Training**: the continuous-time NELBO (MDLM eq. 10, MD4 eq. 4)

    L = E_{t ~ U(eps, 1)} [ -alpha'(t) / (1 - alpha(t))
          * sum_{real pairs l with z_t^l = m} -log p_theta(x^l | z_t) ],

per graph, averaged over the batch, with antithetic times (MDLM's ``_sample_t``). The
network predicts the clean class of every pair (SUBS parameterization: two logits, no mask
logit; unmasked tokens are copied). ``nll_per_token`` is the NELBO divided by the mean
number of real pair tokens of the batch (nats).

**Network** (:class:`MDMEdgeNet`): the DiGress-style dense graph transformer of
:mod:`genmodels.nets.graph_transformer` on node tokens = each node's number of
revealed edges in ``z_t`` (vocabulary ``N``; constant node tokens would keep every node
feature identical under softmax attention, see :class:`MDMEdgeNet`; the node head's output
is unused) and edge tokens ``pairs_to_dense(edges)`` (edge vocabulary 3); the symmetric
edge logits are read back on the pairs.

**Sampling** (:mod:`genmodels.samplers.masked`): ``fhs``, the first-hitting sampler of
Zheng et al. 2024, unmasks one pair per network call at the exactly drawn hitting time
``1 - alpha(t_next) = (1 - alpha(t)) u^(1/k)`` (``k`` masked pairs left), so a batch takes
``max_b L(n_b)`` calls (examples with fewer pairs idle once done); ``ancestral``: MDLM's
cached ancestral sampler on ``steps`` uniform steps (at most ``steps`` calls). Categorical
draws are float64-grade by default (``precision="float32"``: the truncated Gumbel draws
that Zheng et al. show lower the temperature). Batches are sharded over the devices when
their number divides the batch (parameters replicated), as for molecules.

**Decoding**: the sampled pairs become a 0/1 adjacency, decoded by GDSS's adapter
(threshold 0.5, self loops and isolated nodes dropped, an edgeless graph is one node); the
metrics are GDSS's MMD suite (degree, clustering, orbit, spectral) against the test split
(the first 20% of the data file).

Departures from the references: MDLM and MD4 model sequences with a transformer; here the
sequence is a graph's node pairs and the network a graph transformer. No time
conditioning by default (the time-agnostic view of Zheng et al.; MDLM also trains without
it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from flax import nnx

from genmodels.core.types import Array, Context, State
from genmodels.domains.graphs import GraphDomain
from genmodels.models.gdss import GDSS
from genmodels.models.mdm import SAMPLERS, MDMMolecules, dense_to_pairs, pairs_to_dense, token_masks
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.nets.graph_transformer import GraphTransformerConfig
from genmodels.processes.base import corrupt_state, loss_state
from genmodels.processes.masked import CosineSchedule, LinearSchedule, MaskedDiffusion
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader

__all__ = [
    "GRAPH_DATASETS",
    "NUM_EDGE_TYPES",
    "MDMEdgeNet",
    "MDMGraphConfig",
    "MDMGraphs",
    "edge_masks",
]

#: generic-graph data sets (GDSS's); their padded sizes are GDSS's ``max_node_num``
GRAPH_DATASETS = ("community_small", "ego_small", "ENZYMES", "grid")
#: pair classes: no edge, edge
NUM_EDGE_TYPES = 2


def edge_masks(node_mask: Array) -> dict[str, Array]:
    """Padding mask of the ``edges`` leaf.

    Args:
      node_mask: [B, N], 1 on real nodes.

    Returns:
      ``{"edges": [B, P]}`` float32, 1 on the pairs ``i < j`` of two real nodes.
    """
    return {"edges": token_masks(node_mask)["bonds"]}


class MDMEdgeNet(nnx.Module):
    """``(state, t, ctx) -> {"edges": [B, P, K_edge]}`` logits of the clean pair classes.

    A :class:`~genmodels.nets.graph_transformer.GraphTransformer` whose edge tokens are the
    pairs made into a symmetric [B, N, N] matrix and whose node tokens are a structural
    feature of that noisy graph: each node's number of revealed edges (pairs of class
    1; masked pairs do not count), capped at ``max_nodes - 1``. The node logits are
    discarded. Without it every node token would be the same, and the transformer's
    softmax attention (a convex combination of identical values) keeps every node
    feature identical: the network could only learn the edge density (measured: NELBO
    per pair token flat at the density's entropy, 0.61 nats on community_small). DiGress
    (Vignac et al., ICLR 2023) adds such features of the noisy graph for the same reason.

    Args:
      net: transformer sizes.
      max_nodes: N (the node vocabulary is the revealed degrees 0..N-1).
      num_edge_types: K_edge (the edge vocabulary is K_edge + 1 with the mask).
      time_conditioning: feed ``t`` to the network.
      rngs: parameter RNGs.
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
        """Args: ``state["edges"]`` int [B, P], ``t`` [B], ``ctx["node_mask"]`` [B, N].

        Returns: ``{"edges": [B, P, K_edge]}`` (0 on padded pairs)."""
        node_mask = ctx["node_mask"]  # [B, N]
        n = node_mask.shape[1]
        edges = pairs_to_dense(state["edges"], n)  # [B, N, N]
        revealed = jnp.sum((edges == 1) * node_mask[:, None, :], -1)  # [B, N] known degree
        nodes = jnp.minimum(revealed, self.max_nodes - 1).astype(jnp.int32) * (node_mask > 0)
        _, edge_logits = self.net(nodes, edges, node_mask, t)  # [B, N, N, K_edge]
        iu, ju = np.triu_indices(n, 1)
        return {"edges": edge_logits[:, iu, ju]}


@dataclass(frozen=True)
class MDMGraphConfig:
    """A masked-diffusion recipe for generic graphs.

    Attributes:
      dataset: community_small, ego_small, ENZYMES or grid (GDSS's data; the padded size
        is GDSS's ``max_node_num`` of the data set).
      schedule: ``linear`` (``alpha = 1 - t``) or ``cosine`` (MD4's).
      t_eps: smallest training time (MDLM's ``sampling_eps`` 1e-3).
      net: graph transformer sizes.
      time_conditioning: feed ``t`` to the network (off: time-agnostic, Zheng et al.).
      sampler: default sampler, ``fhs`` or ``ancestral``.
      sample_steps: steps of the ancestral sampler (FHS takes one step per pair).
      precision: categorical sampling precision, ``float64`` or ``float32``.
      sample_use_ema: sample with the EMA parameters.
      sample_batch: graphs per sampling batch.
    """

    dataset: str = "community_small"
    schedule: Literal["linear", "cosine"] = "linear"
    t_eps: float = 1e-3
    net: GraphTransformerConfig = field(default_factory=GraphTransformerConfig)
    time_conditioning: bool = False
    sampler: str = "fhs"
    sample_steps: int = 1000
    precision: Literal["float64", "float32"] = "float64"
    sample_use_ema: bool = True
    sample_batch: int = 128
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def build(self) -> MDMGraphs:
        return MDMGraphs(self)


class MDMGraphs:
    """Masked diffusion on one generic-graph data set (see the module docstring)."""

    samplers = SAMPLERS
    sample_suffix = ".g6"

    def __init__(self, config: MDMGraphConfig):
        if config.dataset not in GRAPH_DATASETS:
            raise ValueError(
                f"unknown graph data set {config.dataset!r}; choose one of {GRAPH_DATASETS}"
            )
        if config.schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule {config.schedule!r}; choose linear or cosine")
        self.config = config
        gdss_net = GDSS_NET_CONFIGS[config.dataset]
        self.max_nodes = gdss_net.max_node_num
        # GDSS's adapter; its degree features (max_feat_num classes) are not modelled here
        self.domain = GraphDomain(gdss_net.max_node_num, gdss_net.max_feat_num)
        sched = LinearSchedule() if config.schedule == "linear" else CosineSchedule()
        self.processes = {"edges": MaskedDiffusion(NUM_EDGE_TYPES, sched, config.t_eps)}

    # ------------------------------------------------------------------ data
    @cached_property
    def splits(self) -> tuple[list[nx.Graph], list[nx.Graph]]:
        """(train, test) graphs; test = the first 20% of the file, as GDSS."""
        return GDSS.splits.func(self)

    def loader(self) -> ArrayLoader:
        """Training batches ``{"edges": int8 [B, P] (padding 0), "node_mask": [B, N]}``."""
        train, _ = self.splits
        state, ctx = self.domain.encode(train)
        edges = dense_to_pairs(np.asarray(state["adj"])).astype(np.int8)  # [M, P]
        return ArrayLoader(
            {"edges": edges, "node_mask": np.asarray(ctx["node_mask"], np.float32)},
            batch_size=self.config.train.batch_size,
            seed=self.config.train.seed,
        )

    def tokens(self, batch: dict) -> tuple[State, Context]:
        """Clean token state and context of a loader batch.

        Args:
          batch: ``{"edges": [B, P], "node_mask": [B, N]}`` (:meth:`loader`).

        Returns:
          ``(x0, ctx)``: ``{"edges": int32 [B, P]}`` (padding 0) and
          ``{"node_mask": [B, N], "masks": {"edges": [B, P]}}``.
        """
        node_mask = jnp.asarray(batch["node_mask"], jnp.float32)
        masks = edge_masks(node_mask)
        edges = jnp.asarray(batch["edges"]).astype(jnp.int32)
        x0 = {"edges": jnp.where(masks["edges"] > 0, edges, 0)}
        return x0, {"node_mask": node_mask, "masks": masks}

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> MDMEdgeNet:
        return MDMEdgeNet(
            self.config.net,
            self.max_nodes,
            NUM_EDGE_TYPES,
            self.config.time_conditioning,
            rngs=nnx.Rngs(key),
        )

    def corrupt(self, x0: State, ctx: Context, key: Array) -> tuple[Array, State, dict]:
        """Antithetic training times and corrupted tokens: ``(t [B], xt, aux)``."""
        kt, kc = jax.random.split(key)
        t = self.processes["edges"].sample_times(kt, x0["edges"].shape[0])
        xt, aux = corrupt_state(self.processes, kc, x0, t, ctx)
        return t, xt, aux

    def loss_fn(self, model: MDMEdgeNet, batch: dict, key: Array):
        """The MDLM NELBO (module docstring) per graph, averaged over the batch.

        Returns:
          ``(loss, metrics)`` with ``nll_per_token``: the NELBO divided by the mean
          number of real pair tokens per graph (nats).
        """
        x0, ctx = self.tokens(batch)
        t, xt, aux = self.corrupt(x0, ctx, key)
        preds = model(xt, t, ctx)
        total, _ = loss_state(self.processes, preds, x0, xt, t, aux, ctx)  # [B]
        loss = jnp.mean(total)
        ntok = jnp.sum(ctx["masks"]["edges"]) / total.shape[0]
        return loss, {"nll_per_token": loss / jnp.maximum(ntok, 1.0)}

    # -------------------------------------------------------------- sampling
    @cached_property
    def _count_sampler(self):
        return self.domain.node_count_sampler(self.splits[0])

    @property
    def max_atoms(self) -> int:
        """N, under the name the shared token sampler reads."""
        return self.max_nodes

    def _token_shapes(self, batch: int) -> dict[str, tuple[int, int]]:
        """The ``edges`` leaf of a batch: [B, P]."""
        n = self.max_nodes
        return {"edges": (batch, n * (n - 1) // 2)}

    def _token_masks(self, node_mask: Array) -> dict[str, Array]:
        return edge_masks(node_mask)

    # One jitted batch of sampled token states, node counts from the training set (or all
    # ``num_atoms`` nodes), returning ``(state, ctx, info)`` with ``{"edges": int32 [B, P]}``
    # in {0, 1} on real pairs and 0 on padding, ``ctx`` with ``node_mask`` and ``masks``,
    # ``info["nfe"]`` the network calls (``fhs``: the batch's largest n (n - 1) / 2):
    # MDMMolecules' compiled token sampler (it reads only the hooks above, the config,
    # ``processes`` and ``_count_sampler``), and its host loop over jitted rounds.
    sample_states = MDMMolecules.sample_states
    _compiled = MDMMolecules._compiled
    _batches = MDMMolecules._batches

    def to_graphs(self, state: State, ctx: Context) -> list[nx.Graph]:
        """Decode a sampled batch as GDSS does (threshold 0.5, no isolated nodes).

        Args:
          state: ``{"edges": [B, P]}`` pair classes.
          ctx: with ``node_mask`` [B, N].

        Returns:
          B ``networkx.Graph`` objects (an edgeless sample is a single node).
        """
        node_mask = np.asarray(ctx["node_mask"], np.float32)  # [B, N]
        adj = pairs_to_dense(np.asarray(state["edges"]), node_mask.shape[1]).astype(np.float32)
        return self.domain.decode({"adj": adj}, {"node_mask": node_mask})

    def sample(
        self,
        model: MDMEdgeNet,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        precision: str | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        **options: Any,
    ) -> list[nx.Graph]:
        """``num`` graphs, decoded as GDSS (threshold 0.5, isolated nodes dropped).

        Args:
          model: the network.
          key: PRNG key (round ``r`` uses ``fold_in(key, r)``).
          num: number of graphs.
          sampler: ``fhs`` (default) or ``ancestral``.
          steps: ancestral steps.
          precision: ``float64`` (default) or ``float32`` categorical draws.
          batch_size: graphs per jitted batch (default: the config's ``sample_batch``).
          progress: show a progress bar over the batches.

        Returns:
          ``num`` ``networkx.Graph`` objects.

        Raises:
          ValueError: an unknown option, sampler or precision.
        """
        if options:
            raise ValueError(f"MDM sample got unknown options {sorted(options)}")
        graphs: list[nx.Graph] = []
        for out, ctx in self._batches(
            model, key, num, sampler, steps, precision, batch_size, progress
        ):
            graphs.extend(self.to_graphs(out, ctx))
        return graphs[:num]

    # .g6 files and GDSS's MMD suite (degree, clustering, orbit, spectral); they only read
    # ``self.splits``
    write_samples = GDSS.write_samples
    read_samples = GDSS.read_samples
    evaluate = GDSS.evaluate
