"""GDSS: score-based graph generation with a system of SDEs (Jo, Lee, Hwang, ICML 2022).

The state is a node-feature matrix ``x`` [B, N, F] and a weighted adjacency ``adj``
[B, N, N], each diffused by its own SDE (eq. 3 of the paper); two networks predict the two
partial scores (ScoreNetworkX and ScoreNetworkA, :mod:`genmodels.nets.graph`); sampling
runs any registered SDE sampler (predictor-corrector, S4, probability-flow ODE). The same
method serves generic graphs (:class:`GraphTask`) and molecules (:class:`MoleculeTask`).
Settings follow the reference configs (harryjo97/GDSS ``config/*.yaml``), cited per recipe.

Faithful details: symmetric adjacency noise (GDSS ``gen_noise(sym=True)``); the loss is
GDSS's ``0.5 * sum`` of ``(score * std + z)^2`` per graph for x and for adj, summed (the
networks' parameters are disjoint, so each trains on its own loss as with GDSS's two
optimizers; gradients are clipped per network); VP/sub-VP scores are the network output
over ``-std(t)``, VE scores the raw output; training ``t ~ U(1e-5, 1)``, sampling to 1e-4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array, Context, State
from genmodels.datasets.user import UserData
from genmodels.domains.graphs import symmetric_noise
from genmodels.models import runner as rn
from genmodels.models.tasks.base import array_loader
from genmodels.models.tasks.graphs import GraphTask
from genmodels.models.tasks.molecules import MoleculeTask, molecule_net
from genmodels.nets.graph import GDSS_NET_CONFIGS, GDSSNetConfig
from genmodels.processes.sde import VESDE, VPSDE, subVPSDE
from genmodels.samplers.registry import run_sampler
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader


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
        if self.kind == "VE":
            return VESDE(sigma_min=self.beta_min, sigma_max=self.beta_max, N=self.num_scales)
        cls = VPSDE if self.kind == "VP" else subVPSDE
        return cls(beta_min=self.beta_min, beta_max=self.beta_max, N=self.num_scales)


@dataclass(frozen=True)
class GDSSConfig:
    """A GDSS recipe for a generic-graph data set.

    Attributes:
      dataset: community_small, ego_small, ENZYMES or grid.
      net: network sizes (GDSS ``model`` block).
      sde_x, sde_adj: the two SDEs.
      train_eps: smallest training time.
      sampler: default sampler (a registry name for SDEs, e.g. ``euler_langevin``, ``s4``).
      snr, scale_eps, corrector_steps: Langevin corrector / S4 settings.
      sample_steps: reverse-time steps (GDSS: 1000).
      sample_eps: last sampling time (GDSS: 1e-4).
      sample_use_ema: sample with the EMA parameters (GDSS generic graphs: ``False``).
      sample_batch: graphs per sampling batch.
      fast: ``--sampler fast``: ``(sampler, steps)`` keeping the default's quality (gdss_nfe).
    """

    dataset: str = "community_small"
    data: UserData = UserData()  # options of a user data file (``--dataset PATH``)
    net: GDSSNetConfig = field(default_factory=lambda: GDSS_NET_CONFIGS["community_small"])
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
    fast: tuple[str, int] = ("s4", 200)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def make_task(self) -> GraphTask | MoleculeTask:
        """The generic-graph task of ``dataset``."""
        return GraphTask(self.dataset, self.net.max_node_num, self.net.max_feat_num, self.data)

    def build(self) -> GDSS:
        return GDSS(self)


@dataclass(frozen=True)
class GDSSMolConfig(GDSSConfig):
    """A GDSS recipe for molecules (QM9 / ZINC250k / MOSES, GDSS Sec. 4.2; :class:`MoleculeTask`).

    Attributes:
      dataset: qm9, zinc250k, moses or a SMILES file (``data``: its options).
      index_offset: how the split file's ids map to rows (see data/README.md).
      eval_fcd, eval_nspdk: compute FCD (needs the ``metrics`` extra) and NSPDK.
      moses_limit: MOSES training molecules to load (``None``: all 1.58M).
    """

    dataset: str = "qm9"
    index_offset: int = 1
    eval_fcd: bool = True
    eval_nspdk: bool = True
    moses_limit: int | None = None

    def make_task(self) -> MoleculeTask:
        """The molecule task of ``dataset`` (a benchmark name or a SMILES file)."""
        return MoleculeTask.of(self)


class GDSSScore(nnx.Module):
    """The two GDSS score networks as one module ``(state, t, ctx) -> scores``.

    Submodules are named ``x`` and ``adj`` (per-network gradient clipping keys on them).
    """

    def __init__(self, net: GDSSNetConfig, sde_x, sde_adj, *, rngs: nnx.Rngs):
        self.x, self.adj = net.make_x(rngs), net.make_adj(rngs)
        self.sde_x, self.sde_adj = sde_x, sde_adj

    @staticmethod
    def _scale(sde, out: Array, t: Array) -> Array:
        # GDSS losses.get_score_fn: VP-type networks predict -std * score
        if isinstance(sde, VESDE):
            return out
        _, std = sde.marginal_coefs(t)
        return -out / std.reshape((-1,) + (1,) * (out.ndim - 1))

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        args = (state["x"], state["adj"], ctx["node_mask"])
        out_x, out_adj = self.x(*args), self.adj(*args)  # [B, N, F], [B, N, N]
        return {
            "x": self._scale(self.sde_x, out_x, t),
            "adj": self._scale(self.sde_adj, out_adj, t),
        }


class GDSS:
    """GDSS on one task: generic graphs or molecules (see the module docstring)."""

    def __init__(self, config: GDSSConfig):
        self.config = config
        self.task = config.make_task()
        self.sample_suffix = self.task.sample_suffix
        self.eval_splits, self.sample_suffixes = self.task.eval_splits, self.task.sample_suffixes
        self.sde_x, self.sde_adj = config.sde_x.make(), config.sde_adj.make()
        self.processes = {"x": self.sde_x, "adj": self.sde_adj}
        self.samplers = rn.sampler_names(self.processes, config.sampler)
        self.runner = rn.Runner()
        # sample files and metrics are the task's
        self.write_samples, self.read_samples = self.task.write_samples, self.task.read_samples
        self.evaluate = self.task.evaluate

    def loader(self) -> ArrayLoader:
        return array_loader(self.task, self.config.train)

    def init_model(self, key: Array) -> GDSSScore:
        net = molecule_net(self.config.net, self.config.dataset, self.config.data)
        return GDSSScore(net, self.sde_x, self.sde_adj, rngs=nnx.Rngs(key))

    def loss_fn(self, model: GDSSScore, batch: dict, key: Array):
        """GDSS ``get_sde_loss_fn`` (no likelihood weighting, ``reduce_mean=False``).

        Returns:
          ``(loss_x + loss_adj, {"loss_x", "loss_adj"})``, each the batch mean.
        """
        x0, ctx = self.task.dense_batch(batch)
        masks = ctx["masks"]
        kt, kx, ka = jax.random.split(key, 3)
        t = jax.random.uniform(kt, (x0["x"].shape[0],), minval=self.config.train_eps, maxval=1.0)
        noise = {
            "x": jax.random.normal(kx, x0["x"].shape) * masks["x"],
            "adj": symmetric_noise(ka, x0["adj"].shape) * masks["adj"],
        }
        xt, aux = {}, {}
        for k, sde in self.processes.items():
            mean, std = sde.marginal(x0[k], t)
            xt[k] = (mean + std.reshape(-1, 1, 1) * noise[k]) * masks[k]
            aux[k] = {"noise": noise[k], "std": std}
        score = model(xt, t, ctx)
        losses = {
            f"loss_{k}": jnp.mean(sde.loss(score[k], x0[k], xt[k], t, aux[k], mask=masks[k]))
            for k, sde in self.processes.items()
        }
        return losses["loss_x"] + losses["loss_adj"], losses

    def _compiled(self, model, batch: int, sampler, steps, options: dict):
        """``fn(key) -> (state, ctx, {"nfe"})``: one jitted round (counts drawn from
        ``split(key)[0]``, the sampler run on ``split(key)[1]``)."""
        name, steps, opts = rn.resolve_sampler(
            self.processes, sampler, steps, self.config, **options
        )
        task, procs = self.task, self.processes

        def body(net, key, mesh):
            kc, ks = jax.random.split(key)
            ctx = rn.shard_batch(task.count_sampler(kc, batch), mesh)
            constrain = rn.batch_sharded_constrain(task.constrain, mesh)
            kw = dict(shapes=task.shapes(batch), steps=steps, options=opts, constrain=constrain)
            out, info = run_sampler(name, net, procs, ctx, ks, **kw)
            return out, ctx, {"nfe": info["nfe"]}

        return self.runner.compile(model, batch, (name, steps, opts), body)

    def sample_states(
        self, model: GDSSScore, key: Array, batch: int, *, sampler=None, steps=None, **options
    ) -> tuple[State, Context, dict]:
        """One jitted round of ``batch`` raw states, node counts from the training set:
        ``(state, ctx, {"nfe"})`` (``options``: the sampler's, e.g. ODE ``solver``)."""
        return self._compiled(model, batch, sampler, steps, options)(key)

    def sample_parts(
        self, model, key, num, *, sampler=None, steps=None, batch_size=None, progress=True
    ) -> list:
        """``task.decode`` of each sampling round (round ``r`` uses ``fold_in(key, r)``);
        ``task.collate(parts, num, ...)`` turns them into samples (molecules:
        ``task.pairs(parts, num)`` gives corrected and raw SMILES of one run)."""
        batch = batch_size or self.config.sample_batch
        fn = self._compiled(model, batch, sampler, steps, {})
        return rn.decode_rounds(self.task.decode, fn, num, batch, key, progress)

    def sample(
        self, model, key, num, *, sampler=None, steps=None, batch_size=None, progress=True, **opts
    ) -> list:
        """``num`` samples: graphs or canonical SMILES (``""`` where decoding failed);
        ``opts`` are the task's (molecules: ``correction=False`` gives raw SMILES)."""
        kw = dict(sampler=sampler, steps=steps, batch_size=batch_size, progress=progress)
        return rn.task_samples(
            self.task, lambda: self.sample_parts(model, key, num, **kw), num, opts
        )
