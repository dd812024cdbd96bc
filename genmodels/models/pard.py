"""PARD: permutation-invariant autoregressive diffusion for graphs and molecules.

Zhao, Ding, Akoglu, "Pard: Permutation-Invariant Autoregressive Diffusion for Graph
Generation" (NeurIPS 2024); settings from LingxiaoShawn/Pard (``pard/configs/qm9.yaml``,
``pard/parallel/task.py``). The pieces:

- **Partial order** (:func:`genmodels.core.partial_order.partition_batch`): nodes are
  peeled into blocks by their weighted degree over 1..``max_hops`` hops; block 0 (the
  core) is generated first. Nodes are stored sorted by block, so a graph of ``n`` nodes
  fills slots ``0..n-1`` and block ``b`` is a contiguous run of slots.
- **Block-wise discrete diffusion** (:class:`~genmodels.processes.discrete.DiscreteDiffusion`,
  cosine schedule, uniform noise, ``T = 50`` steps per block, loss = VLB + 0.1 CE): only
  the current block's nodes and its edges (inside the block and to every earlier node) are
  noised; earlier blocks are clean context.
- **Parallel training of all blocks** (the paper's Sec. 3.3): each graph of ``N`` slots is
  doubled into ``2N`` nodes, ``N`` clean *real* nodes and ``N`` noised *virtual* copies.
  The virtual copy of block ``b`` attends to itself and to the real nodes of blocks
  ``< b``; real nodes of block ``b`` attend to real nodes of blocks ``<= b``
  (:func:`~genmodels.nets.ppgn.causal_block_mask`). One forward pass thus gives the
  denoising prediction of every block, each with the same step ``t`` per graph (PARD's
  ``blockwise_time: False``). Every node and every node pair is the target of exactly one
  block (a pair belongs to the later of its two blocks).
- **Network** (:class:`PardNet`): embeddings of the node/edge classes, absolute block id,
  block degree, virtual flag and (on virtual nodes only) the step ``t``, plus the
  relative block offset on edges, fed to the PPGN transformer
  (:class:`~genmodels.nets.ppgn.PPGNTransformer`).
- **Next-block head** (PARD's ``combine_training``): the real-node features of blocks
  ``<= b``, mean-pooled, predict the next block's size (``0`` = stop) and, given the size,
  its degree; trained jointly by cross-entropy. The first block's (size, degree) pair is
  drawn from its empirical distribution in the training set.
- **Sampling** (:mod:`genmodels.samplers.blockwise`): blocks are drawn one at a time by
  ``T`` ancestral steps, then the head draws the next block's size; jit-compiled with
  static padding ``N``.

Departures (stated in the recipes too): layer norm instead of masked batch norm (batch
statistics would couple the samples of a batch); the first block's degree is drawn
jointly with its size from the training set instead of by a separate network; a sampled
graph has at most ``N`` nodes (the largest training graph): the next block's size is drawn
among the sizes that fit the free slots (``info["overflow"]`` counts graphs that still
hit the cap, which this makes impossible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from genmodels.core.partial_order import partition_batch
from genmodels.core.precision import categorical
from genmodels.core.types import Array, Context, State
from genmodels.models.base import split_model
from genmodels.models.gdss import GDSS, MOLECULE_DATASETS, GDSSMolecules
from genmodels.models.mdm import _vocab, dense_to_pairs, pairs_to_dense
from genmodels.nets.embed import sinusoidal_embedding
from genmodels.nets.mlp import SiLUMLP
from genmodels.nets.ppgn import PPGNTransformerConfig, causal_block_mask
from genmodels.processes.discrete import DiscreteDiffusion
from genmodels.samplers.blockwise import blockwise_sample
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader
from genmodels.train.sharding import batch_sharded, data_mesh, replicated

__all__ = [
    "PardConfig",
    "PardGraphs",
    "PardMolecules",
    "PardNet",
    "block_arrays",
    "parallel_outputs",
    "prefix_pool",
]

PRECISIONS = {"float64": jnp.float64, "float32": jnp.float32}
# relative block offsets on edges are clipped to [-_REL, _REL]
_REL = 8


class PardNet(nnx.Module):
    """The PARD denoiser and next-block head.

    Args:
      net: PPGN-transformer sizes.
      num_node_classes, num_edge_classes: K_node, K_edge (edge class 0 = no edge).
      max_blocks: largest block id embedded (larger ids share the last row).
      max_size: largest block size the head can predict.
      max_degree: largest block degree.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        net: PPGNTransformerConfig,
        num_node_classes: int,
        num_edge_classes: int,
        max_blocks: int,
        max_size: int,
        max_degree: int,
        *,
        rngs: nnx.Rngs,
    ):
        c, ce = net.hidden, net.edge_hidden
        self.max_blocks, self.max_size, self.max_degree = max_blocks, max_size, max_degree
        self.node_embed = nnx.Embed(num_node_classes, c, rngs=rngs)
        self.edge_embed = nnx.Embed(num_edge_classes, ce, rngs=rngs)
        self.block_embed = nnx.Embed(max_blocks + 1, c, rngs=rngs)
        self.degree_embed = nnx.Embed(max_degree + 1, c, rngs=rngs)
        self.virtual_embed = nnx.Embed(2, c, rngs=rngs)
        self.rel_embed = nnx.Embed(2 * _REL + 1, ce, rngs=rngs)
        self.pair_embed = nnx.Embed(4, ce, rngs=rngs)
        self.time_mlp = SiLUMLP(c, c, c, rngs=rngs)
        self.body = net.make(rngs)
        self.node_out = SiLUMLP(c, c, num_node_classes, rngs=rngs)
        self.edge_out = SiLUMLP(ce, ce, num_edge_classes, rngs=rngs)
        self.size_head = SiLUMLP(c + 1, c, max_size + 1, rngs=rngs)
        self.size_embed = nnx.Embed(max_size + 1, c, rngs=rngs)
        self.degree_head = SiLUMLP(c + 1, c, max_degree + 1, rngs=rngs)

    def features(
        self,
        nodes: Array,
        edges: Array,
        block_id: Array,
        virtual: Array,
        degree: Array,
        t: Array,
        steps: int,
    ) -> tuple[Array, Array, Array]:
        """Node and edge features of a (partially virtual) graph.

        Args:
          nodes: [B, M] node classes; edges: [B, M, M] edge classes.
          block_id: [B, M] block of each node (-1: absent).
          virtual: [B, M] bool, the nodes being denoised.
          degree: [B, M] the degree of each node's block.
          t: [B] diffusion steps (read on virtual nodes only).
          steps: T (times enter as ``t / T``).

        Returns:
          ``(h [B, M, C], e [B, M, M, Ce], edge_mask [B, M, M])``.
        """
        present = block_id >= 0
        causal = causal_block_mask(block_id, virtual)  # [B, M, M]
        edge_mask = causal | jnp.swapaxes(causal, -1, -2)
        bid = jnp.clip(block_id, 0, self.max_blocks)
        temb = self.time_mlp(sinusoidal_embedding(t / steps * 1000.0, self.node_embed.features))
        h = (
            self.node_embed(nodes)
            + self.block_embed(bid)
            + self.degree_embed(jnp.clip(degree, 0, self.max_degree))
            + self.virtual_embed(virtual.astype(jnp.int32))
            + virtual[..., None] * temb[:, None, :]
        )
        h = h * present[..., None]
        rel = jnp.clip(bid[:, :, None] - bid[:, None, :], -_REL, _REL) + _REL
        pair = 2 * virtual[:, :, None].astype(jnp.int32) + virtual[:, None, :].astype(jnp.int32)
        e = self.edge_embed(edges) + self.rel_embed(rel) + self.pair_embed(pair)
        e = e * edge_mask[..., None]
        h, e = self.body(h, e, edge_mask, causal)
        return h, e, edge_mask

    def denoise(self, h: Array, e: Array) -> tuple[Array, Array]:
        """Clean-class logits: nodes [B, M, K_node], symmetric edges [B, M, M, K_edge]."""
        es = 0.5 * (e + jnp.swapaxes(e, 1, 2))
        return self.node_out(h), self.edge_out(es)

    def next_size_logits(self, pooled: Array, count: Array) -> Array:
        """[..., max_size + 1] logits of the next block's size from pooled real features."""
        return self.size_head(jnp.concatenate([pooled, count[..., None]], -1))

    def next_degree_logits(self, pooled: Array, count: Array, size: Array) -> Array:
        """[..., max_degree + 1] logits of the next block's degree given its size."""
        z = pooled + self.size_embed(jnp.clip(size, 0, self.max_size))
        return self.degree_head(jnp.concatenate([z, count[..., None]], -1))


def block_arrays(
    types: np.ndarray, bonds: np.ndarray, max_hops: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Sort graphs into PARD's generation order and attach their blocks.

    Args:
      types: [M, N] node classes (-1 on padding).
      bonds: [M, N, N] edge classes (0 = none).
      max_hops: hops of the weighted degree.

    Returns:
      ``(arrays, stats)``: ``types``, ``bonds`` (permuted), ``block_id`` [M, N] (-1 on
      padding), ``block_size`` and ``block_degree`` [M, B]; ``stats`` with
      ``max_blocks``, ``max_size``, ``max_degree``, ``mean_blocks`` and ``first``
      (the (size, degree) pairs of the first blocks, with their frequencies).
    """
    node_mask = types >= 0
    part = partition_batch(bonds > 0, node_mask, max_hops)
    perm = part["perm"]
    rows = np.arange(len(types))[:, None]
    t2 = types[rows, perm]
    b2 = bonds[rows[:, :, None], perm[:, :, None], perm[:, None, :]]
    bid = part["block_id"]
    bid_sorted = bid[rows, perm]
    arrays = {
        "types": t2.astype(np.int32),
        "bonds": b2.astype(np.int32),
        "block_id": bid_sorted.astype(np.int32),
        "block_size": part["block_size"].astype(np.int32),
        "block_degree": part["block_degree"].astype(np.int32),
    }
    first = np.stack([part["block_size"][:, 0], part["block_degree"][:, 0]], 1)
    pairs, counts = np.unique(first, axis=0, return_counts=True)
    stats = {
        "max_blocks": int(part["num_blocks"].max()),
        "max_size": int(part["block_size"].max()),
        "max_degree": int(part["block_degree"].max()),
        "mean_blocks": float(part["num_blocks"].mean()),
        "first": (pairs.astype(np.int32), (counts / counts.sum()).astype(np.float32)),
    }
    return arrays, stats


@dataclass(frozen=True)
class PardConfig:
    """A PARD recipe.

    Attributes:
      dataset: qm9, zinc250k, moses (molecules) or community_small, grid, ... (graphs).
      index_offset: how the molecule split file's ids map to rows (data/README.md).
      moses_limit: MOSES training molecules to load (``None``: all).
      max_hops: hops of the weighted degree (0: one block, plain diffusion).
      steps: denoising steps per block (PARD: 50).
      schedule: ``cosine`` (PARD) or ``linear``.
      ce_coeff: weight of the cross-entropy term (PARD: 0.1).
      net: PPGN-transformer sizes.
      precision: categorical sampling precision.
      sample_use_ema: sample with the EMA parameters.
      sample_batch: graphs per sampling batch.
      eval_fcd, eval_nspdk: molecule metrics to compute.
    """

    dataset: str = "qm9"
    index_offset: int = 1
    moses_limit: int | None = None
    max_hops: int = 3
    steps: int = 50
    schedule: str = "cosine"
    ce_coeff: float = 0.1
    net: PPGNTransformerConfig = field(default_factory=PPGNTransformerConfig)
    precision: str = "float64"
    sample_use_ema: bool = True
    sample_batch: int = 512
    eval_fcd: bool = True
    eval_nspdk: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    @property
    def sampler(self) -> str:
        """The one sampler, block by block (recorded in metrics files)."""
        return "blockwise"

    @property
    def sample_steps(self) -> int:
        """Denoising steps per block."""
        return self.steps

    def build(self) -> PardMolecules | PardGraphs:
        if self.dataset in MOLECULE_DATASETS:
            return PardMolecules(self)
        return PardGraphs(self)


class _Pard:
    """Shared PARD logic; subclasses give the data (``raw_arrays``) and decoding."""

    samplers = ("blockwise",)

    def __init__(self, config: PardConfig):
        if config.max_hops < 0:
            raise ValueError(f"max_hops must be >= 0, got {config.max_hops}")
        if config.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {config.precision!r}; choose {list(PRECISIONS)}")
        self.config = config

    # ------------------------------------------------------------------ data
    def raw_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Training ``(types [M, N] (-1 padding), bonds [M, N, N])``."""
        raise NotImplementedError  # abstract hook of the two domains

    num_node_classes: int
    num_edge_classes: int

    @cached_property
    def blocks(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The training graphs in generation order with their blocks (:func:`block_arrays`)."""
        types, bonds = self.raw_arrays()
        return block_arrays(np.asarray(types), np.asarray(bonds), self.config.max_hops)

    @property
    def max_nodes(self) -> int:
        return self.blocks[0]["types"].shape[1]

    @cached_property
    def processes(self) -> dict[str, DiscreteDiffusion]:
        c = self.config
        mk = lambda k: DiscreteDiffusion(k, c.steps, c.schedule, ce_coeff=c.ce_coeff)
        return {"nodes": mk(self.num_node_classes), "edges": mk(self.num_edge_classes)}

    def loader(self) -> ArrayLoader:
        arrays, _ = self.blocks
        return ArrayLoader(
            arrays, batch_size=self.config.train.batch_size, seed=self.config.train.seed
        )

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> PardNet:
        _, st = self.blocks
        n = self.max_nodes
        return PardNet(
            self.config.net,
            self.num_node_classes,
            self.num_edge_classes,
            max_blocks=n,
            max_size=n,
            max_degree=max(n - 1, 1),
            rngs=nnx.Rngs(key),
        )

    def loss_fn(self, model: PardNet, batch: dict, key: Array):
        """VLB + ``ce_coeff`` CE of every block in one pass, plus the next-block CE.

        Returns:
          ``(loss, metrics)``: the per-graph loss averaged over the batch, with its node,
          edge and block parts.
        """
        procs = self.processes
        types = jnp.asarray(batch["types"])
        bid = jnp.asarray(batch["block_id"])  # [B, N]
        bsize = jnp.asarray(batch["block_size"])  # [B, Bm]
        bdeg = jnp.asarray(batch["block_degree"])  # [B, Bm]
        b, n = types.shape
        node_mask = bid >= 0
        x0 = jnp.maximum(types, 0)
        e0 = dense_to_pairs(jnp.asarray(batch["bonds"]))  # [B, P]
        pmask = dense_to_pairs(node_mask[:, :, None] & node_mask[:, None, :])

        kt, kn, ke = jax.random.split(key, 3)
        t = procs["nodes"].sample_times(kt, b)
        xt, _ = procs["nodes"].corrupt(kn, x0, t, node_mask)
        et, _ = procs["edges"].corrupt(ke, e0, t, pmask)
        e0d, etd = pairs_to_dense(e0, n), pairs_to_dense(et, n)

        node_logits, edge_logits, h_real = parallel_outputs(
            model, x0, xt, e0d, etd, bid, bdeg, t, self.config.steps
        )
        l_nodes = procs["nodes"].loss(node_logits, x0, xt, t, mask=node_mask)
        l_edges = procs["edges"].loss(edge_logits, e0, et, t, mask=pmask)

        # next-block head on the real nodes: prefix b = blocks <= b
        pooled, cnt = prefix_pool(h_real, bid, bsize.shape[1])
        nxt_size = jnp.concatenate([bsize[:, 1:], jnp.zeros_like(bsize[:, :1])], 1)
        nxt_deg = jnp.concatenate([bdeg[:, 1:], jnp.zeros_like(bdeg[:, :1])], 1)
        bmask = bsize > 0
        ls = _ce(model.next_size_logits(pooled, cnt), nxt_size)
        ld = _ce(model.next_degree_logits(pooled, cnt, nxt_size), nxt_deg)
        l_block = jnp.sum((ls + ld) * bmask, 1)

        total = l_nodes + l_edges + l_block
        loss = jnp.mean(total)
        size_acc = jnp.sum(
            (jnp.argmax(model.next_size_logits(pooled, cnt), -1) == nxt_size) * bmask
        ) / jnp.maximum(jnp.sum(bmask), 1)
        return loss, {
            "loss_nodes": jnp.mean(l_nodes),
            "loss_edges": jnp.mean(l_edges),
            "loss_block": jnp.mean(l_block),
            "size_acc": size_acc,
        }

    # -------------------------------------------------------------- sampling
    @cached_property
    def _first_block(self) -> tuple[np.ndarray, np.ndarray]:
        return self.blocks[1]["first"]

    def sample_states(
        self, model: PardNet, key: Array, batch: int, *, steps: int | None = None
    ) -> tuple[State, Context, dict]:
        """One jitted batch of sampled graphs.

        Returns:
          ``(state, ctx, info)``: ``{"nodes": [B, N], "edges": [B, P]}`` int32 classes in
          generation order, ``ctx["block_id"]`` [B, N] (-1: no node), and ``info`` with
          ``blocks`` [B], ``overflow`` [B] (truncated at ``N`` slots) and ``nfe``.
        """
        fn, mesh = self._compiled(model, batch, int(steps or self.config.steps))
        _, params, _ = split_model(model)
        if mesh is not None:
            params = jax.device_put(params, replicated(mesh))
        return fn(params, key)

    def _compiled(self, model, batch: int, steps: int):
        cache = self.__dict__.setdefault("_fn_cache", {})
        graphdef, _, rest = split_model(model)
        ckey = (batch, steps, graphdef)
        if ckey in cache:
            return cache[ckey]
        n = self.max_nodes
        procs = {k: dataclass_replace_steps(p, steps) for k, p in self.processes.items()}
        pairs, probs = self._first_block
        pairs_j, logp = jnp.asarray(pairs), jnp.log(jnp.asarray(probs))
        prec = PRECISIONS[self.config.precision]
        iu, ju = np.triu_indices(n, 1)
        # data parallel over all devices when the batch splits evenly (parameters
        # replicated, every per-graph array sharded along the batch)
        ndev = jax.device_count()
        mesh = data_mesh() if ndev > 1 and batch % ndev == 0 else None

        @jax.jit
        def run(params, key):
            net = nnx.merge(graphdef, params, rest)
            k0, ks = jax.random.split(key)
            first = pairs_j[jax.random.categorical(k0, logp, shape=(batch,))]  # [B, 2]
            state = {
                "nodes": jnp.zeros((batch, n), jnp.int32),
                "edges": jnp.zeros((batch, len(iu)), jnp.int32),
            }
            ctx = {
                "block_id": jnp.full((batch, n), -1, jnp.int32),
                "virtual": jnp.zeros((batch, n), bool),
                "degree": jnp.zeros((batch, n), jnp.int32),
                "next_size": first[:, 0],
                "next_degree": first[:, 1],
                "n_done": jnp.zeros((batch,), jnp.int32),
                "done": jnp.zeros((batch,), bool),
                "overflow": jnp.zeros((batch,), bool),
                "masks": {
                    "nodes": jnp.zeros((batch, n), jnp.float32),
                    "edges": jnp.zeros((batch, len(iu)), jnp.float32),
                },
            }
            if mesh is not None:
                state, ctx = jax.lax.with_sharding_constraint((state, ctx), batch_sharded(mesh))

            def open_block(state, ctx, b):
                slot = jnp.arange(n)[None, :]
                start = ctx["n_done"][:, None]
                size = jnp.where(ctx["done"], 0, ctx["next_size"])[:, None]
                new = (slot >= start) & (slot < start + size)  # [B, N]
                overflow = ctx["overflow"] | (ctx["n_done"] + size[:, 0] > n)
                bid = jnp.where(new, b, ctx["block_id"])
                deg = jnp.where(new, ctx["next_degree"][:, None], ctx["degree"])
                real = bid >= 0
                pm = new[:, :, None] & (real[:, None, :] | new[:, None, :])
                pm = pm | jnp.swapaxes(pm, 1, 2)
                masks = {
                    "nodes": new.astype(jnp.float32),
                    "edges": pm[:, iu, ju].astype(jnp.float32),
                }
                ctx = dict(ctx, block_id=bid, virtual=new, degree=deg, masks=masks)
                ctx["overflow"] = overflow
                return state, ctx

            def model_fn(state, t, ctx):
                edges = pairs_to_dense(state["edges"], n)
                h, e, _ = net.features(
                    state["nodes"], edges, ctx["block_id"], ctx["virtual"], ctx["degree"], t, steps
                )
                nl, el = net.denoise(h, e)
                return {"nodes": nl, "edges": el[:, iu, ju]}

            def close_block(state, ctx, key):
                real = ctx["block_id"] >= 0
                n_done = jnp.sum(real, 1).astype(jnp.int32)
                t0 = jnp.zeros((batch,), jnp.float32)
                edges = pairs_to_dense(state["edges"], n)
                nov = jnp.zeros_like(ctx["virtual"])
                h, _, _ = net.features(
                    state["nodes"], edges, ctx["block_id"], nov, ctx["degree"], t0, steps
                )
                pooled = jnp.sum(h * real[..., None], 1) / jnp.maximum(n_done, 1)[:, None]
                cnt = n_done / n
                kz, kd = jax.random.split(key)
                # sizes that fit the free slots only (N: the training set's largest graph)
                zl = net.next_size_logits(pooled, cnt)
                fits = jnp.arange(zl.shape[-1])[None, :] <= (n - n_done)[:, None]
                size = categorical(kz, jnp.where(fits, zl, -jnp.inf), precision=prec)
                deg = categorical(kd, net.next_degree_logits(pooled, cnt, size), precision=prec)
                done = (size == 0) | (n_done >= n)
                overflow = ctx["overflow"] | ((n_done >= n) & (size > 0))
                ctx = dict(
                    ctx,
                    virtual=nov,
                    n_done=n_done,
                    next_size=size.astype(jnp.int32),
                    next_degree=deg.astype(jnp.int32),
                    overflow=overflow,
                )
                return state, ctx, done

            state, ctx, info = blockwise_sample(
                model_fn,
                procs,
                state,
                ctx,
                ks,
                open_block=open_block,
                close_block=close_block,
                max_blocks=n,
                precision=prec,
            )
            info = dict(info, overflow=ctx["overflow"])
            return state, ctx, info

        cache[ckey] = run, mesh
        return run, mesh

    def to_graphs(self, state: State, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """Host arrays ``(types [B, N] (-1 padding), bonds [B, N, N])`` of a sampled batch."""
        real = np.asarray(ctx["block_id"]) >= 0
        types = np.where(real, np.asarray(state["nodes"]), -1)
        bonds = pairs_to_dense(np.asarray(state["edges"]), real.shape[1])
        bonds = bonds * (real[:, :, None] & real[:, None, :])
        return types.astype(np.int64), bonds.astype(np.int64)

    def _batches(self, model, key, num, steps, batch_size, progress):
        batch = batch_size or self.config.sample_batch
        rounds = math.ceil(num / batch)
        for r in tqdm(range(rounds), desc="sample", disable=not progress or rounds == 1):
            out, ctx, info = self.sample_states(
                model, jax.random.fold_in(key, r), batch, steps=steps
            )
            yield jax.device_get(out), jax.device_get(ctx), jax.device_get(info)


def parallel_outputs(
    model: PardNet,
    x0: Array,
    xt: Array,
    e0: Array,
    et: Array,
    block_id: Array,
    block_degree: Array,
    t: Array,
    steps: int,
) -> tuple[Array, Array, Array]:
    """The denoising logits of every block in one pass over the doubled graph.

    Nodes ``0..N-1`` are the clean (real) graph, nodes ``N..2N-1`` its noised (virtual)
    copy; the virtual copy of block ``b`` sees its own block and the real blocks ``< b``
    (:func:`~genmodels.nets.ppgn.causal_block_mask`), so its outputs equal those of a
    sequential pass over the real blocks ``< b`` plus the noised block ``b``.

    Args:
      model: the network.
      x0, xt: [B, N] clean and noised node classes.
      e0, et: [B, N, N] clean and noised edge classes (symmetric).
      block_id: [B, N] blocks (-1: padding); block_degree: [B, Bm].
      t: [B] steps; steps: T.

    Returns:
      ``(node_logits [B, N, K_node], edge_logits [B, P, K_edge], h_real [B, N, C])``:
      each node's and each pair's logits from the block that generates it (a pair belongs
      to the later of its two blocks), and the real nodes' features.
    """
    n = x0.shape[1]
    node_mask = block_id >= 0
    bi, bj = block_id[:, :, None], block_id[:, None, :]
    vv = jnp.where(bi == bj, et, 0)
    vr = jnp.where(bj < bi, et, 0)  # virtual i -> real j of an earlier block
    edges2 = jnp.concatenate(
        [jnp.concatenate([e0, jnp.swapaxes(vr, 1, 2)], 2), jnp.concatenate([vr, vv], 2)], 1
    )  # [B, 2N, 2N]
    nodes2 = jnp.concatenate([x0, xt], 1)
    bid2 = jnp.concatenate([block_id, block_id], 1)
    virt2 = jnp.concatenate([jnp.zeros_like(node_mask), node_mask], 1)
    deg_node = jnp.take_along_axis(block_degree, jnp.maximum(block_id, 0), 1) * node_mask
    deg2 = jnp.concatenate([deg_node, deg_node], 1)
    h, e, _ = model.features(nodes2, edges2, bid2, virt2, deg2, t, steps)
    node_logits = model.node_out(h[:, n:])
    e_vv = e[:, n:, n:]
    cross = 0.5 * (e[:, n:, :n] + jnp.swapaxes(e[:, :n, n:], 1, 2))  # (virtual i, real j)
    same = 0.5 * (e_vv + jnp.swapaxes(e_vv, 1, 2))
    pair = jnp.where(
        (bi == bj)[..., None],
        same,
        jnp.where((bj < bi)[..., None], cross, jnp.swapaxes(cross, 1, 2)),
    )
    edge_logits = dense_to_pairs_last(model.edge_out(pair))
    return node_logits, edge_logits, h[:, :n]


def prefix_pool(h: Array, block_id: Array, num_blocks: int) -> tuple[Array, Array]:
    """Mean real-node features of every prefix ``blocks <= b`` and its node fraction.

    Args:
      h: [B, N, C] real-node features; block_id: [B, N] (-1: padding).
      num_blocks: Bm.

    Returns:
      ``(pooled [B, Bm, C], count [B, Bm])`` with ``count`` = prefix nodes / N.
    """
    n = h.shape[1]
    onehot = jax.nn.one_hot(block_id, num_blocks) * (block_id >= 0)[..., None]  # [B, N, Bm]
    sums = jnp.cumsum(jnp.einsum("bnk,bnc->bkc", onehot, h), axis=1)
    counts = jnp.cumsum(jnp.sum(onehot, 1), axis=1)  # [B, Bm]
    return sums / jnp.maximum(counts, 1.0)[..., None], counts / n


def _ce(logits: Array, target: Array) -> Array:
    """Cross-entropy per position [...] of logits [..., K] against int targets [...]."""
    logp = jax.nn.log_softmax(logits, -1)
    k = logits.shape[-1]
    return -jnp.take_along_axis(logp, jnp.clip(target, 0, k - 1)[..., None], -1)[..., 0]


def dense_to_pairs_last(a: Array) -> Array:
    """The strict upper triangle of [B, N, N, K] as [B, P, K]."""
    iu, ju = np.triu_indices(a.shape[1], 1)
    return a[:, iu, ju]


def dataclass_replace_steps(p: DiscreteDiffusion, steps: int) -> DiscreteDiffusion:
    """The process with another number of steps (the schedule is defined on ``t / T``)."""
    import dataclasses

    return p if steps == p.steps else dataclasses.replace(p, steps=steps)


class PardMolecules(_Pard):
    """PARD on QM9 / ZINC250k / MOSES (GDSS's data, decoding and metrics)."""

    sample_suffix = ".smi"

    def __init__(self, config: PardConfig):
        if config.dataset not in MOLECULE_DATASETS:
            raise ValueError(f"unknown molecule data set {config.dataset!r}")
        super().__init__(config)

    @cached_property
    def data(self):
        return GDSSMolecules.data.func(self)

    @property
    def domain(self):
        return self.data.domain

    @cached_property
    def splits(self) -> tuple[list[str], list[str]]:
        return self.data.train_smiles, self.data.test_smiles

    @property
    def num_node_classes(self) -> int:  # type: ignore[override]
        return _vocab(self.config.dataset)[0]

    num_edge_classes = 4  # none, single, double, triple (Kekule)

    def raw_arrays(self):
        return self.data.arrays(self.data.train_idx)

    def decode_smiles(self, state: State, ctx: Context) -> tuple[list[str], list[str]]:
        """``(corrected, raw)`` canonical SMILES of a sampled batch (GDSS decoding)."""
        types, bonds = self.to_graphs(state, ctx)
        x = np.eye(self.num_node_classes, dtype=np.float32)[np.maximum(types, 0)]
        x *= (types >= 0)[..., None]
        dense = {"x": x, "adj": bonds.astype(np.float32)}
        return self.domain.decode_smiles(dense, {"node_mask": (types >= 0).astype(np.float32)})

    def sample(
        self,
        model: PardNet,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        correction: bool = True,
        **options: Any,
    ) -> list[str]:
        """``num`` canonical SMILES (``""`` where decoding failed).

        Args:
          sampler: ``blockwise`` (the only one).
          steps: denoising steps per block (default: the recipe's).
          correction: GDSS's valency correction (``False``: the raw molecules).
        """
        if options:
            raise ValueError(f"PARD sample got unknown options {sorted(options)}")
        smiles, raw = self.sample_pairs(
            model,
            key,
            num,
            sampler=sampler,
            steps=steps,
            batch_size=batch_size,
            progress=progress,
        )
        return smiles if correction else raw

    def sample_pairs(
        self, model, key, num, *, sampler=None, steps=None, batch_size=None, progress=True
    ) -> tuple[list[str], list[str]]:
        """The same ``num`` samples decoded with and without valency correction."""
        _check_sampler(sampler)
        out: list[str] = []
        raws: list[str] = []
        for st, ctx, _ in self._batches(model, key, num, steps, batch_size, progress):
            smiles, raw = self.decode_smiles(st, ctx)
            out.extend(smiles)
            raws.extend(raw)
        return out[:num], raws[:num]

    write_samples = GDSSMolecules.write_samples
    read_samples = GDSSMolecules.read_samples
    evaluate = GDSSMolecules.evaluate
    _reference_stats = GDSSMolecules._reference_stats


class PardGraphs(_Pard):
    """PARD on generic graphs (one node class, edge / no edge; GDSS's data and MMDs)."""

    sample_suffix = ".g6"
    num_node_classes = 1
    num_edge_classes = 2

    @cached_property
    def splits(self) -> tuple[list[nx.Graph], list[nx.Graph]]:
        return GDSS.splits.func(self)

    def raw_arrays(self):
        train, _ = self.splits
        n = max(g.number_of_nodes() for g in train)
        types = np.full((len(train), n), -1, np.int32)
        bonds = np.zeros((len(train), n, n), np.int32)
        for i, g in enumerate(train):
            g = nx.convert_node_labels_to_integers(g)
            k = g.number_of_nodes()
            types[i, :k] = 0
            a = nx.to_numpy_array(g, nodelist=range(k)) > 0
            bonds[i, :k, :k] = a
            np.fill_diagonal(bonds[i], 0)
        return types, bonds

    def sample(
        self,
        model: PardNet,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        **options: Any,
    ) -> list[nx.Graph]:
        """``num`` graphs (isolated nodes dropped, as GDSS's decoding)."""
        if options:
            raise ValueError(f"PARD sample got unknown options {sorted(options)}")
        _check_sampler(sampler)
        graphs: list[nx.Graph] = []
        for st, ctx, _ in self._batches(model, key, num, steps, batch_size, progress):
            types, bonds = self.to_graphs(st, ctx)
            for ty, bo in zip(types, bonds, strict=True):
                k = int((ty >= 0).sum())
                g = nx.from_numpy_array((bo[:k, :k] > 0).astype(np.int8))
                g.remove_nodes_from(list(nx.isolates(g)))
                graphs.append(g)
        return graphs[:num]

    write_samples = GDSS.write_samples
    read_samples = GDSS.read_samples
    evaluate = GDSS.evaluate


def _check_sampler(sampler: str | None) -> None:
    if sampler not in (None, "blockwise"):
        raise ValueError(f"unknown PARD sampler {sampler!r}; PARD samples with 'blockwise'")
