"""CDVAE: Crystal Diffusion Variational Autoencoder (Xie, Fu, Ganea, Barzilay, Jaakkola, ICLR 2022).

A periodic encoder maps a crystal to a Gaussian latent ``z`` (Sec. 3.1); MLP heads give
the atom count, lattice and composition; a decoder conditioned on ``z`` denoises
coordinates and types (Sec. 3.2) and generates by annealed Langevin dynamics over
geometric noise levels (Sec. 3.3). This module keeps the losses and the decoding; the
network is :class:`~genmodels.nets.cdvae.CDVAEModel`, the data kind
:class:`~genmodels.models.tasks.crystals.CrystalTask`, the coordinate processes
:mod:`genmodels.processes.coords`; sampling runs through the
:class:`~genmodels.models.runner.Runner`.

Faithful to txie-93/cdvae (``pl_modules/model.py``, ``conf/model/vae.yaml``,
``conf/data/*.yaml``, ``scripts/evaluate.py``): heads ``build_mlp`` (width 256, 1 layer);
lattice target ``[lengths / N^(1/3), angles]`` standardized with the training split's
mean and population std + 1e-5; one level per crystal for coordinates (10 -> 0.01) and
types (5 -> 0.01), 50 each; noisy types ``one_hot + sigma_t softmax(composition)``
(detached); Cartesian noise in the decoding lattice (true under teacher forcing, else
predicted), mapped back with the pseudo-inverse; coordinate loss
``1/2 sigma^2 ||(y - x) / sigma^2 - d / sigma||^2`` (minimum image over 27 cells); type
cross entropy; KL ``-1/2 sum(1 + logvar - mu^2 - exp(logvar))``; per-atom terms averaged
per crystal, then over crystals; weights atoms 1, lattice 10, coordinates 10, types 1,
composition 1, property 1, KL 0.01; teacher forcing up to ``teacher_forcing_max_epoch``.
Generation: ``z ~ N(0, I)``, count = argmax of its head, types by ``sample_composition``,
uniform fractional coordinates, per level 100 Langevin steps of ``1e-4 (sigma /
sigma_L)^2`` with score ``d / sigma``, wrapping and argmax types after every step.
Reconstruction decodes ``mu + sigma eps``; property optimisation is Adam (1e-3, 5000
steps) on ``z``.

PFGM++ coordinate noise (``coord_D = D``; Xu et al., ICML 2023, eq. 4): the kernel
``p_r(x | y) ∝ (||x - y||^2 + r^2)^(-(N + D)/2)``, ``r = sigma sqrt(D)``, ``N = 3 n``
(``D = inf``: CDVAE's Gaussian, same draws); ``d`` regresses ``(y - x) / sigma``, so the
aligned ODE is ``dx/dsigma = -d``: ``heun`` / ``euler`` solve it over ``steps``
geometric levels and a final step to 0 from uniform coordinates (:func:`ode_decode`).
Flow matching (``coord_process="flow"``; on the torus as FlowMM): ``f_t = wrap(f_0 + t
delta)``, ``delta = wrap_centred(f_1 - f_0)``, ``f_1 ~ U[0, 1)^3``, ``t`` appended to the
latent, ``d`` regresses the Cartesian velocity (:func:`flow_decode`).

Samplers are registry names run through CDVAE's decoders (``_DECODERS``), which add an
assigned type leaf, a uniform start on the torus and the cell. Departures: the simplified
DimeNet++/GemNet-T of :mod:`genmodels.nets.periodic`; Adam at a constant or cosine rate
with global-norm clipping (reference: ``ReduceLROnPlateau``, per-element clipping); counts
clipped to ``1..max_atoms``; float32 categorical draws.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from pymatgen.core import Structure

from genmodels.core.types import Array
from genmodels.datasets.crystals import CrystalDataset
from genmodels.datasets.user import UserData
from genmodels.domains.crystals import (
    cart_to_frac,
    lattice_params_to_matrix,
    min_image_displacement,
    node_mask,
    sample_composition,
)
from genmodels.models.runner import Runner, shard_batch
from genmodels.models.tasks.crystals import ARRAY_KEYS, CrystalTask
from genmodels.nets.cdvae import CDVAEModel, CDVAEStat
from genmodels.processes.coords import (
    KernelLevels,
    TorusFlow,
    atom_mean,
    coordinate_noise,
    flow_displacement,
    geometric_sigmas,
    kernel_score,
)
from genmodels.samplers.langevin import annealed_langevin_sample
from genmodels.samplers.ode import sigma_grid_sample
from genmodels.samplers.registry import REGISTRY, NoOptions
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader, FlagLoader

__all__ = [
    "SAMPLERS", "CDVAE", "CDVAEConfig", "CDVAEModel", "CDVAEStat", "coordinate_loss",
    "coordinate_noise", "flow_decode", "flow_displacement", "geometric_sigmas", "kernel_score",
    "langevin_decode", "min_image_displacement", "ode_decode", "sample_composition",
]  # fmt: skip

#: coordinate processes: CDVAE's denoising score (PFGM++ for a finite ``coord_D``) or flow
COORD_PROCESSES = ("score", "flow")

#: CDVAE's ``StandardScalerTorch`` adds this to the standard deviations
SCALER_EPS = 1e-5


@dataclass(frozen=True)
class CDVAEConfig:
    """A CDVAE recipe (reference values from ``conf/model/vae.yaml`` and ``conf/data``).

    Attributes:
      dataset: ``perov_5``, ``carbon_24``, ``mp_20`` or a user's path (``data``; then
        ``max_atoms`` is the data's, types are drawn from its elements only, and
        ``data.property`` turns ``predict_property`` on).
      train_split, eval_split: split trained on (its statistics standardize the lattice)
        and the default reference split.
      train_limit, eval_limit: read only the first rows of the training / other splits.
      max_atoms: the count head's largest class and padding (perov_5 20, carbon_24 24).
      num_types: atom classes (class ``k`` is atomic number ``k + 1``).
      latent_dim, hidden_dim, fc_num_layers: latent size and MLP heads (256, 256, 1).
      enc_hidden, enc_blocks, dec_hidden, dec_blocks: encoder (128, 4) and decoder (128, 3).
      num_rbf, cutoff, max_neighbors: radial basis, graph radius (7 A), neighbours (20).
      sigma_begin, sigma_end, type_sigma_begin, type_sigma_end, num_noise_level:
        coordinate levels 10 -> 0.01 and type levels 5 -> 0.01, 50 each.
      cost_natom, cost_lattice, cost_coord, cost_type, cost_composition, cost_property,
        beta: loss weights (1, 10, 10, 1, 1, 1, KL 0.01).
      teacher_forcing_lattice, teacher_forcing_max_epoch: decode with the true lattice up
        to that epoch (0-based).
      predict_property: train ``fc_property`` on the (standardized) dataset property.
      n_step_each, step_lr, min_sigma: Langevin steps per level, step size, smallest level.
      coord_D: the PFGM++ coordinate kernel's ``D`` (``inf``: CDVAE's Gaussian).
      coord_process: ``"score"`` (denoising, with ``coord_D``) or ``"flow"`` (torus flow;
        ``coord_D`` stays ``inf``, sampler ``euler`` or ``heun``).
      sampler: default sampler: ``"langevin"``, ``"heun"`` or ``"euler"`` (``steps``: ODE
        levels or flow steps, default ``num_noise_level``).
      sample_batch, sample_use_ema: crystals per jitted batch; EMA parameters (CDVAE: no).
      lattice_mean, lattice_std, property_mean, property_std: scaler statistics if known
        (``None``: from the training split when the model is built).
    """

    dataset: str = "perov_5"
    data: UserData = UserData()  # options of a user data file (``--dataset PATH``)
    train_split: str = "train"
    eval_split: str = "test"
    train_limit: int | None = None
    eval_limit: int | None = None
    max_atoms: int = 20
    num_types: int = 100
    latent_dim: int = 256
    hidden_dim: int = 256
    fc_num_layers: int = 1
    enc_hidden: int = 128
    enc_blocks: int = 4
    dec_hidden: int = 128
    dec_blocks: int = 3
    num_rbf: int = 6
    cutoff: float = 7.0
    max_neighbors: int = 20
    sigma_begin: float = 10.0
    sigma_end: float = 0.01
    type_sigma_begin: float = 5.0
    type_sigma_end: float = 0.01
    num_noise_level: int = 50
    cost_natom: float = 1.0
    cost_lattice: float = 10.0
    cost_coord: float = 10.0
    cost_type: float = 1.0
    cost_composition: float = 1.0
    cost_property: float = 1.0
    beta: float = 0.01
    teacher_forcing_lattice: bool = True
    teacher_forcing_max_epoch: int = 1500
    predict_property: bool = False
    n_step_each: int = 100
    step_lr: float = 1e-4
    min_sigma: float = 0.0
    coord_D: float = math.inf
    coord_process: str = "score"
    sampler: str = "langevin"
    sample_batch: int = 128
    sample_use_ema: bool = False
    lattice_mean: tuple[float, ...] | None = None
    lattice_std: tuple[float, ...] | None = None
    property_mean: float | None = None
    property_std: float | None = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=256))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3))

    def build(self) -> CDVAE:
        return CDVAE(self)


# ----------------------------------------------------------------------------- pieces


def coordinate_loss(
    d: Array, frac: Array, noisy_frac: Array, lattice: Array, sigma: Array, mask: Array
) -> Array:
    """CDVAE ``coord_loss`` (:meth:`KernelLevels.loss`) with the target measured in the
    true lattice: ``min_image_displacement(frac, noisy_frac, lattice)``.

    Args:
      d: [B, N, 3] decoder coordinate output; frac, noisy_frac: [B, N, 3]; lattice:
        [B, 6]; sigma: [B] levels; mask: [B, N] real atoms.

    Returns:
      Scalar loss.
    """
    disp = min_image_displacement(frac, noisy_frac, lattice)
    return KernelLevels.loss(d, disp, sigma, mask)


def _decode_problem(decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types):
    """The coordinate samplers' shared state ``{"cart", "types"}`` (one-hot types), context,
    periodic ``constrain`` and decoder call.

    Returns:
      ``(init, ctx, mask [B, N], mat [B, 3, 3], constrain, call)`` with ``call(state,
      t=None) -> (d [B, N, 3], new_types [B, N, K])`` (``t`` [B], the flow's time, is
      appended to the latent).
    """
    mask = node_mask(num_atoms, types0.shape[1])  # [B, N]
    mat = lattice_params_to_matrix(lattice)  # [B, 3, 3]
    ctx = {
        "z": z,
        "lattice": lattice,
        "node_mask": mask,
        "masks": {"cart": mask[..., None], "types": mask[..., None]},
    }

    def call(state, t=None):
        frac = cart_to_frac(state["cart"], mat)
        zz = ctx["z"] if t is None else jnp.concatenate([ctx["z"], t[:, None]], -1)
        d, logits = decoder(zz, state["types"], frac, ctx["lattice"], ctx["node_mask"])
        new_types = (
            jax.nn.one_hot(jnp.argmax(logits, -1), num_types) if update_types else state["types"]
        )
        return d, new_types

    def constrain(state, ctx):
        frac = cart_to_frac(state["cart"], mat)
        return {**state, "cart": jnp.einsum("bni,bij->bnj", frac, mat)}

    init = {
        "cart": jnp.einsum("bni,bij->bnj", frac0, mat),
        "types": jax.nn.one_hot(types0, num_types),
    }
    return init, ctx, mask, mat, constrain, call


def _decoded(state, mask, mat) -> tuple[Array, Array]:
    frac = cart_to_frac(state["cart"], mat) * mask[..., None]
    types = (jnp.argmax(state["types"], -1) * mask).astype(jnp.int32)
    return frac, types


def langevin_decode(
    decoder,
    z: Array,
    num_atoms: Array,
    lattice: Array,
    types0: Array,
    frac0: Array,
    key: Array,
    *,
    sigmas: np.ndarray,
    num_types: int,
    n_step_each: int = 100,
    step_lr: float = 1e-4,
    min_sigma: float = 0.0,
    update_types: bool = True,
    coord_D: float = math.inf,
    denoise: bool = False,
) -> tuple[Array, Array, dict]:
    """CDVAE's annealed Langevin decoding of a batch of latents (``langevin_dynamics``).

    ``cart <- cart + step s + sqrt(2 step) eps``, ``step = step_lr (sigma / sigma_L)^2``,
    with ``s = d / sigma`` (finite ``coord_D``: :func:`kernel_score`), then wrapped into
    the cell and (``update_types``) the types set to the decoder's argmax (an assigned
    leaf of :func:`~genmodels.samplers.langevin.annealed_langevin_sample`).

    Args:
      decoder: ``(z, types [B, N, K], frac, lattice, node_mask) -> (d [B, N, 3], logits
        [B, N, K])``.
      z: [B, D]; num_atoms: [B]; lattice: [B, 6] (fixed); types0: [B, N] initial classes;
        frac0: [B, N, 3] initial coordinates; key: PRNG key.
      sigmas: [L] decreasing levels (concrete); num_types: K.
      n_step_each, step_lr, min_sigma, denoise: Langevin settings (CDVAE 100, 1e-4, 0, off).
      update_types: argmax types after each step (``False``: keep ``types0``).
      coord_D: the coordinate kernel's ``D`` (``inf``: Gaussian, score ``d / sigma``).

    Returns:
      ``(frac [B, N, 3] in [0, 1), types [B, N] int32, info)``, 0 on padding.
    """
    b, n = types0.shape
    init, ctx, mask, mat, constrain, call = _decode_problem(
        decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types
    )

    def score_fn(state, sigma, ctx):
        d, new_types = call(state)
        return {"cart": kernel_score(d, sigma, coord_D, ctx["node_mask"]), "types": new_types}

    state, info = annealed_langevin_sample(
        score_fn,
        sigmas,
        ctx,
        key,
        shapes={"cart": (b, n, 3), "types": (b, n, num_types)},
        n_steps_each=n_step_each,
        step_lr=step_lr,
        min_sigma=min_sigma,
        denoise=denoise,
        init=init,
        constrain=constrain,
        assign=("types",),
    )
    frac, types = _decoded(state, mask, mat)
    return frac, types, info


def _grid_decode(inputs, grid, sign: float, timed: bool, num_types, method, update_types):
    """``dx/ds = sign d(x)`` over ``grid`` (:func:`~genmodels.samplers.ode.sigma_grid_sample`,
    types assigned); ``inputs``: ``(decoder, z, num_atoms, lattice, types0, frac0)``;
    ``timed``: the decoder reads ``s`` as the flow's time."""
    init, ctx, mask, mat, constrain, call = _decode_problem(*inputs, num_types, update_types)

    def slope_fn(state, s, ctx):
        d, new_types = call(state, s if timed else None)
        return {"cart": sign * d, "types": new_types}

    state, info = sigma_grid_sample(
        slope_fn, grid, ctx, init=init, method=method, constrain=constrain, assign=("types",)
    )
    frac, types = _decoded(state, mask, mat)
    return frac, types, info


def ode_decode(
    decoder, z: Array, num_atoms: Array, lattice: Array, types0: Array, frac0: Array, *,
    sigmas: np.ndarray, num_types: int, method: str = "heun", update_types: bool = True,
) -> tuple[Array, Array, dict]:  # fmt: skip
    """The PFGM++ / EDM backward ODE ``dx/dsigma = (x - D(x; sigma)) / sigma = -d(x)`` on
    Cartesian coordinates (Xu et al. 2023, aligned form; Karras et al. 2022, eq. 4) from
    ``frac0`` at ``sigmas[0]`` down ``sigmas`` and a final Euler step to 0 (Heun: ``2 L -
    1`` calls; Euler ``L``); wrapped and types assigned as :func:`langevin_decode`.

    Args:
      decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types: as for
        :func:`langevin_decode`.
      sigmas: [L] decreasing positive levels (concrete).
      method: ``"heun"`` or ``"euler"``.

    Returns:
      ``(frac, types, info)`` as :func:`langevin_decode`.
    """
    grid = np.concatenate([np.asarray(sigmas, np.float32), np.zeros((1,), np.float32)])
    inputs = (decoder, z, num_atoms, lattice, types0, frac0)
    return _grid_decode(inputs, grid, -1.0, False, num_types, method, update_types)


def flow_decode(
    decoder, z: Array, num_atoms: Array, lattice: Array, types0: Array, frac0: Array, *,
    steps: int, num_types: int, method: str = "euler", update_types: bool = True,
) -> tuple[Array, Array, dict]:  # fmt: skip
    """The coordinate flow ``dx/dt = d(x, t)`` (Cartesian velocity, ``t`` appended to the
    latent) from ``frac0`` at ``t = 1`` to 0 on ``steps`` uniform steps (Euler ``steps``
    calls, Heun ``2 steps - 1``); wrapped and types assigned as :func:`langevin_decode`.

    Args:
      decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types: as for
        :func:`langevin_decode` (``z`` without the time entry).
      steps: uniform time steps; method: ``"euler"`` or ``"heun"``.

    Returns:
      ``(frac, types, info)`` as :func:`langevin_decode`.
    """
    inputs = (decoder, z, num_atoms, lattice, types0, frac0)
    return _grid_decode(inputs, TorusFlow.grid(steps), 1.0, True, num_types, method, update_types)


@dataclass(frozen=True)
class _Decoder:
    """A coordinate decoder: ``run(name, process, decoder, args, key, steps, options,
    **kw)``, its options type and the config field holding its default ``steps``."""

    run: Callable[..., tuple[Array, Array, dict]]
    options: type
    steps_field: str


def _langevin(name, proc, decoder, args, key, steps, opts, **kw):
    del name
    return langevin_decode(
        decoder, *args, key, sigmas=proc.sigmas, n_step_each=steps, step_lr=opts.step_lr,
        min_sigma=opts.min_sigma, denoise=opts.denoise, coord_D=proc.D, **kw,
    )  # fmt: skip


def _ode(name, proc, decoder, args, key, steps, opts, **kw):
    del key, opts
    return ode_decode(decoder, *args, sigmas=proc.levels(steps), method=name, **kw)


def _flow(name, proc, decoder, args, key, steps, opts, **kw):
    del proc, key, opts
    return flow_decode(decoder, *args, steps=steps, method=name, **kw)


def _registered(**decoders: _Decoder) -> dict[str, _Decoder]:
    """``decoders`` by sampler name; each name is a registry entry (``genmodels samplers``
    describes it)."""
    missing = sorted(set(decoders) - set(REGISTRY))
    if missing:
        raise RuntimeError(f"CDVAE decoders {missing} have no sampler registry entry")
    return decoders


_ODE = _Decoder(_ode, NoOptions, "num_noise_level")
_FLOW = _Decoder(_flow, NoOptions, "num_noise_level")
#: process kind -> sampler name -> decoder; the first is CDVAE's own
_DECODERS: dict[str, dict[str, _Decoder]] = {
    KernelLevels.kind: _registered(
        langevin=_Decoder(_langevin, REGISTRY["langevin"].options, "n_step_each"),
        heun=_ODE,
        euler=_ODE,
    ),
    TorusFlow.kind: _registered(heun=_FLOW, euler=_FLOW),
}
#: every coordinate sampler; the first is CDVAE's (annealed Langevin)
SAMPLERS = tuple(dict.fromkeys(n for d in _DECODERS.values() for n in d))


# ----------------------------------------------------------------------------- the method


def _ce(logits: Array, labels: Array) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _only(decoder, allowed: np.ndarray):
    """``decoder`` whose type logits are ``-inf`` outside ``allowed`` [K]."""

    def call(*args):
        d, logits = decoder(*args)
        return d, jnp.where(allowed, logits, -jnp.inf)

    return call


class CDVAE:
    """CDVAE on one crystal benchmark (module docstring).

    Attributes:
      task: the data (:class:`CrystalTask`).
      coord: the coordinate process (:class:`KernelLevels` or :class:`TorusFlow`).
      type_levels: the atom types' noise levels.
      samplers: registry names of the usable decoders, the config's first.
      runner: the compiled sampling functions.
    """

    sample_suffix = ".cif"
    sample_suffixes, eval_splits = CrystalTask.sample_suffixes, CrystalTask.eval_splits

    def __init__(self, config: CDVAEConfig):
        c = config
        self.task = CrystalTask(
            c.dataset, c.max_atoms, c.num_types, data=c.data, train_split=c.train_split,
            train_limit=c.train_limit, eval_limit=c.eval_limit,
        )  # fmt: skip
        if self.task.user:  # sized by the user's data; its --property trained on if named
            prop = c.predict_property or c.data.property is not None
            c = dataclasses.replace(c, max_atoms=self.task.domain.max_atoms, predict_property=prop)
        z = self.task.elements  # a user's data: its elements are the only classes sampled
        self.type_mask = None if z is None else np.isin(np.arange(1, c.num_types + 1), z)
        if not c.coord_D > 0:
            raise ValueError(f"coord_D must be positive (or inf: Gaussian), got {c.coord_D}")
        if c.coord_process not in COORD_PROCESSES:
            choose = ", ".join(COORD_PROCESSES)
            raise ValueError(f"unknown coord_process {c.coord_process!r}; choose one of {choose}")
        self.flow = c.coord_process == "flow"
        if self.flow and not math.isinf(c.coord_D):
            raise ValueError("coord_D (the PFGM++ kernel) applies to coord_process='score'")
        self.config = c
        levels = KernelLevels(c.sigma_begin, c.sigma_end, c.num_noise_level, c.coord_D)
        self.coord = TorusFlow() if self.flow else levels  # a frozen dataclass: no work
        self.type_levels = KernelLevels(c.type_sigma_begin, c.type_sigma_end, c.num_noise_level)
        self.decoders = _DECODERS[self.coord.kind]
        self._resolve(c.sampler, None, {})  # a bad default sampler fails here
        self.samplers = (c.sampler, *(n for n in self.decoders if n != c.sampler))
        self.runner = Runner()

    # ------------------------------------------------------------------ data
    def dataset(self, split: str) -> CrystalDataset:
        """:meth:`CrystalTask.dataset`."""
        return self.task.dataset(split)

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """:meth:`CrystalTask.arrays`."""
        return self.task.arrays(split)

    @cached_property
    def stats(self) -> dict[str, np.ndarray]:
        """Lattice and property scaler statistics (config values, else the training split)."""
        c = self.config
        out: dict[str, Any] = {}
        if c.lattice_mean is not None and c.lattice_std is not None:
            out["lattice_mean"] = np.asarray(c.lattice_mean, np.float32)
            out["lattice_std"] = np.asarray(c.lattice_std, np.float32)
        if c.property_mean is not None and c.property_std is not None:
            out["property_mean"] = np.float32(c.property_mean)
            out["property_std"] = np.float32(c.property_std)
        if len(out) == 4:
            return out
        return {**self.task.scaler_stats(SCALER_EPS), **out}

    def loader(self) -> FlagLoader:
        """Shuffled batches of the training split plus the teacher-forcing flag."""
        c = self.config
        a = self.task.train_arrays()
        arrays = {k: a[k] for k in ARRAY_KEYS}
        if c.predict_property:
            s = self.stats
            prop = (a["property"] - s["property_mean"]) / s["property_std"]
            arrays["property"] = prop.astype(np.float32)
        inner = ArrayLoader(arrays, batch_size=c.train.batch_size, seed=c.train.seed)
        tf_steps = (c.teacher_forcing_max_epoch + 1) * inner.steps_per_epoch
        return FlagLoader(inner, tf_steps if c.teacher_forcing_lattice else 0)

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> CDVAEModel:
        """A fresh model with :attr:`stats` (placeholders under ``nnx.eval_shape``, where a
        checkpoint's statistics replace them and no data is read)."""
        if isinstance(key, jax.core.Tracer):
            stats = {"lattice_mean": np.zeros(6), "lattice_std": np.ones(6)}
            stats.update(property_mean=0.0, property_std=1.0)
        else:
            stats = self.stats
        return CDVAEModel(self.config, stats, rngs=nnx.Rngs(key))

    def loss_fn(self, model: CDVAEModel, batch: dict, key: Array):
        """CDVAE's training objective (``forward`` + ``compute_stats``; module docstring).

        Args:
          model: the CDVAE model.
          batch: ``frac`` [B, N, 3], ``types`` [B, N] int, ``lattice`` [B, 6],
            ``num_atoms`` [B], optionally ``teacher_forcing`` [B] (default on) and
            ``property`` [B] (standardized).
          key: PRNG key.

        Returns:
          ``(loss, metrics)`` with every weighted term's raw value.
        """
        c = self.config
        frac = batch["frac"].astype(jnp.float32)
        lattice = batch["lattice"].astype(jnp.float32)
        num_atoms = batch["num_atoms"].astype(jnp.int32)
        b, n = batch["types"].shape
        mask = node_mask(num_atoms, n)  # [B, N]
        types = (batch["types"].astype(jnp.int32) * mask).astype(jnp.int32)
        tf = batch.get("teacher_forcing")
        tf = jnp.ones((b,), bool) if tf is None else jnp.asarray(tf) > 0
        k_eps, k_lvl, k_tlvl, k_type, k_noise = jax.random.split(key, 5)

        mu, logvar = model.encode(types, frac, lattice, mask)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(k_eps, mu.shape)
        natom_logits, _, scaled_pred, pred_lattice, comp_logits = model.decode_stats(z, num_atoms)
        if c.teacher_forcing_lattice:
            used = jnp.where(tf[:, None], lattice, pred_lattice)
        else:
            used = pred_lattice
        tsigma = self.type_levels.draw_sigma(k_tlvl, b)  # [B]

        # noisy types: multinomial over one_hot + sigma_type * composition (unnormalized)
        comp_probs = jax.nn.softmax(jax.lax.stop_gradient(comp_logits), -1)  # [B, K]
        type_probs = (
            jax.nn.one_hot(types, c.num_types) + comp_probs[:, None, :] * tsigma[:, None, None]
        )
        rand_types = jax.random.categorical(k_type, jnp.log(type_probs), axis=-1)
        rand_types = (rand_types * mask).astype(jnp.int32)  # [B, N]

        mat = lattice_params_to_matrix(used)
        if self.flow:
            # the torus geodesic from the crystal (t = 0) to uniform coordinates (t = 1)
            t, noisy_frac, delta = self.coord.corrupt(k_lvl, k_noise, frac, mask)
            velocity = jnp.einsum("bni,bij->bnj", delta, mat)  # [B, N, 3] Cartesian
            zt = jnp.concatenate([z, t[:, None]], -1)
            d, type_logits = model.decoder(zt, rand_types, noisy_frac, used, mask)
            coord_loss = self.coord.loss(d, velocity, mask)
        else:
            # Cartesian noise (Gaussian or PFGM++) in the decoding lattice, back to [0, 1)
            sigma = self.coord.draw_sigma(k_lvl, b)  # [B]
            cart = jnp.einsum("bni,bij->bnj", frac, mat)
            cart = cart + self.coord.noise(k_noise, frac.shape, sigma, mask)
            noisy_frac = cart_to_frac(cart, mat) * mask[..., None]
            d, type_logits = model.decoder(z, rand_types, noisy_frac, used, mask)
            coord_loss = coordinate_loss(d, frac, noisy_frac, lattice, sigma, mask)

        natom_loss = jnp.mean(_ce(natom_logits, num_atoms))
        lattice_loss = jnp.mean(jnp.square(scaled_pred - model.scale_lattice(lattice, num_atoms)))
        comp_ce = _ce(jnp.broadcast_to(comp_logits[:, None, :], (b, n, c.num_types)), types)
        composition_loss = atom_mean(comp_ce, mask)
        type_loss = atom_mean(_ce(type_logits, types) / tsigma[:, None], mask)
        kld_loss = jnp.mean(-0.5 * jnp.sum(1.0 + logvar - mu**2 - jnp.exp(logvar), -1))
        loss = (
            c.cost_natom * natom_loss
            + c.cost_lattice * lattice_loss
            + c.cost_coord * coord_loss
            + c.cost_type * type_loss
            + c.beta * kld_loss
            + c.cost_composition * composition_loss
        )
        metrics = {
            "natom_loss": natom_loss, "lattice_loss": lattice_loss, "coord_loss": coord_loss,
            "type_loss": type_loss, "kld_loss": kld_loss, "composition_loss": composition_loss,
            "teacher_forcing": jnp.mean(tf.astype(jnp.float32)),
        }  # fmt: skip
        if c.predict_property and model.fc_property is not None:
            y = batch["property"].astype(jnp.float32)
            ok = jnp.isfinite(y)
            err = jnp.where(ok, model.fc_property(z)[:, 0] - jnp.where(ok, y, 0.0), 0.0)
            property_loss = jnp.sum(err**2) / jnp.maximum(jnp.sum(ok), 1)
            loss = loss + c.cost_property * property_loss
            metrics["property_loss"] = property_loss
        return loss, metrics

    # -------------------------------------------------------------- decoding
    def _resolve(self, sampler: str | None, steps: int | None, options: dict) -> tuple:
        """``(name, steps, options)`` of one call with the config's defaults: ``steps`` is
        Langevin steps per level (``n_step_each``) or the ODE's levels / the flow's steps
        (``num_noise_level``); ``options`` the decoder's options dataclass."""
        c = self.config
        name = sampler or c.sampler
        if name not in SAMPLERS:
            raise ValueError(f"unknown CDVAE sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
        if name not in self.decoders:
            ok = " or ".join(repr(n) for n in self.decoders)
            raise ValueError(f"the {c.coord_process} decoder is sampled by {ok}, not {name!r}")
        dec = self.decoders[name]
        fields = {f.name for f in dataclasses.fields(dec.options)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(
                f"CDVAE {name} sampling got unknown options {unknown}; it accepts "
                f"{', '.join(sorted(fields)) or 'no options'}"
            )
        given = {"step_lr": c.step_lr, "min_sigma": c.min_sigma, **options}
        opts = dec.options(**{k: v for k, v in given.items() if k in fields})
        steps = int(steps or getattr(c, dec.steps_field))
        if steps < 1:
            raise ValueError(f"CDVAE {name} sampling needs steps >= 1, got {steps}")
        return name, steps, opts

    def _heads(self, net, z, mesh, num_atoms=None, gt_types=None) -> dict:
        """Stage 1's output: ``z`` and the heads' counts, lattice and composition."""
        _, counts, _, lattice, comp_logits = net.decode_stats(z, num_atoms)
        if self.type_mask is not None:
            comp_logits = jnp.where(self.type_mask, comp_logits, -jnp.inf)
        st = {"z": z, "num_atoms": counts, "lattice": lattice}
        st["probs"] = jax.nn.softmax(comp_logits, -1)
        if gt_types is not None:
            st["gt_types"] = gt_types
        return shard_batch(st, mesh)

    def _generate_heads(self, model: CDVAEModel, batch: int):
        """``fn(key) -> (key, stage 1)`` from ``z ~ N(0, I)``."""

        def body(net, key, mesh):
            kz, kd = jax.random.split(key)
            return kd, self._heads(
                net, jax.random.normal(kz, (batch, self.config.latent_dim)), mesh
            )

        return self.runner.compile(model, batch, ("heads", "generate"), body)

    def _latent_heads(self, model: CDVAEModel, batch: int):
        """``fn(key, z) -> (key, stage 1)`` of given latents."""

        def body(net, key, mesh, z):
            return key, self._heads(net, shard_batch(z, mesh), mesh)

        return self.runner.compile(model, batch, ("heads", "latent"), body)

    @staticmethod
    def _latent(net, key, use_mean: bool, frac, types, lattice, num_atoms) -> Array:
        """[B, latent_dim] ``mu + sigma eps`` (``use_mean``: ``mu``) of crystals."""
        mu, logvar = net.encode(types, frac, lattice, node_mask(num_atoms, types.shape[1]))
        return mu if use_mean else mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)

    def _encoder(self, model: CDVAEModel, batch: int):
        """``fn(key, frac, types, lattice, num_atoms) -> z`` (:meth:`_latent`)."""

        def body(net, key, mesh, *inputs):
            return self._latent(net, key, False, *shard_batch(inputs, mesh))

        return self.runner.compile(model, batch, ("encode",), body)

    def _encode_heads(self, model: CDVAEModel, batch: int, use_mean, force_n, force_t):
        """``fn(key, frac, types, lattice, num_atoms) -> (key, stage 1)`` of encoded
        crystals (counts and types forced to theirs on request)."""

        def body(net, key, mesh, *inputs):
            frac, types, lattice, num_atoms = shard_batch(inputs, mesh)
            ke, kd = jax.random.split(key)
            z = self._latent(net, ke, use_mean, frac, types, lattice, num_atoms)
            forced = (num_atoms if force_n else None, types if force_t else None)
            return kd, self._heads(net, z, mesh, *forced)

        return self.runner.compile(model, batch, ("heads", use_mean, force_n, force_t), body)

    def _decode(self, model: CDVAEModel, batch: int, first: tuple, name: str, steps: int, opts):
        """Stage 2: the coordinates of stage 1's crystals ``first = (key, st)``, padded to
        the batch's largest atom count (one host read; one compilation per padding size,
        so a perov_5 batch decodes 5-atom, not ``max_atoms``-atom, buffers).

        Returns:
          Device arrays ``frac`` [B, n, 3], ``types`` [B, n], ``lattice``, ``num_atoms``.
        """
        key, st = first
        forced = "gt_types" in st
        n = int(jax.device_get(jnp.max(st["num_atoms"])))
        n = max(n, int(st["gt_types"].shape[1]) if forced else 0, 1)
        c, dec = self.config, self.decoders[name]

        def body(net, key, mesh, st):
            st = shard_batch(st, mesh)
            z, counts, lattice = st["z"], st["num_atoms"], st["lattice"]
            k_comp, k_frac, k_ld = jax.random.split(key, 3)
            if forced:
                gt = st["gt_types"]
                types0 = jnp.pad(gt, ((0, 0), (0, max(n - gt.shape[1], 0))))[:, :n]
                types0 = types0 * node_mask(counts, n).astype(types0.dtype)
            else:
                types0 = sample_composition(k_comp, st["probs"], counts, n)
            # uniform on the torus: CDVAE's start, and the wrapped Gaussian or PFGM++
            # kernel at sigma_1 = 10 A up to exponentially small terms
            frac0 = jax.random.uniform(k_frac, (z.shape[0], n, 3))
            init = shard_batch({"types0": types0, "frac0": frac0}, mesh)
            args = (z, counts, lattice, init["types0"], init["frac0"])
            decoder = net.decoder if self.type_mask is None else _only(net.decoder, self.type_mask)
            frac, types, _ = dec.run(
                name, self.coord, decoder, args, k_ld, steps, opts,
                num_types=c.num_types, update_types=not forced,
            )  # fmt: skip
            out = {"frac": frac, "types": types, "lattice": lattice, "num_atoms": counts}
            return shard_batch(out, mesh)

        options = ("decode", n, forced, name, steps, opts)
        return self.runner.compile(model, batch, options, body)(key, st)

    def sample_batch(
        self, model: CDVAEModel, key: Array, batch: int, *, sampler=None, steps=None, **options
    ) -> dict[str, Array]:
        """One jitted batch of :meth:`sample_arrays` (``key`` used as is) as device arrays,
        sharded over the devices when they divide ``batch``."""
        name, steps, opts = self._resolve(sampler, steps, options)
        return self._decode(
            model, batch, self._generate_heads(model, batch)(key), name, steps, opts
        )

    def sample_arrays(
        self, model, key, num, *, sampler=None, steps=None, batch_size=None, progress=True,
        **options,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """Generate ``num`` crystals from ``z ~ N(0, I)`` (CDVAE ``generation``) as arrays
        (no pymatgen needed; :meth:`decode_arrays` makes structures).

        Args:
          model: a trained model.
          key: PRNG key; round ``r`` uses ``fold_in(key, r)``.
          num: number of crystals.
          sampler: a name of :attr:`samplers` (default the config's).
          steps: Langevin steps per level (default ``n_step_each``) or ODE levels / flow
            steps (default ``num_noise_level``).
          batch_size: crystals per jitted round (default ``sample_batch``).
          progress: progress bar.
          **options: the sampler's options (Langevin: ``step_lr``, ``min_sigma``,
            ``denoise``).

        Returns:
          ``frac`` [num, N, 3], ``types`` [num, N] (class ``k`` is atomic number ``k +
          1``), ``lattice`` [num, 6], ``num_atoms`` [num]; ``N`` the largest count.
        """
        name, steps, opts = self._resolve(sampler, steps, options)
        batch = batch_size or self.config.sample_batch
        heads = self._generate_heads(model, batch)

        def one(k, r):
            return self._decode(model, batch, heads(k), name, steps, opts)

        parts = list(Runner.rounds(num, batch, key, one, progress=progress))
        return self.task.collate(parts, num)

    def sample(
        self, model: CDVAEModel, key: Array, num: int, **kwargs: Any
    ) -> list[Structure | None]:
        """:meth:`sample_arrays` (same arguments) as structures (``None``: no cell)."""
        return self.decode_arrays(self.sample_arrays(model, key, num, **kwargs))

    def decode_arrays(self, out: dict) -> list[Structure | None]:
        """Structures from ``frac``, ``types``, ``lattice``, ``num_atoms`` arrays."""
        return self.task.decode_arrays(jax.device_get(out))

    def decode_latents(
        self, model: CDVAEModel, key: Array, z: Array, *, sampler=None, steps=None, **options
    ) -> list[Structure | None]:
        """Decode latents [B, latent_dim] in one jitted batch (arguments as for
        :meth:`sample_arrays`)."""
        name, steps, opts = self._resolve(sampler, steps, options)
        z = jnp.asarray(z, jnp.float32)
        b = int(z.shape[0])
        out = self._decode(model, b, self._latent_heads(model, b)(key, z), name, steps, opts)
        return self.decode_arrays(out)

    def reconstruct_arrays(
        self, model: CDVAEModel, key: Array, split: str = "test", *, num: int | None = None,
        sampler: str | None = None, steps: int | None = None, batch_size: int | None = None,
        use_mean: bool = False, force_num_atoms: bool = False, force_atom_types: bool = False,
        progress: bool = True, **options: Any,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """Encode the first ``num`` crystals of ``split`` and decode them (CDVAE
        ``reconstructon``: ``z = mu + sigma eps``, or ``mu`` with ``use_mean``; counts and
        types from the heads unless forced). Other arguments as for :meth:`sample_arrays`.

        Returns:
          The arrays of :meth:`sample_arrays`, one row per input crystal in split order.
        """
        name, steps, opts = self._resolve(sampler, steps, options)
        a = self.arrays(split)
        total = len(a["num_atoms"]) if num is None else min(num, len(a["num_atoms"]))
        batch = min(batch_size or self.config.sample_batch, total)
        flags = (bool(use_mean), bool(force_num_atoms), bool(force_atom_types))
        heads = self._encode_heads(model, batch, *flags)

        def one(k, r):
            idx = np.arange(r * batch, (r + 1) * batch) % total  # pad the last round
            first = heads(k, *(a[x][idx] for x in ARRAY_KEYS))
            return self._decode(model, batch, first, name, steps, opts)

        rounds = Runner.rounds(total, batch, key, one, desc="reconstruct", progress=progress)
        parts = [
            {k: v[: min(batch, total - r * batch)] for k, v in out.items()}
            for r, out in enumerate(rounds)
        ]
        return self.task.collate(parts, total)

    def reconstruct(
        self, model: CDVAEModel, key: Array, split: str = "test", **kwargs: Any
    ) -> list[Structure | None]:
        """:meth:`reconstruct_arrays` (same arguments) as structures; compare them with
        :meth:`evaluate_reconstruction`."""
        return self.decode_arrays(self.reconstruct_arrays(model, key, split, **kwargs))

    def optimize_property(
        self, model: CDVAEModel, key: Array, num: int = 100, steps: int = 5000, lr: float = 1e-3,
        *, start: str = "data", split: str = "test", num_saved: int = 10, maximize: bool = False,
        decode: bool = True, ld_steps: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Latent property optimisation (CDVAE ``optimization``).

        Adam on ``z`` (``steps`` steps, rate ``lr``) minimizing the mean predicted
        property (the reference's objective; ``maximize=True`` flips the sign), from the
        latents of the first ``num`` crystals of ``split`` (``start="data"``) or from
        ``N(0, I)`` (``start="random"``). ``num_saved`` snapshots are taken after
        iterations ``0, k, 2k, ...`` and the last, ``k = steps // (num_saved - 1)``, and
        (``decode``) each is decoded by Langevin dynamics.

        Returns:
          ``{"iterations": [S], "z": [S, num, D], "property": [S, num] (data units),
          "structures": S lists of ``num`` structures (if ``decode``)}``.

        Raises:
          ValueError: the model has no property head, or an unknown ``start``.
        """
        if model.fc_property is None:
            raise ValueError("optimize_property needs predict_property=True")
        k_start, k_dec = jax.random.split(key)
        if start == "data":
            a = self.arrays(split)
            idx = np.arange(min(num, a["num_atoms"].shape[0]))
            z0 = self._encoder(model, len(idx))(k_start, *(a[k][idx] for k in ARRAY_KEYS))
        elif start == "random":
            z0 = jax.random.normal(k_start, (num, self.config.latent_dim))
        else:
            raise ValueError(f"unknown start {start!r}; choose data or random")
        interval = max(steps // max(num_saved - 1, 1), 1)
        saved = tuple(sorted(set(range(0, steps, interval)) | {steps - 1}))
        slot_of = np.full((steps,), -1, np.int32)
        slot_of[list(saved)] = np.arange(len(saved))
        sign = -1.0 if maximize else 1.0
        tx = optax.adam(lr)

        def adam(net, key, mesh, z0):
            def step(carry, slot):
                z, opt, buf = carry
                g = jax.grad(lambda z: sign * jnp.mean(net.fc_property(z)))(z)
                upd, opt = tx.update(g, opt, z)
                z = optax.apply_updates(z, upd)
                buf = jnp.where(slot >= 0, buf.at[jnp.maximum(slot, 0)].set(z), buf)
                return (z, opt, buf), None

            buf = jnp.zeros((len(saved),) + z0.shape, z0.dtype)
            (_, _, buf), _ = jax.lax.scan(step, (z0, tx.init(z0), buf), jnp.asarray(slot_of))
            return buf, jax.vmap(net.predict_property)(buf)

        options = ("optimize", steps, lr, sign, saved)
        zs, props = self.runner.compile(model, z0.shape[0], options, adam)(k_start, z0)
        out: dict[str, Any] = {
            "iterations": np.asarray(saved),
            "z": np.asarray(zs),
            "property": np.asarray(props),
        }
        if decode:
            out["structures"] = [
                self.decode_latents(model, jax.random.fold_in(k_dec, i), zs[i], steps=ld_steps)
                for i in range(len(saved))
            ]
        return out

    # ------------------------------------------------------------ files, metrics
    def write_samples(self, samples: list[Structure | None], path: Path) -> None:
        self.task.write_samples(samples, path)

    def read_samples(self, path: Path) -> list[Structure | None]:
        return self.task.read_samples(path)

    def evaluate(
        self, samples: list[Structure | None], split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """:meth:`CrystalTask.evaluate` (CDVAE's generation metrics against ``split``)."""
        return self.task.evaluate(samples, split, meta)

    def evaluate_reconstruction(
        self, pred: list[Structure | None], split: str = "test"
    ) -> dict[str, float]:
        """:meth:`CrystalTask.evaluate_reconstruction` (match rate and RMSE)."""
        return self.task.evaluate_reconstruction(pred, split)
