"""GDSS: score-based graph generation with a system of SDEs (Jo, Lee, Hwang, ICML 2022).

The state is a node-feature matrix ``x`` [B, N, F] and a weighted adjacency ``adj``
[B, N, N], each diffused by its own SDE (eq. 3 of the paper); two networks predict the two
partial scores (ScoreNetworkX and ScoreNetworkA, :mod:`genmodels.nets.graph`); sampling
solves the reverse system with a predictor-corrector or the S4 solver
(:mod:`genmodels.samplers.pc`). Settings follow the reference configs
(harryjo97/GDSS ``config/*.yaml``), cited per recipe.

Faithful details: the adjacency noise is symmetric (the domain's ``constrain`` keeps the
upper triangle, which equals GDSS's ``gen_noise(sym=True)``); the loss is GDSS's
``0.5 * sum`` of ``(score * std + z)^2`` per graph for each of x and adj, summed (the two
networks have disjoint parameters, so the sum trains each on its own loss as GDSS's two
optimizers do, and gradients are clipped per network); VP/sub-VP scores are the network
output divided by ``-std(t)``, VE scores the raw output; training times are
``U(eps, 1)`` with ``eps = 1e-5``, sampling runs to ``eps = 1e-4``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from genmodels.core.masks import graph_masks
from genmodels.core.types import Array, Context, State
from genmodels.datasets.graphs import load_graphs, train_test_split
from genmodels.domains.graphs import GraphDomain, read_graph6, write_graph6
from genmodels.models.base import split_model
from genmodels.nets.graph import GDSSNetConfig
from genmodels.processes.sde import VESDE, VPSDE, subVPSDE
from genmodels.samplers.pc import (
    EulerMaruyama,
    LangevinCorrector,
    ReverseDiffusion,
    pc_sample,
    s4_sample,
)
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader
from genmodels.train.sharding import batch_sharded, data_mesh, replicated


@dataclass(frozen=True)
class SDESpec:
    """One leaf's SDE, as in GDSS's ``sde`` config block.

    Attributes:
      kind: ``VP``, ``subVP`` or ``VE``.
      beta_min, beta_max: VP/sub-VP beta range, or VE sigma_min/sigma_max.
      num_scales: discretization steps N (GDSS: 1000).
    """

    kind: Literal["VP", "subVP", "VE"] = "VP"
    beta_min: float = 0.1
    beta_max: float = 1.0
    num_scales: int = 1000

    def make(self):
        if self.kind == "VP":
            return VPSDE(beta_min=self.beta_min, beta_max=self.beta_max, N=self.num_scales)
        if self.kind == "subVP":
            return subVPSDE(beta_min=self.beta_min, beta_max=self.beta_max, N=self.num_scales)
        return VESDE(sigma_min=self.beta_min, sigma_max=self.beta_max, N=self.num_scales)


#: sampler name -> (predictor, uses the Langevin corrector); "s4" is GDSS's S4 solver
SAMPLERS = ("euler", "euler_langevin", "reverse", "reverse_langevin", "s4")


@dataclass(frozen=True)
class GDSSConfig:
    """A GDSS recipe for a generic-graph data set.

    Attributes:
      dataset: community_small, ego_small, ENZYMES or grid.
      net: network sizes (GDSS ``model`` block).
      sde_x, sde_adj: the two SDEs.
      train_eps: smallest training time.
      sampler: default sampler (one of :data:`SAMPLERS`).
      snr, scale_eps, corrector_steps: Langevin corrector / S4 settings.
      sample_steps: reverse-time steps (GDSS: 1000).
      sample_eps: last sampling time (GDSS: 1e-4).
      sample_use_ema: sample with the EMA parameters (GDSS generic graphs: ``False``).
      sample_batch: graphs per sampling batch.
    """

    dataset: str = "community_small"
    net: GDSSNetConfig = field(
        default_factory=lambda: GDSSNetConfig(
            max_node_num=20, max_feat_num=10, depth=3, nhid=32, num_layers=5, num_linears=2, adim=32
        )
    )
    sde_x: SDESpec = field(default_factory=SDESpec)
    sde_adj: SDESpec = field(default_factory=SDESpec)
    train_eps: float = 1e-5
    sampler: str = "euler_langevin"
    snr: float = 0.05
    scale_eps: float = 0.7
    corrector_steps: int = 1
    sample_steps: int = 1000
    sample_eps: float = 1e-4
    sample_use_ema: bool = False
    sample_batch: int = 128
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def build(self) -> GDSS:
        return GDSS(self)


class GDSSScore(nnx.Module):
    """The two GDSS score networks as one module ``(state, t, ctx) -> scores``.

    Submodules are named ``x`` and ``adj`` (per-network gradient clipping keys on them).
    """

    def __init__(self, net: GDSSNetConfig, sde_x, sde_adj, *, rngs: nnx.Rngs):
        self.x = net.make_x(rngs)
        self.adj = net.make_adj(rngs)
        self.sde_x = sde_x
        self.sde_adj = sde_adj

    @staticmethod
    def _scale(sde, out: Array, t: Array) -> Array:
        # GDSS losses.get_score_fn: VP-type networks predict -std * score
        if isinstance(sde, VESDE):
            return out
        _, std = sde.marginal_coefs(t)
        return -out / std.reshape((-1,) + (1,) * (out.ndim - 1))

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        node_mask = ctx["node_mask"]
        x, adj = state["x"], state["adj"]
        out_x = self.x(x, adj, node_mask)  # [B, N, F]
        out_adj = self.adj(x, adj, node_mask)  # [B, N, N]
        return {
            "x": self._scale(self.sde_x, out_x, t),
            "adj": self._scale(self.sde_adj, out_adj, t),
        }


def symmetric_noise(key: Array, shape: tuple[int, ...]) -> Array:
    """Symmetric standard normal noise with zero diagonal (GDSS ``gen_noise(sym=True)``)."""
    z = jnp.triu(jax.random.normal(key, shape), 1)
    return z + jnp.swapaxes(z, -1, -2)


class GDSS:
    """GDSS on one generic-graph data set (see the module docstring)."""

    samplers = SAMPLERS
    sample_suffix = ".g6"

    def __init__(self, config: GDSSConfig):
        self.config = config
        self.sde_x = config.sde_x.make()
        self.sde_adj = config.sde_adj.make()
        self.domain = GraphDomain(config.net.max_node_num, config.net.max_feat_num)

    # ------------------------------------------------------------------ data
    @cached_property
    def splits(self) -> tuple[list[nx.Graph], list[nx.Graph]]:
        """(train, test) graphs; test = the first 20% of the file, as GDSS."""
        return train_test_split(load_graphs(self.config.dataset), 0.2)

    def loader(self) -> ArrayLoader:
        train, _ = self.splits
        state, ctx = self.domain.encode(train)
        arrays = {
            "x": np.asarray(state["x"]),
            "adj": np.asarray(state["adj"]),
            "node_mask": np.asarray(ctx["node_mask"]),
        }
        return ArrayLoader(
            arrays, batch_size=self.config.train.batch_size, seed=self.config.train.seed
        )

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> GDSSScore:
        return GDSSScore(self.config.net, self.sde_x, self.sde_adj, rngs=nnx.Rngs(key))

    def loss_fn(self, model: GDSSScore, batch: dict, key: Array):
        """GDSS ``get_sde_loss_fn`` (no likelihood weighting, ``reduce_mean=False``)."""
        x0, adj0, node_mask = batch["x"], batch["adj"], batch["node_mask"]
        b = x0.shape[0]
        masks = graph_masks(node_mask)
        ctx = {"node_mask": node_mask, "masks": masks}
        kt, kx, ka = jax.random.split(key, 3)
        t = jax.random.uniform(kt, (b,), minval=self.config.train_eps, maxval=1.0)
        z_x = jax.random.normal(kx, x0.shape) * masks["x"]
        z_a = symmetric_noise(ka, adj0.shape) * masks["adj"]
        mean_x, std_x = self.sde_x.marginal(x0, t)
        mean_a, std_a = self.sde_adj.marginal(adj0, t)
        xt = (mean_x + std_x.reshape(-1, 1, 1) * z_x) * masks["x"]
        at = (mean_a + std_a.reshape(-1, 1, 1) * z_a) * masks["adj"]
        score = model({"x": xt, "adj": at}, t, ctx)
        loss_x = self.sde_x.loss(
            score["x"], x0, xt, t, {"noise": z_x, "std": std_x}, mask=masks["x"]
        )
        loss_a = self.sde_adj.loss(
            score["adj"], adj0, at, t, {"noise": z_a, "std": std_a}, mask=masks["adj"]
        )
        lx, la = jnp.mean(loss_x), jnp.mean(loss_a)
        return lx + la, {"loss_x": lx, "loss_adj": la}

    # -------------------------------------------------------------- sampling
    @cached_property
    def _count_sampler(self):
        return self.domain.node_count_sampler(self.splits[0])

    def sample_states(
        self,
        model: GDSSScore,
        key: Array,
        batch: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
    ) -> tuple[State, Context, dict]:
        """One jitted batch of raw sampled states with node counts from the training set.

        Returns:
          ``(state, ctx, info)`` with ``info["nfe"]``.
        """
        fn, mesh = self._compiled(
            model, batch, sampler or self.config.sampler, steps or self.config.sample_steps
        )
        _, params, _ = split_model(model)
        if mesh is not None:
            # parameters (e.g. restored onto one device) replicated over the batch's devices
            params = jax.device_put(params, replicated(mesh))
        return fn(params, key)

    def _compiled(self, model, batch: int, sampler: str, steps: int):
        if sampler not in SAMPLERS:
            raise ValueError(
                f"unknown GDSS sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}"
            )
        cache = self.__dict__.setdefault("_fn_cache", {})
        graphdef, _, rest = split_model(model)
        key_ = (batch, sampler, steps, graphdef)
        if key_ in cache:
            return cache[key_]
        c = self.config
        procs = {"x": self.sde_x, "adj": self.sde_adj}
        n, f = c.net.max_node_num, c.net.max_feat_num
        shapes = {"x": (batch, n, f), "adj": (batch, n, n)}
        corrector = LangevinCorrector(snr=c.snr, scale_eps=c.scale_eps, n_steps=c.corrector_steps)

        ndev = jax.device_count()
        # several devices (GPUs, or CPU threads with --xla_force_host_platform_device_count):
        # the batch is split over them; sharding does not change the result
        mesh = data_mesh() if ndev > 1 and batch % ndev == 0 else None

        @jax.jit
        def run(params, key):
            net = nnx.merge(graphdef, params, rest)
            kc, ks = jax.random.split(key)
            ctx = self._count_sampler(kc, batch)
            if mesh is not None:
                ctx = jax.lax.with_sharding_constraint(ctx, batch_sharded(mesh))
            common = dict(
                shapes=shapes, steps=steps, eps=c.sample_eps, constrain=self.domain.constrain
            )
            if sampler == "s4":
                out, info = s4_sample(
                    net, procs, ctx, ks, snr=c.snr, scale_eps=c.scale_eps, **common
                )
            else:
                pred = EulerMaruyama() if sampler.startswith("euler") else ReverseDiffusion()
                corr = corrector if sampler.endswith("langevin") else None
                out, info = pc_sample(net, procs, ctx, ks, predictor=pred, corrector=corr, **common)
            return out, ctx, {"nfe": info["nfe"]}

        cache[key_] = run, mesh
        return run, mesh

    def sample(
        self,
        model: GDSSScore,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        **options: Any,
    ) -> list[nx.Graph]:
        """Sample ``num`` graphs (decoded as GDSS: threshold 0.5, no isolated nodes)."""
        if options:
            raise ValueError(f"GDSS sample got unknown options {sorted(options)}")
        graphs: list[nx.Graph] = []
        for out, ctx in self._batches(model, key, num, sampler, steps, batch_size, progress):
            graphs.extend(self.domain.decode(out, ctx))
        return graphs[:num]

    def _batches(self, model, key, num, sampler, steps, batch_size, progress):
        """Host-side ``(state, ctx)`` of ``ceil(num / batch)`` jitted sampling rounds."""
        batch = batch_size or self.config.sample_batch
        rounds = math.ceil(num / batch)
        for r in tqdm(range(rounds), desc="sample", disable=not progress or rounds == 1):
            out, ctx, _ = self.sample_states(
                model, jax.random.fold_in(key, r), batch, sampler=sampler, steps=steps
            )
            yield jax.device_get(out), jax.device_get(ctx)

    def write_samples(self, samples: list[nx.Graph], path: Path) -> None:
        write_graph6(samples, path)

    def read_samples(self, path: Path) -> list[nx.Graph]:
        return read_graph6(path)

    def evaluate(
        self, samples: list[nx.Graph | None], split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """GDSS's MMD suite against the test graphs (degree, clustering, orbit, spectral)."""
        from genmodels.metrics.graphs import graph_mmd

        train, test = self.splits
        ref = {"test": test, "train": train}.get(split)
        if ref is None:
            raise ValueError(f"unknown split {split!r}; choose test or train")
        gen = [g for g in samples if g is not None]
        out = graph_mmd(ref, gen, metrics=("degree", "clustering", "orbit", "spectral"))
        out = {k: float(v) for k, v in out.items()}
        out["num_samples"] = len(gen)
        out["num_reference"] = len(ref)
        return out


# ---------------------------------------------------------------------- molecules

#: molecule data set name -> loader (lazy: the loaders import rdkit)
MOLECULE_DATASETS = ("qm9", "zinc250k", "moses")


@dataclass(frozen=True)
class GDSSMolConfig(GDSSConfig):
    """A GDSS recipe for molecules (QM9 / ZINC250k / MOSES, GDSS Sec. 4.2).

    The state is GDSS's: ``x`` one channel per atom type (padding all zero), ``adj`` the
    kekulized bond orders 1/2/3; decoding rounds at 0.5/1.5/2.5 and applies GDSS's charge
    rule, valency correction and largest-fragment rule (:mod:`genmodels.domains.molecules`).

    Attributes:
      dataset: qm9, zinc250k or moses.
      index_offset: how the split file's ids map to rows (see data/README.md).
      eval_fcd, eval_nspdk: compute FCD (needs the ``metrics`` extra) and NSPDK.
      moses_limit: MOSES training molecules to load (``None``: all 1.58M).
    """

    dataset: str = "qm9"
    index_offset: int = 1
    eval_fcd: bool = True
    eval_nspdk: bool = True
    moses_limit: int | None = None

    def build(self) -> GDSSMolecules:
        return GDSSMolecules(self)


class GDSSMolecules(GDSS):
    """GDSS on molecules: same networks, SDEs, loss and samplers; molecule data and decoding."""

    sample_suffix = ".smi"

    def __init__(self, config: GDSSMolConfig):
        if config.dataset not in MOLECULE_DATASETS:
            raise ValueError(
                f"unknown molecule data set {config.dataset!r}; choose one of {MOLECULE_DATASETS}"
            )
        self.config = config
        self.sde_x = config.sde_x.make()
        self.sde_adj = config.sde_adj.make()

    @cached_property
    def data(self):
        from genmodels.datasets import molecules as mdata

        c = self.config
        if c.dataset == "qm9":
            return mdata.load_qm9(index_offset=c.index_offset)
        if c.dataset == "zinc250k":
            return mdata.load_zinc250k(index_offset=c.index_offset)
        return mdata.load_moses("train", limit=c.moses_limit)

    @property
    def domain(self):
        return self.data.domain

    @cached_property
    def splits(self):  # type: ignore[override]
        """(train, test) canonical SMILES."""
        return self.data.train_smiles, self.data.test_smiles

    def loader(self) -> ArrayLoader:
        types, bonds = self.data.arrays(self.data.train_idx)  # int8 [M, N], [M, N, N]
        return ArrayLoader(
            {"types": types, "bonds": bonds},
            batch_size=self.config.train.batch_size,
            seed=self.config.train.seed,
        )

    def loss_fn(self, model: GDSSScore, batch: dict, key: Array):
        types = batch["types"].astype(jnp.int32)  # [B, N], -1 on padding
        dense = {
            # one channel per atom type; padding rows all zero (one_hot(-1) = 0)
            "x": jax.nn.one_hot(types, self.config.net.max_feat_num),
            "adj": batch["bonds"].astype(jnp.float32),
            "node_mask": (types >= 0).astype(jnp.float32),
        }
        return super().loss_fn(model, dense, key)

    @cached_property
    def _count_sampler(self):
        counts = self.data.num_atoms[self.data.train_idx]
        return self.domain.node_count_sampler(counts)

    def sample(
        self,
        model: GDSSScore,
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
          correction: GDSS's valency correction (``False``: the raw decoded molecules,
            for validity without correction).
        """
        if options:
            raise ValueError(f"GDSS sample got unknown options {sorted(options)}")
        smiles, raw = self.sample_pairs(
            model, key, num, sampler=sampler, steps=steps, batch_size=batch_size, progress=progress
        )
        return smiles if correction else raw

    def sample_pairs(
        self,
        model: GDSSScore,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        progress: bool = True,
    ) -> tuple[list[str], list[str]]:
        """The same ``num`` samples decoded with and without valency correction.

        Returns:
          ``(corrected, raw)`` canonical SMILES lists (``""`` where decoding failed), so
          validity with and without correction come from one sampling run.
        """
        out: list[str] = []
        raws: list[str] = []
        for st, ctx in self._batches(model, key, num, sampler, steps, batch_size, progress):
            smiles, raw = self.domain.decode_smiles(st, ctx)
            out.extend(smiles)
            raws.extend(raw)
        return out[:num], raws[:num]

    def write_samples(self, samples: list[str], path: Path) -> None:
        from genmodels.domains.molecules import write_smiles

        write_smiles(samples, path)

    def read_samples(self, path: Path) -> list[str]:
        """SMILES from a ``.smi`` file (one per line, an empty line for a failed sample) or
        from the ``smiles`` column of a ``.csv`` / ``.csv.gz`` file, e.g. another model's."""
        from genmodels.domains.molecules import read_smiles

        name = Path(path).name.lower()
        if name.endswith((".csv", ".csv.gz")):
            from genmodels.datasets.molecules import read_smiles_column

            return read_smiles_column(path)
        return read_smiles(path)

    def evaluate(
        self,
        samples: list[str],
        split: str = "test",
        meta: dict | None = None,
        raw: list[str] | None = None,
    ) -> dict[str, float]:
        """GDSS's molecule metrics of a SMILES list (any file a user brings).

        Args:
          samples: SMILES, ``""`` for failed samples.
          split: reference split for FCD / NSPDK.
          meta: the sample file's sidecar (``genmodels sample`` writes it); when it says
            ``correction: false`` the file holds raw molecules and its validity is also
            reported as ``validity_wo_correction``.
          raw: the same samples decoded without correction (:meth:`sample_pairs`), for
            ``validity_wo_correction`` alongside the corrected ``samples``.
        """
        from genmodels.metrics.molecules import molecule_metrics

        train, test = self.splits
        ref = {"test": test, "train": train}.get(split)
        if ref is None:
            raise ValueError(f"unknown split {split!r}; choose test or train")
        refs = self._reference_stats(split)
        out = molecule_metrics(
            samples,
            train,
            ref,
            raw_smiles=raw
            if raw is not None
            else (samples if (meta or {}).get("correction") is False else None),
            train_canonical=True,
            compute_fcd=self.config.eval_fcd,
            compute_nspdk=self.config.eval_nspdk,
            moses=self.config.dataset == "moses",
            test_fcd_stats=refs.get("fcd"),
            test_nspdk_embedding=refs.get("nspdk"),
        )
        out["num_samples"] = len(samples)
        return out

    def _reference_stats(self, split: str) -> dict:
        """ChemNet statistics and NSPDK mean embedding of a reference split, computed once
        per method object (they take minutes on the QM9 test set; every later
        :meth:`evaluate` against the same split reuses them)."""
        cache = self.__dict__.setdefault("_ref_cache", {})
        if split not in cache:
            from genmodels.metrics.molecules import fcd_statistics, mols_to_nx
            from genmodels.metrics.nspdk import nspdk_mean_embedding

            ref = dict(zip(("train", "test"), self.splits))[split]
            stats: dict = {}
            if self.config.eval_fcd:
                stats["fcd"] = fcd_statistics(ref)
            if self.config.eval_nspdk:
                stats["nspdk"] = nspdk_mean_embedding(mols_to_nx(ref))
            cache[split] = stats
        return cache[split]
