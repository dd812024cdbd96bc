"""PFGM++ / EDM and flow matching (+ BOSS) on graphs with GDSS's state and networks.

Issue #10 ("each method on every domain where it is meaningful"): the continuous methods
of the image domain, :mod:`genmodels.models.pfgmpp` and :mod:`genmodels.models.flow`,
on the dense graph state of GDSS (Jo, Lee, Hwang, ICML 2022). Everything but the process
and the sampler is GDSS's, mixed in per domain:

- molecules (:class:`GraphPFGMPP`, :class:`GraphFlow`; recipes ``pfgmpp_qm9``,
  ``flow_qm9``): :class:`~genmodels.models.gdss.GDSSMolecules`' data pipeline (QM9 /
  ZINC250k / MOSES), the molecule domain adapter (one-hot atom types ``x`` [B, N, F] with
  all-zero padding rows, Kekule bond orders ``adj`` [B, N, N] in {0..3}, node mask in
  ``ctx``), atom counts drawn from the training set at sampling, GDSS's decoding with and
  without valency correction, the ``.smi`` files and the metrics (validity, validity
  without correction, uniqueness, novelty, FCD, NSPDK);
- generic graphs (:class:`GenericGraphPFGMPP`, :class:`GenericGraphFlow`; recipes
  ``pfgmpp_community_small``, ``flow_community_small``):
  :class:`~genmodels.models.gdss.GDSS`' data (community_small, ego_small, ENZYMES, grid;
  the first 20% of each file is the test split), degree one-hot ``x``, 0/1 ``adj``,
  node counts from the training graphs, decoding by thresholding ``adj`` at 0.5 and
  dropping isolated nodes, ``.g6`` files and the MMD suite (degree, clustering, orbit,
  spectral).

The config's ``build`` picks the class by its ``dataset``.

**State and noise.** One process per leaf (``x`` and ``adj``), both at one noise level
per sample (``sigma`` for PFGM++, ``t`` for flow), drawn once and shared by the two
leaves. Noise lives on the real entries only: rows of padded nodes stay 0, and the
adjacency noise is symmetric with a zero diagonal (GDSS's ``gen_noise(sym=True)``): the
leaf's kernel is drawn on the strict upper triangle of real node pairs and mirrored
(:func:`corrupt_graph`). Samplers call the domain's ``constrain`` (mirror the upper
triangle, zero the padding) after every step.

**PFGM++** (Xu et al., ICML 2023; D = inf is EDM, Karras et al. 2022), per leaf

    p_r(x | y) ∝ (||x - y||^2 + r^2)^(-(N + D)/2),    r = sigma sqrt(D),

(:class:`~genmodels.processes.pfgmpp.PFGMPP`) where **N is the number of free real
entries of that leaf in that sample**: ``N_x = n F`` (``n`` real atoms, ``F`` atom
types) and ``N_adj = n (n - 1) / 2`` (the strict upper triangle of the real nodes; the
lower one is its mirror, so it adds no dimension). The draw is the multivariate Student-t
form ``y + sigma sqrt(D / (2 G)) z``, ``G ~ Gamma(D/2)``, ``z ~ N(0, I_N)``, one ``G``
per sample and leaf, so that N is implied by the support of ``z`` and each padded sample
gets the kernel of its own size. Training is EDM's: ``ln sigma ~ N(P_mean, P_std^2)``,
each leaf's network output ``F`` wrapped in EDM's preconditioning (Table 1)

    D_theta(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)),

``c_noise = ln(sigma) / 4``, and the loss ``sum_leaf lambda(sigma) mean_real (D_theta -
y)^2`` with ``lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` (mean over the
real entries of each leaf; EDM sums over pixels, a constant factor). Sampling: EDM's
Heun sampler (Alg. 1, no churn) on ``dx/dsigma = (x - D_theta(x; sigma)) / sigma`` over
EDM's grid (eq. 5), from the PFGM++ prior at ``sigma_max`` (sampler ``heun``, ``2 K - 1``
NFE for ``K`` levels), or Euler on the same grid (``euler``, ``K`` NFE).

**Flow matching** (:class:`~genmodels.processes.flow.LinearFlow`, the package's
convention: ``t = 0`` data, ``t = 1`` noise)

    x_t = (1 - t) x_0 + t eps,    v = dx_t/dt = eps - x_0,

``t ~ U(t_eps, 1)``, loss ``sum_leaf mean_real (v_theta(x_t, t) - (eps - x_0))^2``;
samples integrate ``dx/dt = v_theta`` from ``N(0, I)`` (symmetrised on ``adj``) at
``t = 1`` to ``t = 0``: ``euler`` on the uniform grid (``K`` NFE), ``heun`` (diffrax,
``2 K`` NFE), or ``boss``: Euler on a Bellman-optimal grid (Nguyen et al., ICLR 2024)
read from ``boss_grids.json`` in the checkpoint folder, which

    python -m genmodels.models.boss grids flow_qm9 --checkpoint DIR

computes (reference Euler trajectories, one-step cost matrix summed over both leaves'
entries, dynamic program for K = 2..10; :func:`genmodels.models.boss.compute_boss_grids`
through :meth:`GraphFlow.boss_setup`).

**Networks.** GDSS's ScoreNetworkX (for ``x``) and ScoreNetworkA (for ``adj``),
:mod:`genmodels.nets.graph`, with the sizes of the GDSS recipe. GDSS's networks take
no time input (its VE/VP scalings carry the noise level); here the noise label
(``c_noise`` for PFGM++, ``t`` for flow) is appended to the node features as one more
input channel on the real nodes (``time_input``, default on; off gives GDSS's
time-free networks). The networks then read ``F + 1`` channels; ScoreNetworkX's extra
output channel is dropped. For PFGM++ both networks see ``c_in x`` and ``c_in adj`` and
their outputs are the ``F`` of each leaf's preconditioning; for flow their outputs are
the velocities.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.core.grids import uniform_grid
from genmodels.core.masks import graph_masks
from genmodels.core.types import Array, Context, State
from genmodels.domains.graphs import GraphDomain, symmetrize_upper
from genmodels.models.base import split_model
from genmodels.models.flow import BOSS_GRIDS_FILE, find_boss_grids, read_boss_grids
from genmodels.models.gdss import GDSS, MOLECULE_DATASETS, GDSSMolecules
from genmodels.nets.graph import GDSS_NET_CONFIGS, GDSSNetConfig
from genmodels.processes.base import Processes, loss_state
from genmodels.processes.flow import LinearFlow
from genmodels.processes.pfgmpp import PFGMPP
from genmodels.samplers.ode import (
    edm_euler_sample,
    euler_sample,
    heun_sample,
    probability_flow_sample,
)
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.sharding import batch_sharded, data_mesh

__all__ = [
    "FLOW_SAMPLERS",
    "PFGMPP_SAMPLERS",
    "GenericGraphFlow",
    "GenericGraphPFGMPP",
    "GraphContinuousConfig",
    "GraphFieldNet",
    "GraphFlow",
    "GraphFlowConfig",
    "GraphFlowNet",
    "GraphPFGMPP",
    "GraphPFGMPPConfig",
    "GraphPFGMPPNet",
    "corrupt_graph",
]

#: PFGM++ sampler names; the first is the default
PFGMPP_SAMPLERS = ("heun", "euler")
#: flow sampler names; the first is the default
FLOW_SAMPLERS = ("euler", "heun", "boss")


def corrupt_graph(
    processes: Processes, key: Array, x0: State, t: Array, ctx: Context
) -> tuple[State, dict[str, dict[str, Array]]]:
    """Each leaf's forward kernel at the shared noise levels ``t`` [B], on real entries.

    ``x`` is corrupted under its node mask; ``adj`` under the mask of the strict upper
    triangle of real node pairs, then mirrored (``symmetrize_upper``), so its noise is
    symmetric with a zero diagonal (GDSS ``gen_noise(sym=True)``) and the kernel's
    dimension is the number of free entries, ``n (n - 1) / 2``. Arrays of ``aux`` shaped
    like ``adj`` (noise, flow target ``eps - x_0``) are mirrored the same way.

    Args:
      processes: ``{"x": process, "adj": process}``.
      key: PRNG key.
      x0: ``{"x": [B, N, F], "adj": [B, N, N]}`` clean state (symmetric ``adj``).
      t: [B] noise levels (PFGM++ sigma or flow time).
      ctx: ``{"masks": graph_masks(node_mask), ...}``.

    Returns:
      ``(xt, aux)``: the corrupted state (padding zero) and each leaf's ``aux``.
    """
    masks = ctx["masks"]
    kx, ka = jax.random.split(key)
    xt_x, aux_x = processes["x"].corrupt(kx, x0["x"], t, mask=masks["x"])
    upper = jnp.triu(masks["adj"], 1)  # [B, N, N]
    xt_a, aux_a = processes["adj"].corrupt(ka, x0["adj"], t, mask=upper)
    aux_a = {k: symmetrize_upper(v) if jnp.shape(v) == xt_a.shape else v for k, v in aux_a.items()}
    return {"x": xt_x, "adj": symmetrize_upper(xt_a)}, {"x": aux_x, "adj": aux_a}


# ------------------------------------------------------------------ networks


class GraphFieldNet(nnx.Module):
    """GDSS's two networks as one map ``(x, adj, label, node_mask) -> (out_x, out_adj)``.

    Submodules ``x`` (ScoreNetworkX) and ``adj`` (ScoreNetworkA), as in
    :class:`~genmodels.models.gdss.GDSSScore` (per-module gradient clipping keys on them).

    Args:
      net: GDSS network sizes.
      time_input: append the noise label as an extra node-feature channel.
      rngs: parameter RNGs.
    """

    def __init__(self, net: GDSSNetConfig, time_input: bool = True, *, rngs: nnx.Rngs):
        self.num_feat = net.max_feat_num
        self.time_input = bool(time_input)
        wide = dataclasses.replace(net, max_feat_num=net.max_feat_num + 1) if time_input else net
        self.x = wide.make_x(rngs)
        self.adj = wide.make_adj(rngs)

    def raw(self, x: Array, adj: Array, label: Array, node_mask: Array) -> tuple[Array, Array]:
        """The two networks' outputs.

        Args:
          x: [B, N, F] node features (network input scale).
          adj: [B, N, N] symmetric adjacency (network input scale).
          label: [B] noise label (ignored without ``time_input``).
          node_mask: [B, N].

        Returns:
          ``(out_x [B, N, F], out_adj [B, N, N])``, zero on padding, ``out_adj``
          symmetric with a zero diagonal.
        """
        h = x
        if self.time_input:
            lab = jnp.asarray(label, x.dtype).reshape(-1, 1, 1) * node_mask[..., None]  # [B, N, 1]
            h = jnp.concatenate([x, lab.astype(x.dtype)], -1)  # [B, N, F + 1]
        out_x = self.x(h, adj, node_mask)[..., : self.num_feat]  # [B, N, F]
        out_adj = self.adj(h, adj, node_mask)  # [B, N, N]
        return out_x, out_adj


class GraphPFGMPPNet(GraphFieldNet):
    """``(state, sigma, ctx) -> D_theta(state; sigma)``: EDM-preconditioned GDSS networks.

    Per leaf ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` (Karras et al. 2022,
    Table 1), with ``F`` the leaf's network; both networks see both scaled leaves.

    Args:
      net: GDSS network sizes.
      process: the PFGM++ process (its ``precondition`` and ``denoised``).
      time_input: feed ``c_noise = ln(sigma) / 4`` as a node channel.
      rngs: parameter RNGs.
    """

    def __init__(
        self, net: GDSSNetConfig, process: PFGMPP, time_input: bool = True, *, rngs: nnx.Rngs
    ):
        super().__init__(net, time_input, rngs=rngs)
        self.process = process

    def __call__(self, state: State, sigma: Array, ctx: Context) -> State:
        """Args:
          state: ``{"x": [B, N, F], "adj": [B, N, N]}`` noisy state.
          sigma: [B] noise levels (> 0).
          ctx: context with ``node_mask`` [B, N].

        Returns:
          ``{"x": [B, N, F], "adj": [B, N, N]}`` denoised estimates.
        """
        x, adj = state["x"], state["adj"]
        sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32).reshape(-1), x.shape[:1])
        _, _, c_in, c_noise = self.process.precondition(sigma)  # [B] each
        c = c_in[:, None, None]
        raw_x, raw_a = self.raw(c * x, c * adj, c_noise, ctx["node_mask"])
        return {
            "x": self.process.denoised(raw_x, x, sigma),
            "adj": self.process.denoised(raw_a, adj, sigma),
        }


class GraphFlowNet(GraphFieldNet):
    """``(state, t, ctx) -> v_theta(state, t)``: GDSS networks read as a velocity field.

    Args:
      net: GDSS network sizes.
      time_input: feed ``t`` as a node channel.
      rngs: parameter RNGs.
    """

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        """Args:
          state: ``{"x": [B, N, F], "adj": [B, N, N]}`` at time ``t``.
          t: [B] times in [0, 1] (1 = noise).
          ctx: context with ``node_mask`` [B, N].

        Returns:
          ``{"x": [B, N, F], "adj": [B, N, N]}`` velocity ``dx/dt``.
        """
        x = state["x"]
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32).reshape(-1), x.shape[:1])
        vx, va = self.raw(x, state["adj"], t, ctx["node_mask"])
        return {"x": vx, "adj": va}


# ------------------------------------------------------------------ configs


@dataclass(frozen=True)
class GraphContinuousConfig:
    """Fields shared by the graph PFGM++ and flow recipes.

    Attributes:
      dataset: a molecule data set (qm9, zinc250k, moses: GDSS's molecule data,
        :class:`GDSSMolConfig`) or a generic-graph one (community_small, ego_small,
        ENZYMES, grid: :class:`GDSSConfig`'s); ``build`` picks the method class by it.
      index_offset: molecules: how the split file's ids map to rows (data/README.md).
      eval_fcd, eval_nspdk: molecules: compute FCD (``metrics`` extra) and NSPDK.
      moses_limit: MOSES training molecules to load (``None``: all).
      net: GDSS network sizes (``max_feat_num`` = atom types or degree classes,
        ``max_node_num`` = atoms or nodes).
      time_input: append the noise label to the node features (module docstring).
      sampler: default sampler.
      sample_steps: default number of steps (noise levels for PFGM++).
      sample_use_ema: sample with the EMA parameters.
      sample_batch: molecules per jitted sampling batch.
    """

    dataset: str = "qm9"
    index_offset: int = 1
    eval_fcd: bool = True
    eval_nspdk: bool = True
    moses_limit: int | None = None
    net: GDSSNetConfig = field(default_factory=lambda: GDSS_NET_CONFIGS["QM9"])
    time_input: bool = True
    sampler: str = ""
    sample_steps: int = 18
    sample_use_ema: bool = True
    sample_batch: int = 1024
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass(frozen=True)
class GraphPFGMPPConfig(GraphContinuousConfig):
    """PFGM++ (or EDM, ``D = inf``) on molecule graphs.

    Attributes:
      D: augmented dimensions (``inf``: EDM).
      sigma_min, sigma_max, rho: EDM's sampling grid (0.002, 80, 7).
      sigma_data: data scale of the preconditioning (EDM 0.5; QM9's one-hot ``x`` has
        RMS 0.5 over real entries, its bond orders 0.66 over real pairs).
      P_mean, P_std: training ``ln sigma ~ N(P_mean, P_std^2)`` (EDM: -1.2, 1.2).
    """

    sampler: str = "heun"
    sample_steps: int = 18
    D: float = 128.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    sigma_data: float = 0.5
    P_mean: float = -1.2
    P_std: float = 1.2

    def build(self) -> GraphPFGMPP | GenericGraphPFGMPP:
        return (GraphPFGMPP if self.dataset in MOLECULE_DATASETS else GenericGraphPFGMPP)(self)

    def process(self) -> PFGMPP:
        """The :class:`~genmodels.processes.pfgmpp.PFGMPP` of these settings."""
        return PFGMPP.from_settings(self)


@dataclass(frozen=True)
class GraphFlowConfig(GraphContinuousConfig):
    """Flow matching (linear interpolant) on molecule graphs.

    Attributes:
      t_eps: smallest training time (``t ~ U(t_eps, 1)``; rectified flow: 1e-3).
      boss_grids: explicit path of a BOSS grid file (default: ``boss_grids.json`` in the
        checkpoint folder sampled from).
    """

    sampler: str = "euler"
    sample_steps: int = 50
    t_eps: float = 1e-3
    boss_grids: str | None = None

    def build(self) -> GraphFlow | GenericGraphFlow:
        return (GraphFlow if self.dataset in MOLECULE_DATASETS else GenericGraphFlow)(self)


# ------------------------------------------------------------------ methods


class _GraphContinuous:
    """Shared body, mixed into GDSS's generic-graph (:class:`GDSS`) or molecule
    (:class:`GDSSMolecules`) method for its data, decoding, files and metrics: a
    continuous process per leaf at one shared noise level; jitted sampling (one compile
    per batch/sampler/steps), the batch split over devices when it divides evenly."""

    samplers: tuple[str, ...] = ()

    def __init__(self, config: GraphContinuousConfig):
        if config.sampler not in self.samplers:
            raise ValueError(
                f"unknown sampler {config.sampler!r}; choose one of {', '.join(self.samplers)}"
            )
        self.config = config
        self.process = self.make_process()
        self.processes = {"x": self.process, "adj": self.process}

    def make_process(self) -> Any:
        """The process applied to each leaf (one instance shared by ``x`` and ``adj``)."""
        raise NotImplementedError

    def dense_batch(self, batch: dict) -> tuple[State, Context]:
        """Loader arrays -> GDSS state and context (jit-compatible); generic graphs here,
        molecules override it.

        Args:
          batch: ``{"x": [B, N, F], "adj": [B, N, N], "node_mask": [B, N]}``
            (:meth:`GDSS.loader`).

        Returns:
          ``({"x": [B, N, F], "adj": [B, N, N]}, {"node_mask", "masks"})``.
        """
        node_mask = jnp.asarray(batch["node_mask"], jnp.float32)
        x0 = {k: jnp.asarray(batch[k], jnp.float32) for k in ("x", "adj")}
        return x0, {"node_mask": node_mask, "masks": graph_masks(node_mask)}

    def loss_fn(self, model: nnx.Module, batch: dict, key: Array):
        """Per-leaf losses (the process's) at one noise level per molecule, summed over
        the leaves and averaged over the batch.

        Returns:
          ``(loss, {"loss_x": ..., "loss_adj": ...})``.
        """
        x0, ctx = self.dense_batch(batch)
        kt, kc = jax.random.split(key)
        t = self.process.sample_time(kt, x0["x"].shape[0])  # [B]
        xt, aux = corrupt_graph(self.processes, kc, x0, t, ctx)
        pred = model(xt, t, ctx)
        total, per_leaf = loss_state(self.processes, pred, x0, xt, t, aux, ctx)
        logs = {"loss_x": jnp.mean(per_leaf["x"]), "loss_adj": jnp.mean(per_leaf["adj"])}
        return jnp.mean(total), logs

    # -------------------------------------------------------------- sampling
    def _setup(self, key: Array, batch: int) -> tuple[Context, Array, dict]:
        """``(ctx, prior key, shapes)`` of one batch: node counts from the training set."""
        kc, ks = jax.random.split(key)
        ctx = self._count_sampler(kc, batch)
        n, f = self.config.net.max_node_num, self.config.net.max_feat_num
        return ctx, ks, {"x": (batch, n, f), "adj": (batch, n, n)}

    def _grid(self, sampler: str, steps: int) -> np.ndarray | None:
        """A stored time grid the sampler needs (host side), or ``None``."""
        del sampler, steps
        return None

    def _run_sampler(self, net, ctx, key, shapes, sampler, steps, grid) -> tuple[State, dict]:
        """Traced body of one sampling batch: ``(state, info)`` of the named sampler."""
        raise NotImplementedError

    def _compiled(self, model, batch: int, sampler: str, steps: int):
        if sampler not in self.samplers:
            raise ValueError(
                f"unknown {type(self).__name__} sampler {sampler!r}; choose one of "
                f"{', '.join(self.samplers)}"
            )
        grid = self._grid(sampler, steps)
        cache = self.__dict__.setdefault("_fn_cache", {})
        graphdef, _, rest = split_model(model)
        gkey = None if grid is None else tuple(float(g) for g in grid)
        key_ = (batch, sampler, steps, gkey, graphdef)
        if key_ in cache:
            return cache[key_]
        ndev = jax.device_count()
        # the batch split over the devices (GPUs, or forced CPU devices) when it divides
        mesh = data_mesh() if ndev > 1 and batch % ndev == 0 else None

        @jax.jit
        def run(params, key):
            net = nnx.merge(graphdef, params, rest)
            ctx, ks, shapes = self._setup(key, batch)
            if mesh is not None:
                ctx = jax.lax.with_sharding_constraint(ctx, batch_sharded(mesh))
            out, info = self._run_sampler(net, ctx, ks, shapes, sampler, steps, grid)
            return out, ctx, {"nfe": info["nfe"]}

        cache[key_] = run, mesh
        return run, mesh


class _PFGMPPBody(_GraphContinuous):
    """PFGM++ / EDM on the GDSS graph state (module docstring)."""

    samplers = PFGMPP_SAMPLERS

    def __init__(self, config: GraphPFGMPPConfig):
        if not config.D > 0:
            raise ValueError(f"D must be positive (or inf for EDM), got {config.D}")
        super().__init__(config)

    def make_process(self) -> PFGMPP:
        return self.config.process()

    def init_model(self, key: Array) -> GraphPFGMPPNet:
        c = self.config
        return GraphPFGMPPNet(c.net, self.process, c.time_input, rngs=nnx.Rngs(key))

    def _run_sampler(self, net, ctx, key, shapes, sampler, steps, grid):
        del grid
        c = self.config
        cons = self.domain.constrain
        # EDM's Heun (2 K - 1 calls) or Euler (K calls) on the same noise levels
        sample = heun_sample if sampler == "heun" else edm_euler_sample
        return sample(
            net,
            self.processes,
            ctx,
            key,
            shapes=shapes,
            steps=steps,
            sigma_min=c.sigma_min,
            sigma_max=c.sigma_max,
            rho=c.rho,
            constrain=cons,
        )


class _FlowBody(_GraphContinuous):
    """Flow matching on the GDSS graph state, Euler / Heun / BOSS samplers (module
    docstring)."""

    samplers = FLOW_SAMPLERS
    #: files of a training run that ``genmodels export`` carries along
    artefacts = (BOSS_GRIDS_FILE,)

    def __init__(self, config: GraphFlowConfig):
        super().__init__(config)
        #: set by :func:`genmodels.models.run.load_recipe_model`: where BOSS grids live
        self.checkpoint_dir: Path | None = None

    def make_process(self) -> LinearFlow:
        return LinearFlow(ot_coupling=False, t_eps=self.config.t_eps)

    def init_model(self, key: Array) -> GraphFlowNet:
        return GraphFlowNet(self.config.net, self.config.time_input, rngs=nnx.Rngs(key))

    def boss_setup(self, net: nnx.Module, key: Array, batch: int) -> tuple:
        """The flow problem of one batch for :func:`genmodels.models.boss.compute_boss_grids`
        (traceable; called inside its jitted batch).

        Args:
          net: the velocity network ``(state, t [B], ctx) -> {"x", "adj"}``.
          key: PRNG key of the batch (atom counts, then the prior draw).
          batch: molecules in the batch.

        Returns:
          ``(field, processes, ctx, prior key, shapes, constrain)``.
        """
        ctx, ks, shapes = self._setup(key, batch)
        return net, self.processes, ctx, ks, shapes, self.domain.constrain

    def boss_grid(self, steps: int) -> np.ndarray:
        """The stored BOSS grid for ``steps`` steps: the config's ``boss_grids`` file, else
        ``boss_grids.json`` in :attr:`checkpoint_dir`.

        Returns:
          float32 [K + 1] times from 1 to 0.

        Raises:
          FileNotFoundError: no grid file (the message gives the command that makes one).
          ValueError: the file has no grid for ``steps``.
        """
        c = self.config
        path = Path(c.boss_grids) if c.boss_grids else find_boss_grids(self.checkpoint_dir)
        if path is None or not path.exists():
            ckpt = self.checkpoint_dir or "DIR"
            where = c.boss_grids or (
                str(Path(self.checkpoint_dir) / BOSS_GRIDS_FILE)
                if self.checkpoint_dir
                else "(no checkpoint folder given)"
            )
            raise FileNotFoundError(
                f"the boss sampler needs {BOSS_GRIDS_FILE} with Bellman-optimal time grids and "
                f"found none at {where}. Compute it for this checkpoint with\n"
                f"    python -m genmodels.models.boss grids flow_{c.dataset} --checkpoint {ckpt}\n"
                f"(the recipe's name if it is not flow_{c.dataset}), set --config.boss-grids "
                "FILE, or use --sampler euler / heun"
            )
        grids = read_boss_grids(path)
        if int(steps) not in grids:
            raise ValueError(
                f"{path} has no BOSS grid for {steps} steps; it has K in {sorted(grids)}"
            )
        return grids[int(steps)]

    def _grid(self, sampler: str, steps: int) -> np.ndarray | None:
        return self.boss_grid(steps) if sampler == "boss" else None

    def _run_sampler(self, net, ctx, key, shapes, sampler, steps, grid):
        cons = self.domain.constrain
        if sampler == "heun":
            return probability_flow_sample(
                net,
                self.processes,
                ctx,
                key,
                shapes=shapes,
                solver=diffrax.Heun(),
                steps=steps,
                t0=1.0,
                t1=0.0,
                constrain=cons,
            )
        times = uniform_grid(steps) if grid is None else jnp.asarray(grid, jnp.float32)
        return euler_sample(
            net, self.processes, ctx, key, shapes=shapes, grid=times, constrain=cons
        )


# ------------------------------------------------------------------ per domain


class _MoleculeChecks:
    def __init__(self, config: GraphContinuousConfig):
        if config.dataset not in MOLECULE_DATASETS:
            raise ValueError(
                f"unknown molecule data set {config.dataset!r}; choose one of {MOLECULE_DATASETS}"
            )
        super().__init__(config)

    def dense_batch(self, batch: dict) -> tuple[State, Context]:
        """Molecule loader arrays -> GDSS state and context (jit-compatible).

        Args:
          batch: ``{"types": [B, N] int (-1 on padding), "bonds": [B, N, N] int}``.

        Returns:
          ``({"x": [B, N, F] one-hot, "adj": [B, N, N] float}, {"node_mask", "masks"})``.
        """
        types = jnp.asarray(batch["types"]).astype(jnp.int32)  # [B, N]
        node_mask = (types >= 0).astype(jnp.float32)
        x0 = {
            "x": jax.nn.one_hot(types, self.config.net.max_feat_num),  # one_hot(-1) = 0
            "adj": jnp.asarray(batch["bonds"]).astype(jnp.float32),
        }
        return x0, {"node_mask": node_mask, "masks": graph_masks(node_mask)}


class _GenericDomain:
    def __init__(self, config: GraphContinuousConfig):
        super().__init__(config)
        # GDSS's generic-graph adapter: degree one-hot ``x``, 0/1 ``adj``
        self.domain = GraphDomain(config.net.max_node_num, config.net.max_feat_num)


class GraphPFGMPP(_MoleculeChecks, _PFGMPPBody, GDSSMolecules):
    """PFGM++ / EDM on molecule graphs (QM9, ZINC250k, MOSES; module docstring)."""


class GraphFlow(_MoleculeChecks, _FlowBody, GDSSMolecules):
    """Flow matching (+ BOSS) on molecule graphs (module docstring)."""


class GenericGraphPFGMPP(_GenericDomain, _PFGMPPBody, GDSS):
    """PFGM++ / EDM on generic graphs (community_small, ego_small, ENZYMES, grid): GDSS's
    degree one-hot features and 0/1 adjacency, decoding (threshold 0.5) and MMD metrics."""


class GenericGraphFlow(_GenericDomain, _FlowBody, GDSS):
    """Flow matching (+ BOSS) on generic graphs (GDSS's data, decoding and MMD metrics)."""
