"""PARD: permutation-invariant autoregressive diffusion for graphs and molecules.

Zhao, Ding, Akoglu, NeurIPS 2024; settings from LingxiaoShawn/Pard (``pard/configs/*.yaml``,
``pard/parallel/task.py``). The pieces:

- **Task**: molecules (:class:`~genmodels.models.tasks.molecules.MoleculeTask`, bonds
  none/single/double/triple) or generic graphs (:class:`~genmodels.models.tasks.graphs.GraphTask`,
  edge / no edge); ``virtual_class`` adds the reference's virtual class to both streams.
- **Partial order** (:func:`genmodels.core.partial_order.block_arrays`): nodes are peeled
  into blocks by weighted degree over 1..``max_hops`` hops and stored sorted by block
  (block ``b`` is a contiguous run of slots); block 0 is generated first.
- **Block-wise discrete diffusion** (:class:`~genmodels.processes.discrete.DiscreteDiffusion`:
  cosine schedule, uniform noise, ``T = 50`` steps per block, VLB + 0.1 CE) of the current
  block's nodes and its edges to itself and every earlier node.
- **Parallel training** (Sec. 3.3, :func:`~genmodels.nets.ppgn.parallel_outputs`): the graph
  doubled into clean *real* and noised *virtual* nodes under a block-causal mask gives every
  block's prediction in one pass, one step ``t`` per graph (``blockwise_time: False``).
- **Network** (:class:`~genmodels.nets.ppgn.PardNet`): the PPGN transformer, the output heads
  and input residual (``net.output_heads``, ``net.input_residual``), and the next-block head
  (``combine_training``): pooled real features of blocks ``<= b`` give the next block's size
  (0 = stop) and degree. The first block's (size, degree) is drawn from the training set.
- **Sampling** (:func:`genmodels.samplers.blockwise.slot_block_sample`, ``blockwise``):
  ``T`` ancestral steps per block, then the head draws the next block; one jit per batch.

Departures: layer norm instead of masked batch norm (batch statistics couple the samples);
the first block's degree is drawn with its size from the training set; a graph has at most
``N`` nodes (the largest training graph), so next-block sizes are drawn among those that fit
(``info["overflow"]`` stays false); relative block offsets always enter as a learned
embedding. The reference's switches (virtual class, input residual, output heads, absolute
block id) default to it; the shipped ``pard_qm9`` predates them and its recipe turns the
first three off. ``validity_wo_correction`` is PARD's relaxed validity, ``plain_validity_wo_correction``
its plain one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.core.partial_order import block_arrays
from genmodels.core.types import Array, Context, State
from genmodels.datasets.graphs import typed_graphs
from genmodels.datasets.registry import dataset_kind
from genmodels.datasets.user import UserData
from genmodels.domains.graphs import dense_to_pairs, pairs_to_dense
from genmodels.models.runner import (
    Runner,
    decode_rounds,
    resolve_sampler,
    sampler_names,
    shard_batch,
    task_samples,
)
from genmodels.models.tasks.graphs import GraphTask
from genmodels.models.tasks.molecules import MoleculeTask
from genmodels.nets.ppgn import PardNet, PPGNTransformerConfig, parallel_outputs, prefix_pool
from genmodels.processes.discrete import DiscreteDiffusion
from genmodels.samplers.blockwise import slot_block_sample, with_steps
from genmodels.samplers.registry import PRECISIONS
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader

__all__ = ["Pard", "PardConfig"]


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
      virtual_class: one noise-only class more per stream, masked at the last step.
      net: PPGN-transformer sizes and network switches.
      precision: categorical sampling precision.
      sample_use_ema: sample with the EMA parameters.
      sample_batch: graphs per sampling batch.
      eval_fcd, eval_nspdk: molecule metrics to compute.
    """

    dataset: str = "qm9"
    data: UserData = UserData()  # options of a user data file (``--dataset PATH``)
    index_offset: int = 1
    moses_limit: int | None = None
    max_hops: int = 3
    steps: int = 50
    schedule: str = "cosine"
    ce_coeff: float = 0.1
    virtual_class: bool = True
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

    def make_task(self) -> tuple[MoleculeTask | GraphTask, int, int, Callable]:
        """The data kind as typed graphs: ``(task, K_node, K_edge, train_graphs)``.

        A molecule data set gives atom classes and bonds none/single/double/triple (Kekule);
        any other data set generic graphs, one node class and edge / no edge.
        ``train_graphs()`` returns ``(types [M, N] (-1: padding), bonds [M, N, N])``.
        """
        if dataset_kind(self.dataset) == "molecules":
            mol = MoleculeTask.of(self, plain_validity=True)
            return mol, mol.num_atom_types, 4, lambda: tuple(mol.train_arrays().values())
        # N and F of GDSS's dense arrays: PARD reads only the splits and the decoding
        graphs = GraphTask(self.dataset, 0, 1, self.data)
        return graphs, 1, 2, lambda: typed_graphs(graphs.splits[0])

    def build(self) -> Pard:
        return Pard(self)


def _ce(logits: Array, target: Array) -> Array:
    """Cross-entropy per position [...] of logits [..., K] against int targets [...]."""
    logp = jax.nn.log_softmax(logits, -1)
    k = logits.shape[-1]
    return -jnp.take_along_axis(logp, jnp.clip(target, 0, k - 1)[..., None], -1)[..., 0]


class Pard:
    """PARD on one task: molecules or generic graphs (see the module docstring)."""

    def __init__(self, config: PardConfig):
        if config.max_hops < 0:
            raise ValueError(f"max_hops must be >= 0, got {config.max_hops}")
        if config.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {config.precision!r}; choose {list(PRECISIONS)}")
        self.config = config
        self.task, k_node, k_edge, self._train_graphs = config.make_task()
        self.num_node_classes, self.num_edge_classes = k_node, k_edge
        c = config
        v = c.virtual_class  # the last class of each stream
        mk = lambda k: DiscreteDiffusion(k + v, c.steps, c.schedule, ce_coeff=c.ce_coeff, virtual=v)
        self.processes = {"nodes": mk(k_node), "edges": mk(k_edge)}
        self.samplers = sampler_names(self.processes, config.sampler)
        self.runner = Runner()
        # sample files and metrics are the task's
        self.sample_suffix = self.task.sample_suffix
        self.eval_splits, self.sample_suffixes = self.task.eval_splits, self.task.sample_suffixes
        self.write_samples, self.read_samples = self.task.write_samples, self.task.read_samples
        self.evaluate = self.task.evaluate

    # ------------------------------------------------------------------ data
    def raw_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Training ``(types [M, N] (-1 padding), bonds [M, N, N])``, in file order."""
        return self._train_graphs()

    @cached_property
    def blocks(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The training graphs in generation order with their blocks (:func:`block_arrays`)."""
        types, bonds = self.raw_arrays()
        return block_arrays(np.asarray(types), np.asarray(bonds), self.config.max_hops)

    @property
    def max_nodes(self) -> int:
        return self.blocks[0]["types"].shape[1]

    def loader(self) -> ArrayLoader:
        tc = self.config.train
        return ArrayLoader(self.blocks[0], batch_size=tc.batch_size, seed=tc.seed)

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> PardNet:
        n = self.max_nodes
        return PardNet(
            self.config.net,
            self.processes["nodes"].num_classes,
            self.processes["edges"].num_classes,
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
        size_logits = model.next_size_logits(pooled, cnt)
        ls = _ce(size_logits, nxt_size)
        ld = _ce(model.next_degree_logits(pooled, cnt, nxt_size), nxt_deg)
        l_block = jnp.sum((ls + ld) * bmask, 1)

        loss = jnp.mean(l_nodes + l_edges + l_block)
        hits = (jnp.argmax(size_logits, -1) == nxt_size) * bmask
        return loss, {
            "loss_nodes": jnp.mean(l_nodes),
            "loss_edges": jnp.mean(l_edges),
            "loss_block": jnp.mean(l_block),
            "size_acc": jnp.sum(hits) / jnp.maximum(jnp.sum(bmask), 1),
        }

    # -------------------------------------------------------------- sampling
    def _compiled(self, model: PardNet, batch: int, sampler, steps, options: dict):
        """``fn(key) -> (state, ctx, info)``: one jitted round of ``batch`` graphs."""
        name, steps, opts = resolve_sampler(self.processes, sampler, steps, self.config, **options)
        n = self.max_nodes
        procs = with_steps(self.processes, steps)
        pairs, probs = self.blocks[1]["first"]
        first = (jnp.asarray(pairs), jnp.log(jnp.asarray(probs)))  # host constants
        prec = PRECISIONS[opts.precision]
        iu, ju = np.triu_indices(n, 1)

        def body(net: PardNet, key: Array, mesh):
            def outputs(state, ctx, t):  # (node logits, edge logits, h)
                edges = pairs_to_dense(state["edges"], n)
                args = (ctx["block_id"], ctx["virtual"], ctx["degree"])
                return net(state["nodes"], edges, *args, t, steps)

            def denoise(state, t, ctx):
                nl, el, _ = outputs(state, ctx, t)
                return {"nodes": nl, "edges": el[:, iu, ju]}

            def head(state, ctx):  # the unused logits are dead code under jit
                real = ctx["block_id"] >= 0
                h = outputs(state, ctx, jnp.zeros((batch,), jnp.float32))[2]
                n_done = ctx["n_done"]
                pooled = jnp.sum(h * real[..., None], 1) / jnp.maximum(n_done, 1)[:, None]
                cnt = n_done / n
                return net.next_size_logits(pooled, cnt), (
                    lambda size: net.next_degree_logits(pooled, cnt, size)
                )

            return slot_block_sample(
                denoise,
                head,
                procs,
                key,
                batch=batch,
                slots=n,
                first=first,
                precision=prec,
                shard=lambda tree: shard_batch(tree, mesh),
            )

        return self.runner.compile(model, batch, (name, steps, opts), body)

    def sample_states(
        self, model: PardNet, key: Array, batch: int, *, sampler=None, steps=None, **options
    ) -> tuple[State, Context, dict]:
        """One jitted batch of sampled graphs.

        Returns:
          ``(state, ctx, info)``: ``{"nodes": [B, N], "edges": [B, P]}`` int32 classes in
          generation order, ``ctx["block_id"]`` [B, N] (-1: no node), and ``info`` with
          ``blocks`` [B], ``overflow`` [B] (truncated at ``N`` slots) and ``nfe``.
        """
        return self._compiled(model, batch, sampler, steps, options)(key)

    def to_graphs(self, state: State, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """Host arrays ``(types [B, N] (-1 padding), bonds [B, N, N])`` of a sampled batch."""
        real = np.asarray(ctx["block_id"]) >= 0
        types = np.where(real, np.asarray(state["nodes"]), -1)
        bonds = pairs_to_dense(np.asarray(state["edges"]), real.shape[1])
        bonds = bonds * (real[:, :, None] & real[:, None, :])
        return types.astype(np.int64), bonds.astype(np.int64)

    def decode(self, state: State, ctx: Context) -> list:
        """The task's objects of a sampled host batch (molecules: corrected and raw SMILES;
        graphs: isolated nodes dropped)."""
        types, bonds = self.to_graphs(state, ctx)
        real = types >= 0
        x = np.eye(self.num_node_classes, dtype=np.float32)[np.maximum(types, 0)]
        dense = {"x": x * real[..., None], "adj": bonds.astype(np.float32)}
        return self.task.decode(dense, {"node_mask": real.astype(np.float32)})

    def sample_parts(
        self, model, key, num, *, sampler=None, steps=None, batch_size=None, progress=True
    ) -> list:
        """The decoded molecules or graphs of every sampling round, one list per round
        (round ``r``: ``fold_in(key, r)``); ``task.pairs(parts, num)`` gives both SMILES
        forms of molecules, ``task.collate`` the samples."""
        batch = batch_size or self.config.sample_batch
        fn = self._compiled(model, batch, sampler, steps, {})
        return decode_rounds(self.decode, fn, num, batch, key, progress)

    def sample(self, model, key, num, *, sampler=None, steps=None, **options) -> list:
        """``num`` samples: canonical SMILES (``""`` where decoding failed) or graphs.

        Args:
          sampler: ``blockwise`` (the only one).
          steps: denoising steps per block (default: the recipe's).
          options: ``batch_size``, ``progress`` (:meth:`sample_parts`), else the task's
            (molecules: ``correction=False`` gives raw SMILES).
        """
        kw = {k: options.pop(k) for k in ("batch_size", "progress") if k in options}
        parts = lambda: self.sample_parts(model, key, num, sampler=sampler, steps=steps, **kw)  # noqa: E731
        return task_samples(self.task, parts, num, options)
