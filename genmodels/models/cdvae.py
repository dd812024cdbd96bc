"""CDVAE: Crystal Diffusion Variational Autoencoder (Xie, Fu, Ganea, Barzilay, Jaakkola, ICLR 2022).

A periodic encoder maps a crystal to a Gaussian latent ``z`` (VAE, Sec. 3.1); small MLP
heads predict from ``z`` the number of atoms, the lattice and the composition; a
score-matching decoder conditioned on ``z`` denoises atom coordinates and types (Sec. 3.2)
and generates crystals by annealed Langevin dynamics over geometric noise levels
(Sec. 3.3, :func:`genmodels.samplers.langevin.annealed_langevin_sample`). The networks
are :class:`genmodels.nets.periodic.PeriodicEncoder` / ``PeriodicDecoder``.

Faithful to the reference implementation (txie-93/cdvae, ``cdvae/pl_modules/model.py``;
settings from ``conf/model/vae.yaml``, ``conf/data/{perov,carbon,mp_20}.yaml``,
``conf/optim/default.yaml``, ``conf/train/default.yaml``, ``scripts/evaluate.py``):

- Heads: ``fc_mu``, ``fc_var`` (latent 256 -> 256); ``fc_num_atoms`` (``max_atoms + 1``
  classes), ``fc_lattice`` (6 standardized values), ``fc_composition`` (one type
  distribution per crystal, repeated over its atoms) and the optional ``fc_property``;
  each head is ``Linear-ReLU-(Linear-ReLU)*(fc_num_layers-1)-Linear`` with width
  ``hidden_dim`` 256 and ``fc_num_layers`` 1 (``build_mlp``).
- Lattice target (``lattice_scale_method: scale_length``): lengths divided by
  ``N^(1/3)`` and the three angles, standardized with the training split's mean and
  population standard deviation plus 1e-5 (``StandardScalerTorch``). The statistics are
  stored in the model (a non-trainable :class:`CDVAEStat` variable) so a checkpoint
  carries them.
- Training loss (``forward`` + ``compute_losses``), with per-crystal noise levels drawn
  uniformly for coordinates (10 -> 0.01, 50 levels) and types (5 -> 0.01, 50 levels):
  the noisy type of each atom is drawn from ``one_hot(type) + sigma_type *
  softmax(composition logits)`` (detached, normalized as ``torch.multinomial`` does);
  Cartesian noise ``sigma * eps`` is added in the lattice used for decoding (the true
  lattice under teacher forcing, else the predicted one), then mapped back to
  fractional coordinates with the pseudo-inverse and wrapped; the coordinate target is
  the minimum-image displacement from the noisy to the true position (over the 27 cell
  offsets, ``min_distance_sqr_pbc``) divided by ``sigma^2``, the decoder output is
  divided by ``sigma`` and the per-atom loss is ``1/2 sigma^2 ||target - pred||^2``; the
  type loss is the cross entropy divided by ``sigma_type``; coordinate, type and
  composition losses are averaged over a crystal's atoms, then over crystals; KL is
  ``-1/2 sum(1 + logvar - mu^2 - exp(logvar))`` averaged over crystals. Weights: number
  of atoms 1, lattice 10, coordinates 10, types 1, composition 1, property 1, KL
  (``beta``) 0.01.
- Teacher forcing: while the epoch index is at most ``teacher_forcing_max_epoch`` (perov_5
  1500 of 3000, carbon_24 1000 of 4000, mp_20 500 of 1000) the decoder sees the true
  lattice (``teacher_forcing_lattice: true``); the lattice head is trained on its own
  loss either way. The loader adds the flag to each batch (:class:`CDVAELoader`).
- Generation (``langevin_dynamics``): ``z ~ N(0, I)``; the atom count is the argmax of
  the count head, the lattice the head's prediction, and the initial types are drawn by
  ``sample_composition`` (round ``p_k N``, fill the remainder from the leftover
  probabilities, shuffle, keep ``N``); fractional coordinates start uniform; then for
  every level (largest first) 100 Langevin steps of size ``1e-4 (sigma/sigma_L)^2`` in
  Cartesian space with score ``decoder / sigma``, coordinates wrapped into the cell and
  types set to the argmax of the decoder's logits after every step.
- Reconstruction (``scripts/evaluate.py::reconstructon``) decodes the *sampled* latent
  ``z = mu + sigma eps`` of each test crystal (``use_mean=True`` decodes ``mu``).
- Property optimisation (``scripts/evaluate.py::optimization``): Adam (lr 1e-3, 5000
  steps) on ``z`` minimizing the mean predicted property, from the latents of test
  crystals or from ``N(0, I)``, decoding 10 snapshots along the way.

PFGM++ coordinate noise (``coord_D``; Xu et al., ICML 2023) and ODE sampling:

- Kernel. With a finite ``coord_D = D`` the Cartesian coordinate noise of a crystal with
  ``n`` atoms is a draw of the PFGM++ perturbation kernel in ``N = 3 n`` dimensions,

      p_r(x | y) ∝ (||x - y||^2 + r^2)^(-(N + D) / 2),   r = sigma sqrt(D),

  at CDVAE's levels ``sigma`` (10 -> 0.01, one level per crystal): a radius
  ``R = r sqrt(b / (1 - b))``, ``b ~ Beta(N/2, D/2)``, in a uniform direction
  (:func:`coordinate_noise`, :func:`genmodels.processes.pfgmpp.perturb`). The alignment
  ``r = sigma sqrt(D)`` is the paper's: as ``D -> inf`` the kernel tends to
  ``N(y, sigma^2 I)``, and ``D = inf`` is CDVAE's Gaussian draw exactly (same values for
  the same key). ``N`` is per crystal (its real atoms), so padding never counts.
- Target. Unchanged: the decoder output ``d`` regresses the minimum-image displacement
  ``(y - x) / sigma`` (CDVAE's ``coord_loss``, ``1/2 ||(y - x)/sigma - d||^2``, a
  ``1/sigma^2``-weighted denoising loss), whose minimizer is
  ``d = (E[y | x] - x) / sigma = (D_theta(x; sigma) - x) / sigma`` under whichever
  kernel made ``x``. That is exactly what the PFGM++ ODE needs, so no new head and no
  kernel-specific target: the denoiser-based field is valid for every ``D`` (the paper
  trains its networks as denoisers for all ``D`` for the same reason).
- Sampling. ``sampler="heun"`` / ``"euler"`` solve the aligned backward ODE
  ``dx/dsigma = (x - D_theta(x; sigma)) / sigma = -d`` on Cartesian coordinates over
  CDVAE's geometric levels (``steps`` of them, default the 50 training levels) and a
  final Euler step to 0 (:func:`ode_decode`, :func:`genmodels.samplers.ode.sigma_grid_sample`;
  Heun: ``2 L - 1`` decoder calls, 99 for 50 levels instead of Langevin's 5,000); the
  coordinates are wrapped into the cell after every step and the types set to the
  decoder's argmax as in CDVAE's Langevin loop. The start is CDVAE's uniform fractional
  coordinates: on the torus the wrapped kernel at ``sigma_1 = 10`` A (Gaussian or PFGM++,
  a scale mixture of Gaussians of scale ``>= ~0.7 sigma`` for ``D >= 64``) is uniform up
  to terms of order ``exp(-2 pi^2 sigma^2 / a^2)`` for cell lengths ``a`` of a few A,
  so the uniform draw is the PFGM++ prior at ``sigma_1``. The ODE itself does not depend
  on ``D`` (it enters through the trained field). ``sampler="langevin"`` keeps CDVAE's
  annealed Langevin dynamics with the kernel's score at the denoised estimate
  (:func:`kernel_score`, ``(N + D) d / (sigma (||d||^2 + D))``; ``d / sigma`` for
  ``D = inf``): exact for a point posterior, an approximation otherwise (the exact
  PFGM++ marginal score is not a function of the posterior mean alone), which is why
  the PFGM++ recipes sample with the ODE.
- Unchanged: atom types (their noise, loss and argmax update), lattice and count heads,
  the latent and the KL term, teacher forcing.

Flow matching on the coordinates (``coord_process="flow"``; Lipman et al. 2023 on the
flat torus of fractional coordinates, as FlowMM, Miller et al., ICML 2024):

- Path. With ``f_0`` a crystal's fractional coordinates and ``f_1 ~ U[0, 1)^3`` per atom
  (the uniform distribution on the torus, CDVAE's own sampling start), the geodesic
  ``f_t = wrap(f_0 + t delta)``, ``delta = wrap_centred(f_1 - f_0)`` (each component in
  ``[-1/2, 1/2)``: the shortest way round), one ``t ~ U(0, 1)`` per crystal; its velocity
  is ``delta`` in fractional and ``delta L`` in Cartesian coordinates of the decoding
  lattice ``L`` (the true one under teacher forcing, else the predicted one, where
  CDVAE adds its noise).
- Network and loss. The decoder reads ``t`` as one more latent entry (``[z, t]``; the
  score decoder needs no level: its output is scale-free) and its coordinate output
  ``d`` regresses the Cartesian velocity: ``1/2 ||d - delta L||^2`` per atom, averaged
  over each crystal's atoms, then over crystals, weighted by ``cost_coord`` in place of
  CDVAE's coordinate loss.
- Sampling. ``sampler="euler"`` or ``"heun"`` integrate ``dx/dt = d(x, t)`` on
  Cartesian coordinates from uniform fractional coordinates at ``t = 1`` to ``t = 0``
  over ``steps`` uniform steps (:func:`flow_decode`; Euler ``steps`` decoder calls, Heun
  ``2 steps - 1``), wrapped into the cell after every step; types as in the other
  samplers. There is no Langevin sampler for the flow.
- Unchanged: atom types (their noise levels are drawn independently of ``t``), lattice
  and count heads, the latent and the KL term, teacher forcing. Not done: FlowMM's
  mean-free (translation-invariant) velocities and its lattice flow; the lattice still
  comes from CDVAE's head.

Sampling is data parallel over ``jax.devices()`` when the batch splits evenly over
them (parameters replicated, per-crystal arrays sharded along the batch).

Departures (and why):

- Networks: the encoder/decoder are the simplified DimeNet++/GemNet-T of
  :mod:`genmodels.nets.periodic` (see there); the encoder works on the radius graph, not
  on CDVAE's precomputed CrystalNN graph.
- Optimizer: Adam with lr 1e-3 as in the reference, which also multiplies the rate by
  0.6 after 30 epochs without improvement of the validation loss (``ReduceLROnPlateau``,
  floor 1e-4) and clips every gradient *element* to [-0.5, 0.5]
  (``gradient_clip_algorithm: value``). The training loop has no validation pass and
  offers global-norm clipping only, so the recipes use a constant or cosine rate and
  global-norm clipping (each recipe says which).
- Generated atom counts are clipped to ``1..max_atoms`` (CDVAE's argmax may return 0, an
  empty crystal).
- Categorical draws are float32 (the project prefers float64 for categorical sampling,
  which would need JAX's x64 mode globally).
"""

from __future__ import annotations

import math
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
from tqdm.auto import tqdm

from genmodels.core.types import Array
from genmodels.datasets.crystals import CRYSTAL_DATASETS, CrystalDataset, load_crystals
from genmodels.domains.crystals import (
    CELL_OFFSETS,
    CrystalDomain,
    lattice_params_to_matrix,
    read_cif,
    wrap_frac,
    write_cif,
)
from genmodels.models.base import split_model
from genmodels.nets.periodic import PeriodicDecoder, PeriodicEncoder
from genmodels.processes.pfgmpp import perturb
from genmodels.samplers.langevin import annealed_langevin_sample
from genmodels.samplers.ode import sigma_grid_sample
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader
from genmodels.train.sharding import batch_sharded, data_mesh, replicated

__all__ = [
    "SAMPLERS",
    "CDVAE",
    "CDVAEConfig",
    "CDVAELoader",
    "CDVAEModel",
    "CDVAEStat",
    "coordinate_loss",
    "coordinate_noise",
    "geometric_sigmas",
    "kernel_score",
    "langevin_decode",
    "min_image_displacement",
    "flow_decode",
    "ode_decode",
    "sample_composition",
]

#: coordinate samplers; the first is CDVAE's (annealed Langevin)
SAMPLERS = ("langevin", "heun", "euler")
#: coordinate processes: CDVAE's denoising score (PFGM++ for a finite ``coord_D``) or flow
COORD_PROCESSES = ("score", "flow")

#: CDVAE's ``StandardScalerTorch`` adds this to the standard deviations
SCALER_EPS = 1e-5


@dataclass(frozen=True)
class CDVAEConfig:
    """A CDVAE recipe (reference values from ``conf/model/vae.yaml`` and ``conf/data``).

    Attributes:
      dataset: ``perov_5``, ``carbon_24`` or ``mp_20``.
      train_split: split trained on (and whose statistics standardize the lattice).
      eval_split: reference split of :meth:`CDVAE.evaluate` by default.
      train_limit, eval_limit: load only the first rows of the training / other splits
        (quick runs and tests; ``None``: all).
      max_atoms: the count head's largest class and the largest padding (perov_5 20,
        carbon_24 24, mp_20 20).
      num_types: atom classes (class ``k`` is atomic number ``k + 1``; ``MAX_ATOMIC_NUM``).
      latent_dim: latent size (256).
      hidden_dim, fc_num_layers: width and depth of the MLP heads (256, 1).
      enc_hidden, enc_blocks: encoder width and interaction blocks (DimeNet++ 128, 4).
      dec_hidden, dec_blocks: decoder width and blocks (GemNet-T 128, 3).
      num_rbf, cutoff, max_neighbors: radial basis size, graph radius (7 A) and
        neighbours per atom (20).
      sigma_begin, sigma_end, type_sigma_begin, type_sigma_end, num_noise_level:
        coordinate levels 10 -> 0.01 and type levels 5 -> 0.01, 50 each.
      cost_natom, cost_lattice, cost_coord, cost_type, cost_composition, cost_property,
        beta: loss weights (1, 10, 10, 1, 1, 1, KL 0.01).
      teacher_forcing_lattice: decode with the true lattice during teacher forcing.
      teacher_forcing_max_epoch: last epoch (0-based) with teacher forcing.
      predict_property: train the property head (``fc_property``) on the dataset's
        property (standardized with the training split's statistics).
      n_step_each, step_lr, min_sigma: Langevin steps per level (100), step size
        (1e-4) and smallest level run (0: all).
      coord_D: augmented dimensions ``D`` of the PFGM++ coordinate kernel (module
        docstring, "PFGM++ coordinate noise"); ``inf`` (default) is CDVAE's Gaussian
        noise exactly.
      coord_process: ``"score"`` (CDVAE's coordinate denoising, with ``coord_D``) or
        ``"flow"`` (flow matching on the torus, module docstring; ``coord_D`` must stay
        ``inf`` and the sampler be ``euler`` or ``heun``, ``steps`` uniform steps).
      sampler: default coordinate sampler: ``"langevin"`` (CDVAE's annealed Langevin),
        ``"heun"`` or ``"euler"`` (the PFGM++ / EDM backward ODE over the coordinate
        levels; ``steps`` then counts the levels of the grid, default
        ``num_noise_level``).
      sample_batch: crystals per jitted sampling batch.
      sample_use_ema: sample with the EMA parameters (CDVAE keeps no EMA: ``False``).
      lattice_mean, lattice_std: the 6 lattice statistics, if known; ``None`` computes
        them from the training split when the model is first built.
      property_mean, property_std: the same for the property.
    """

    dataset: str = "perov_5"
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


def geometric_sigmas(begin: float, end: float, num: int) -> np.ndarray:
    """``exp(linspace(log begin, log end, num))`` as float32, CDVAE's ``sigmas``.

    Returns:
      [num] decreasing noise levels (numpy, so they stay concrete under ``jit``).
    """
    return np.exp(np.linspace(np.log(begin), np.log(end), num)).astype(np.float32)


def min_image_displacement(frac_a: Array, frac_b: Array, lattice: Array) -> Array:
    """Per-atom shortest periodic displacement from atom ``b`` to atom ``a``.

    ``a - (b + n L)`` over the 27 cell offsets ``n`` in {-1, 0, 1}^3, the one of least
    length (CDVAE ``min_distance_sqr_pbc(a, b, ..., return_vector=True)``, which returns
    ``pos1 - (pos2 + offset)``). The coordinate target is this with ``a`` the true and
    ``b`` the noisy position.

    Args:
      frac_a, frac_b: [B, N, 3] fractional coordinates of the same atoms.
      lattice: [B, 6] lattice parameters.

    Returns:
      [B, N, 3] Cartesian displacements (Angstrom).
    """
    mat = lattice_params_to_matrix(lattice)  # [B, 3, 3]
    ca = jnp.einsum("bni,bij->bnj", frac_a, mat)
    cb = jnp.einsum("bni,bij->bnj", frac_b, mat)
    shifts = jnp.einsum("ki,bij->bkj", jnp.asarray(CELL_OFFSETS, mat.dtype), mat)  # [B, 27, 3]
    vec = ca[:, :, None, :] - cb[:, :, None, :] - shifts[:, None, :, :]  # [B, N, 27, 3]
    k = jnp.argmin(jnp.sum(vec * vec, axis=-1), axis=-1)  # [B, N]
    return jnp.take_along_axis(vec, k[..., None, None], axis=2)[:, :, 0, :]


def _graph_mean(values: Array, mask: Array) -> Array:
    """Mean over each crystal's atoms, then over crystals (``scatter(..., 'mean').mean()``)."""
    per = jnp.sum(values * mask, -1) / jnp.maximum(jnp.sum(mask, -1), 1.0)
    return jnp.mean(per)


def coordinate_loss(
    d: Array, frac: Array, noisy_frac: Array, lattice: Array, sigma: Array, mask: Array
) -> Array:
    """CDVAE ``coord_loss``: ``1/2 sigma^2 ||target - d / sigma||^2`` per atom.

    ``target = min_image_displacement(frac, noisy_frac, lattice) / sigma^2`` (true minus
    noisy position, the denoising direction); averaged over each crystal's atoms, then
    over crystals.

    Args:
      d: [B, N, 3] decoder coordinate output (Cartesian).
      frac, noisy_frac: [B, N, 3] true and noisy fractional coordinates.
      lattice: [B, 6] the true lattice (the reference measures the target in it).
      sigma: [B] coordinate noise level of each crystal.
      mask: [B, N] real atoms.

    Returns:
      Scalar loss.
    """
    s = sigma[:, None, None]
    target = min_image_displacement(frac, noisy_frac, lattice) / s**2
    per_atom = 0.5 * jnp.sum(jnp.square(target - d / s), -1) * sigma[:, None] ** 2  # [B, N]
    return _graph_mean(per_atom, mask)


def coordinate_noise(
    key: Array, shape: tuple[int, ...], sigma: Array, D: float, mask: Array
) -> Array:
    """Cartesian coordinate noise of one level per crystal: CDVAE's Gaussian or PFGM++'s.

    ``D = inf``: ``sigma * eps``, ``eps ~ N(0, I)`` drawn exactly as CDVAE draws it (the
    same values for the same key, padding included; the caller masks). Finite ``D``: a
    draw of the PFGM++ perturbation kernel (Xu et al. 2023) at ``r = sigma sqrt(D)``

        p_r(x | y) ∝ (||x - y||^2 + r^2)^(-(N + D) / 2),   N = 3 n,

    in the ``3 n`` coordinates of each crystal's ``n`` real atoms
    (:func:`genmodels.processes.pfgmpp.perturb`: ``sigma sqrt(D / (2 G)) eps`` with one
    ``G ~ Gamma(D/2)`` per crystal, i.e. radius ``R = r sqrt(b / (1 - b))``,
    ``b ~ Beta(N/2, D/2)``, uniform direction); padding is zero.

    Args:
      key: PRNG key.
      shape: ``(B, N, 3)``.
      sigma: [B] noise level of each crystal.
      D: augmented dimensions (python float; ``inf``: Gaussian).
      mask: [B, N] real atoms (used for finite ``D``).

    Returns:
      [B, N, 3] noise to add to Cartesian positions (Angstrom).
    """
    sigma = jnp.asarray(sigma, jnp.float32)
    if math.isinf(D):
        return jax.random.normal(key, shape) * sigma[:, None, None]
    _, noise = perturb(key, jnp.zeros(shape, jnp.float32), sigma, float(D), mask[..., None])
    return noise


def kernel_score(d: Array, sigma: Array, D: float, mask: Array) -> Array:
    """Score of the PFGM++ perturbation kernel at the decoder's denoising estimate.

    The kernel's score is ``grad_x log p_r(x | y) = (N + D) (y - x) / (||x - y||^2 +
    r^2)`` with ``r^2 = sigma^2 D``. The decoder predicts ``d = (E[y | x] - x) / sigma``
    (CDVAE's coordinate target); substituting ``y - x ~ sigma d`` gives

        s(x) = (N + D) d / (sigma (||d||^2 + D)),   N = 3 n (per crystal),

    exact when the posterior of ``y`` is a point, and ``d / sigma`` (CDVAE's Langevin
    score) for ``D = inf``, returned as exactly that expression.

    Args:
      d: [B, N, 3] decoder coordinate output.
      sigma: [B] noise levels.
      D: augmented dimensions (python float or ``inf``).
      mask: [B, N] real atoms.

    Returns:
      [B, N, 3] score on Cartesian coordinates.
    """
    s = sigma[:, None, None]
    if math.isinf(D):
        return d / s
    n_dim = 3.0 * jnp.sum(mask, -1)  # [B]
    sq = jnp.sum(jnp.square(d) * mask[..., None], axis=(1, 2))  # [B]
    factor = (n_dim + D) / (sq + D)  # [B]
    return factor[:, None, None] * d / s


def _cart_to_frac(cart: Array, mat: Array) -> Array:
    """``wrap(cart @ pinv(L))`` (CDVAE ``cart_to_frac_coords``: pseudo-inverse, ``% 1``)."""
    return wrap_frac(jnp.einsum("bni,bij->bnj", cart, jnp.linalg.pinv(mat)))


def sample_composition(key: Array, probs: Array, num_atoms: Array, max_atoms: int) -> Array:
    """Atom types that follow a predicted composition exactly where rounding allows.

    CDVAE ``sample_composition``: per crystal, ``c_k = round(p_k N)`` atoms of type ``k``;
    if that gives fewer than ``N`` atoms, the rest are drawn with replacement from the
    leftover ``max(p_k - c_k / N, 0)``; the list is shuffled and its first ``N`` kept
    (which also trims a rounding excess). Static shapes: a buffer of ``max_atoms +
    num_types`` slots always holds the list (``sum_k round(p_k N) <= N + K/2``).

    Args:
      key: PRNG key.
      probs: [B, K] composition probabilities.
      num_atoms: [B] atom counts in 1..max_atoms.
      max_atoms: padding size N.

    Returns:
      [B, max_atoms] int32 type classes, 0 on padding.
    """
    b, k = probs.shape
    slots = max_atoms + k
    pos = jnp.arange(slots)

    def one(key, p, n):
        kl, kp = jax.random.split(key)
        nf = n.astype(jnp.float32)
        counts = jnp.round(p * nf).astype(jnp.int32)  # [K], half to even as torch.round
        total = jnp.sum(counts)
        rounded = jnp.searchsorted(jnp.cumsum(counts), pos, side="right")  # [S]
        left = jnp.maximum(p - counts / nf, 0.0)
        logits = jnp.where(left > 0, jnp.log(jnp.where(left > 0, left, 1.0)), -jnp.inf)
        extra = jax.random.categorical(kl, logits, shape=(slots,))  # [S]
        seq = jnp.where(pos < total, rounded, extra)
        valid = pos < jnp.maximum(total, n)
        u = jnp.where(valid, jax.random.uniform(kp, (slots,)), 2.0)
        out = seq[jnp.argsort(u)][:max_atoms]
        return jnp.where(jnp.arange(max_atoms) < n, out, 0).astype(jnp.int32)

    return jax.vmap(one)(jax.random.split(key, b), probs, num_atoms.astype(jnp.int32))


def _node_mask(num_atoms: Array, n: int) -> Array:
    return (jnp.arange(n)[None, :] < num_atoms[:, None]).astype(jnp.float32)


def _decode_problem(decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types):
    """What both coordinate samplers share: the Cartesian state ``{"cart", "types"}``
    (one-hot types), its context, the periodic ``constrain`` and a decoder call.

    Returns:
      ``(init, ctx, mask [B, N], mat [B, 3, 3], constrain, call)`` with
      ``call(state, t=None) -> (d [B, N, 3], new_types [B, N, K])`` (``t`` [B], the flow
      decoder's time, is appended to the latent).
    """
    b, n = types0.shape
    mask = _node_mask(num_atoms, n)  # [B, N]
    mat = lattice_params_to_matrix(lattice)  # [B, 3, 3]
    ctx = {
        "z": z,
        "lattice": lattice,
        "node_mask": mask,
        "masks": {"cart": mask[..., None], "types": mask[..., None]},
    }

    def call(state, t=None):
        frac = _cart_to_frac(state["cart"], mat)
        zz = ctx["z"] if t is None else jnp.concatenate([ctx["z"], t[:, None]], -1)
        d, logits = decoder(zz, state["types"], frac, ctx["lattice"], ctx["node_mask"])
        new_types = (
            jax.nn.one_hot(jnp.argmax(logits, -1), num_types) if update_types else state["types"]
        )
        return d, new_types

    def constrain(state, ctx):
        frac = _cart_to_frac(state["cart"], mat)
        return {**state, "cart": jnp.einsum("bni,bij->bnj", frac, mat)}

    init = {
        "cart": jnp.einsum("bni,bij->bnj", frac0, mat),
        "types": jax.nn.one_hot(types0, num_types),
    }
    return init, ctx, mask, mat, constrain, call


def _decoded(state, mask, mat) -> tuple[Array, Array]:
    frac = _cart_to_frac(state["cart"], mat) * mask[..., None]
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
) -> tuple[Array, Array, dict]:
    """CDVAE's annealed Langevin decoding of a batch of latents (``langevin_dynamics``).

    The state is the Cartesian coordinates ``cart`` and one-hot ``types``; each step
    ``cart <- cart + step * s + sqrt(2 step) eps`` with the score ``s = d / sigma``
    (``d`` the decoder's coordinate output; for a finite ``coord_D`` the PFGM++ kernel
    score :func:`kernel_score`) and ``step = step_lr (sigma / sigma_L)^2``, then the
    coordinates are wrapped into the cell and (``update_types``) the types set to the
    argmax of the decoder's logits (an assigned leaf of
    :func:`~genmodels.samplers.langevin.annealed_langevin_sample`).

    Args:
      decoder: ``decoder(z, types [B, N, K], frac, lattice, node_mask) -> (d [B, N, 3],
        logits [B, N, K])``.
      z: [B, D] latents.
      num_atoms: [B] atom counts.
      lattice: [B, 6] lattice parameters (fixed during decoding).
      types0: [B, N] initial type classes.
      frac0: [B, N, 3] initial fractional coordinates.
      key: PRNG key.
      sigmas: [L] decreasing coordinate noise levels (concrete).
      num_types: K.
      n_step_each, step_lr, min_sigma: Langevin settings (CDVAE 100, 1e-4, 0).
      update_types: set the types to the decoder's argmax after each step (``False``:
        keep ``types0``, CDVAE's ``gt_atom_types``).
      coord_D: augmented dimensions of the coordinate kernel the decoder was trained
        with (``inf``: CDVAE's Gaussian noise and score ``d / sigma``).

    Returns:
      ``(frac [B, N, 3] in [0, 1), types [B, N] int32, info)``, 0 on padding; ``info``
      as returned by the sampler (``nfe``, ``sigmas``).
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
        init=init,
        constrain=constrain,
        assign=("types",),
    )
    frac, types = _decoded(state, mask, mat)
    return frac, types, info


def ode_decode(
    decoder,
    z: Array,
    num_atoms: Array,
    lattice: Array,
    types0: Array,
    frac0: Array,
    *,
    sigmas: np.ndarray,
    num_types: int,
    method: str = "heun",
    update_types: bool = True,
) -> tuple[Array, Array, dict]:
    """Decode a batch of latents with the PFGM++ / EDM backward ODE on the coordinates.

    ``dx/dsigma = (x - D(x; sigma)) / sigma = -d(x)`` in Cartesian space, where
    ``d = (D - x) / sigma`` is the decoder's coordinate output (CDVAE's target, the
    denoising direction for any ``D``: Xu et al. 2023's aligned ODE), from ``frac0``
    at ``sigmas[0]`` down the grid ``sigmas`` followed by 0
    (:func:`~genmodels.samplers.ode.sigma_grid_sample`; Heun steps and a final Euler
    step to 0, ``2 L - 1`` decoder calls for ``L`` levels, or ``L`` Euler steps). The
    coordinates are wrapped into the cell after every step and (``update_types``) the
    types set to the argmax of the decoder's logits, as in :func:`langevin_decode`.
    Deterministic given ``frac0`` and ``types0``.

    Args:
      decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types: as for
        :func:`langevin_decode`.
      sigmas: [L] decreasing positive noise levels (concrete).
      method: ``"heun"`` or ``"euler"``.

    Returns:
      ``(frac [B, N, 3] in [0, 1), types [B, N] int32, info)``, 0 on padding; ``info``
      from the sampler (``nfe``, ``sigmas`` with the final 0).
    """
    init, ctx, mask, mat, constrain, call = _decode_problem(
        decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types
    )

    def slope_fn(state, sigma, ctx):
        d, new_types = call(state)
        return {"cart": -d, "types": new_types}

    grid = np.concatenate([np.asarray(sigmas, np.float32), np.zeros((1,), np.float32)])
    state, info = sigma_grid_sample(
        slope_fn, grid, ctx, init=init, method=method, constrain=constrain, assign=("types",)
    )
    frac, types = _decoded(state, mask, mat)
    return frac, types, info


def flow_displacement(frac0: Array, frac1: Array) -> Array:
    """The shortest displacement on the unit torus from ``frac0`` to ``frac1``:
    ``frac1 - frac0`` wrapped into ``[-1/2, 1/2)`` per component (the flow's ``delta``).

    Args:
      frac0, frac1: [..., 3] fractional coordinates.

    Returns:
      [..., 3] fractional displacement.
    """
    return wrap_frac(frac1 - frac0 + 0.5) - 0.5


def flow_decode(
    decoder,
    z: Array,
    num_atoms: Array,
    lattice: Array,
    types0: Array,
    frac0: Array,
    *,
    steps: int,
    num_types: int,
    method: str = "euler",
    update_types: bool = True,
) -> tuple[Array, Array, dict]:
    """Decode a batch of latents with the coordinate flow (``coord_process="flow"``).

    Integrates ``dx/dt = d(x, t)`` (the decoder's coordinate output read as the Cartesian
    velocity, ``t`` appended to the latent) from ``frac0`` at ``t = 1`` to ``t = 0`` on
    ``steps`` uniform steps (:func:`~genmodels.samplers.ode.sigma_grid_sample` with the
    times as its grid: Euler ``steps`` decoder calls, Heun ``2 steps - 1`` with a final
    Euler step), wrapping into the cell after every step and (``update_types``) setting
    the types to the decoder's argmax, as :func:`ode_decode` does.

    Args:
      decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types: as for
        :func:`langevin_decode` (``z`` without the time entry).
      steps: uniform time steps.
      method: ``"euler"`` or ``"heun"``.

    Returns:
      ``(frac [B, N, 3] in [0, 1), types [B, N] int32, info)``, 0 on padding.
    """
    init, ctx, mask, mat, constrain, call = _decode_problem(
        decoder, z, num_atoms, lattice, types0, frac0, num_types, update_types
    )

    def slope_fn(state, t, ctx):
        d, new_types = call(state, t)
        return {"cart": d, "types": new_types}

    grid = np.linspace(1.0, 0.0, int(steps) + 1, dtype=np.float32)
    state, info = sigma_grid_sample(
        slope_fn, grid, ctx, init=init, method=method, constrain=constrain, assign=("types",)
    )
    frac, types = _decoded(state, mask, mat)
    return frac, types, info


# ----------------------------------------------------------------------------- the model


class CDVAEStat(nnx.Variable):
    """Fixed data statistics (lattice / property scalers): not trained, checkpointed."""


class _MLP(nnx.Module):
    """CDVAE ``build_mlp``: Linear-ReLU, (Linear-ReLU) x (layers - 1), Linear."""

    def __init__(self, din: int, hidden: int, layers: int, dout: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.List(
            [nnx.Linear(din, hidden, rngs=rngs)]
            + [nnx.Linear(hidden, hidden, rngs=rngs) for _ in range(layers - 1)]
        )
        self.out = nnx.Linear(hidden, dout, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        for lin in self.hidden:
            x = jax.nn.relu(lin(x))
        return self.out(x)


class CDVAEModel(nnx.Module):
    """Encoder, latent heads and decoder of CDVAE (see the module docstring).

    Args:
      config: the recipe config (sizes).
      stats: ``lattice_mean``, ``lattice_std`` ([6]) and ``property_mean``,
        ``property_std`` (scalars).
      rngs: parameter RNGs.
    """

    def __init__(self, config: CDVAEConfig, stats: dict[str, Any], *, rngs: nnx.Rngs):
        c = config
        d = c.latent_dim
        self.max_atoms = c.max_atoms
        self.encoder = PeriodicEncoder(
            c.num_types,
            hidden=c.enc_hidden,
            out_dim=d,
            num_blocks=c.enc_blocks,
            num_rbf=c.num_rbf,
            cutoff=c.cutoff,
            max_neighbors=c.max_neighbors,
            rngs=rngs,
        )
        self.fc_mu = nnx.Linear(d, d, rngs=rngs)
        self.fc_var = nnx.Linear(d, d, rngs=rngs)
        self.fc_num_atoms = _MLP(d, c.hidden_dim, c.fc_num_layers, c.max_atoms + 1, rngs=rngs)
        self.fc_lattice = _MLP(d, c.hidden_dim, c.fc_num_layers, 6, rngs=rngs)
        self.fc_composition = _MLP(d, c.hidden_dim, c.fc_num_layers, c.num_types, rngs=rngs)
        self.fc_property = (
            _MLP(d, c.hidden_dim, c.fc_num_layers, 1, rngs=rngs) if c.predict_property else None
        )
        self.decoder = PeriodicDecoder(
            c.num_types,
            d + (1 if c.coord_process == "flow" else 0),  # the flow's time joins the latent
            hidden=c.dec_hidden,
            num_blocks=c.dec_blocks,
            num_rbf=c.num_rbf,
            cutoff=c.cutoff,
            max_neighbors=c.max_neighbors,
            rngs=rngs,
        )
        f32 = jnp.float32
        self.lattice_mean = CDVAEStat(jnp.asarray(stats["lattice_mean"], f32).reshape(6))
        self.lattice_std = CDVAEStat(jnp.asarray(stats["lattice_std"], f32).reshape(6))
        self.property_mean = CDVAEStat(jnp.asarray(stats["property_mean"], f32).reshape(()))
        self.property_std = CDVAEStat(jnp.asarray(stats["property_std"], f32).reshape(()))

    def encode(self, types: Array, frac: Array, lattice: Array, node_mask: Array):
        """``(mu, logvar)``, each [B, latent_dim] (CDVAE ``encode`` before sampling)."""
        hidden = self.encoder(types, frac, lattice, node_mask)
        return self.fc_mu(hidden), self.fc_var(hidden)

    def scale_lattice(self, lattice: Array, num_atoms: Array) -> Array:
        """Standardized ``[lengths / N^(1/3), angles]`` [B, 6] (the lattice target)."""
        n13 = num_atoms.astype(jnp.float32)[:, None] ** (1.0 / 3.0)
        x = jnp.concatenate([lattice[:, :3] / n13, lattice[:, 3:]], -1)
        return (x - self.lattice_mean[...]) / self.lattice_std[...]

    def unscale_lattice(self, scaled: Array, num_atoms: Array) -> Array:
        """Lattice parameters [B, 6] from standardized head outputs (``predict_lattice``)."""
        x = scaled * self.lattice_std[...] + self.lattice_mean[...]
        n13 = num_atoms.astype(jnp.float32)[:, None] ** (1.0 / 3.0)
        return jnp.concatenate([x[:, :3] * n13, x[:, 3:]], -1)

    def decode_stats(self, z: Array, num_atoms: Array | None = None):
        """Atom count, lattice and composition from ``z`` (CDVAE ``decode_stats``).

        Args:
          z: [B, latent_dim].
          num_atoms: [B] counts to scale the lattice with (ground truth); ``None`` uses
            the count head's argmax, clipped to 1..max_atoms.

        Returns:
          ``(num_atom_logits [B, max_atoms + 1], num_atoms [B] int32, scaled_lattice
          [B, 6], lattice [B, 6], composition_logits [B, K])``.
        """
        logits = self.fc_num_atoms(z)
        if num_atoms is None:
            num_atoms = jnp.clip(jnp.argmax(logits, -1), 1, self.max_atoms)
        num_atoms = num_atoms.astype(jnp.int32)
        scaled = self.fc_lattice(z)
        return (
            logits,
            num_atoms,
            scaled,
            self.unscale_lattice(scaled, num_atoms),
            self.fc_composition(z),
        )

    def predict_property(self, z: Array) -> Array:
        """[B] property in data units (the head's standardized output, unscaled)."""
        if self.fc_property is None:
            raise ValueError("this CDVAE model has no property head (predict_property=False)")
        return self.fc_property(z)[:, 0] * self.property_std[...] + self.property_mean[...]


# ----------------------------------------------------------------------------- loader


@dataclass
class CDVAELoader:
    """An :class:`ArrayLoader` whose batches also carry CDVAE's teacher-forcing flag.

    ``teacher_forcing`` [B] is 1 while ``step < teacher_forcing_steps`` (the loss cannot
    see the step; the flag travels with the batch, one value per example so it shards
    like the data).
    """

    inner: ArrayLoader
    teacher_forcing_steps: int

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    @property
    def steps_per_epoch(self) -> int:
        return self.inner.steps_per_epoch

    def batch(self, step: int) -> dict[str, np.ndarray]:
        out = self.inner.batch(step)
        on = np.float32(step < self.teacher_forcing_steps)
        out["teacher_forcing"] = np.full((self.batch_size,), on, np.float32)
        return out


# ----------------------------------------------------------------------------- the method


def _ce(logits: Array, labels: Array) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


class CDVAE:
    """CDVAE on one crystal benchmark (see the module docstring)."""

    samplers = SAMPLERS
    sample_suffix = ".cif"

    def __init__(self, config: CDVAEConfig):
        if config.dataset not in CRYSTAL_DATASETS:
            raise ValueError(
                f"unknown crystal dataset {config.dataset!r}; "
                f"choose one of {', '.join(CRYSTAL_DATASETS)}"
            )
        if not config.coord_D > 0:
            raise ValueError(f"coord_D must be positive (or inf: Gaussian), got {config.coord_D}")
        if config.sampler not in SAMPLERS:
            raise ValueError(
                f"unknown CDVAE sampler {config.sampler!r}; choose one of {', '.join(SAMPLERS)}"
            )
        if config.coord_process not in COORD_PROCESSES:
            raise ValueError(
                f"unknown coord_process {config.coord_process!r}; choose one of "
                f"{', '.join(COORD_PROCESSES)}"
            )
        if config.coord_process == "flow":
            if not math.isinf(config.coord_D):
                raise ValueError("coord_D (the PFGM++ kernel) applies to coord_process='score'")
            if config.sampler == "langevin":
                raise ValueError("the flow decoder is sampled by 'euler' or 'heun', not 'langevin'")
        self.config = config
        self.domain = CrystalDomain(config.max_atoms, config.num_types, one_hot_types=False)
        self.sigmas = geometric_sigmas(config.sigma_begin, config.sigma_end, config.num_noise_level)
        self.type_sigmas = geometric_sigmas(
            config.type_sigma_begin, config.type_sigma_end, config.num_noise_level
        )

    # ------------------------------------------------------------------ data
    def dataset(self, split: str) -> CrystalDataset:
        """One split, parsed and cached (``train_limit`` / ``eval_limit`` applied)."""
        cache = self.__dict__.setdefault("_datasets", {})
        if split not in cache:
            c = self.config
            limit = c.train_limit if split == c.train_split else c.eval_limit
            cache[split] = load_crystals(c.dataset, split, limit=limit)
        return cache[split]

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """Padded host arrays of a split: ``frac`` [M, N, 3], ``types`` [M, N] int32,
        ``lattice`` [M, 6], ``num_atoms`` [M] int32 and ``property`` [M] (raw).

        ``N`` is the split's largest atom count (at most ``max_atoms``): the networks cost
        grows with ``N^2``, so perov_5 (always 5 atoms) is not padded to 20.
        """
        cache = self.__dict__.setdefault("_arrays", {})
        if split not in cache:
            ds = self.dataset(split)
            state, ctx = self.domain.encode_arrays(ds.arrays)
            # pad to the split's largest crystal, not max_atoms (perov_5: 5, not 20)
            n = max(int(np.max(ctx["num_atoms"])), 1)
            cache[split] = {
                "frac": np.asarray(state["frac"][:, :n], np.float32),
                "types": np.asarray(state["types"][:, :n], np.int32),
                "lattice": np.asarray(state["lattice"], np.float32),
                "num_atoms": np.asarray(ctx["num_atoms"], np.int32),
                "property": np.asarray(ds.properties, np.float32),
            }
        return cache[split]

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
        a = self.arrays(c.train_split)
        lat = a["lattice"].astype(np.float64)
        scaled = np.concatenate([lat[:, :3] / a["num_atoms"][:, None] ** (1 / 3), lat[:, 3:]], 1)
        prop = a["property"].astype(np.float64)
        fitted = {
            "lattice_mean": scaled.mean(0).astype(np.float32),
            "lattice_std": (scaled.std(0) + SCALER_EPS).astype(np.float32),
            "property_mean": np.float32(np.nan_to_num(np.nanmean(prop)) if prop.size else 0.0),
            "property_std": np.float32(
                (np.nan_to_num(np.nanstd(prop)) if prop.size else 0.0) + SCALER_EPS
            ),
        }
        return {**fitted, **out}

    def loader(self) -> CDVAELoader:
        """Shuffled batches of the training split plus the teacher-forcing flag."""
        c = self.config
        a = self.arrays(c.train_split)
        arrays = {k: a[k] for k in ("frac", "types", "lattice", "num_atoms")}
        if c.predict_property:
            s = self.stats
            arrays["property"] = ((a["property"] - s["property_mean"]) / s["property_std"]).astype(
                np.float32
            )
        inner = ArrayLoader(arrays, batch_size=c.train.batch_size, seed=c.train.seed)
        tf_steps = (c.teacher_forcing_max_epoch + 1) * inner.steps_per_epoch
        return CDVAELoader(inner, tf_steps if c.teacher_forcing_lattice else 0)

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> CDVAEModel:
        """A fresh model; its scaler statistics come from :attr:`stats`.

        Under abstract evaluation (``nnx.eval_shape``, used to load a checkpoint, whose
        statistics replace these) no data is read: placeholders are used.
        """
        if isinstance(key, jax.core.Tracer):
            stats = {
                "lattice_mean": np.zeros(6),
                "lattice_std": np.ones(6),
                "property_mean": 0.0,
                "property_std": 1.0,
            }
        else:
            stats = self.stats
        return CDVAEModel(self.config, stats, rngs=nnx.Rngs(key))

    def loss_fn(self, model: CDVAEModel, batch: dict, key: Array):
        """CDVAE's training objective (``forward`` + ``compute_stats``, train prefix).

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
        mask = _node_mask(num_atoms, n)  # [B, N]
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

        flow = c.coord_process == "flow"
        level = jax.random.randint(k_lvl, (b,), 0, self.sigmas.shape[0])
        sigma = jnp.asarray(self.sigmas)[level]  # [B]
        tlevel = jax.random.randint(k_tlvl, (b,), 0, self.type_sigmas.shape[0])
        tsigma = jnp.asarray(self.type_sigmas)[tlevel]  # [B]

        # noisy types: multinomial over one_hot + sigma_type * composition (unnormalized)
        comp_probs = jax.nn.softmax(jax.lax.stop_gradient(comp_logits), -1)  # [B, K]
        type_probs = (
            jax.nn.one_hot(types, c.num_types) + comp_probs[:, None, :] * tsigma[:, None, None]
        )
        rand_types = jax.random.categorical(k_type, jnp.log(type_probs), axis=-1)
        rand_types = (rand_types * mask).astype(jnp.int32)  # [B, N]

        mat = lattice_params_to_matrix(used)
        if flow:
            # the torus geodesic from the crystal (t = 0) to uniform coordinates (t = 1)
            t = jax.random.uniform(k_lvl, (b,))  # [B]
            delta = flow_displacement(frac, jax.random.uniform(k_noise, frac.shape))
            noisy_frac = wrap_frac(frac + t[:, None, None] * delta) * mask[..., None]
            velocity = jnp.einsum("bni,bij->bnj", delta, mat)  # [B, N, 3] Cartesian
            d, type_logits = model.decoder(
                jnp.concatenate([z, t[:, None]], -1), rand_types, noisy_frac, used, mask
            )
        else:
            # noisy coordinates: Cartesian noise (Gaussian, or the PFGM++ kernel for a
            # finite coord_D) in the decoding lattice, back to [0, 1)
            cart = jnp.einsum("bni,bij->bnj", frac, mat)
            cart = cart + coordinate_noise(k_noise, frac.shape, sigma, c.coord_D, mask)
            noisy_frac = _cart_to_frac(cart, mat) * mask[..., None]
            d, type_logits = model.decoder(z, rand_types, noisy_frac, used, mask)

        natom_loss = jnp.mean(_ce(natom_logits, num_atoms))
        lattice_loss = jnp.mean(jnp.square(scaled_pred - model.scale_lattice(lattice, num_atoms)))
        comp_ce = _ce(jnp.broadcast_to(comp_logits[:, None, :], (b, n, c.num_types)), types)
        composition_loss = _graph_mean(comp_ce, mask)
        if flow:
            coord_loss = _graph_mean(0.5 * jnp.sum(jnp.square(d - velocity), -1), mask)
        else:
            coord_loss = coordinate_loss(d, frac, noisy_frac, lattice, sigma, mask)
        type_loss = _graph_mean(_ce(type_logits, types) / tsigma[:, None], mask)
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
            "natom_loss": natom_loss,
            "lattice_loss": lattice_loss,
            "coord_loss": coord_loss,
            "type_loss": type_loss,
            "kld_loss": kld_loss,
            "composition_loss": composition_loss,
            "teacher_forcing": jnp.mean(tf.astype(jnp.float32)),
        }
        if c.predict_property and model.fc_property is not None:
            y = batch["property"].astype(jnp.float32)
            ok = jnp.isfinite(y)
            err = jnp.where(ok, model.fc_property(z)[:, 0] - jnp.where(ok, y, 0.0), 0.0)
            property_loss = jnp.sum(err**2) / jnp.maximum(jnp.sum(ok), 1)
            loss = loss + c.cost_property * property_loss
            metrics["property_loss"] = property_loss
        return loss, metrics

    # -------------------------------------------------------------- decoding
    def _runner(self, model: CDVAEModel, kind: str, batch: int, sampler: str, steps: int, **ld):
        """A ``(params, rest, key, *inputs) -> arrays`` decoding function for one setting.

        Two jitted stages: the latent and the heads' statistics (atom counts, lattice,
        composition) first; then coordinate decoding (``sampler``: annealed Langevin with
        ``steps`` steps per level, or the backward ODE on ``steps`` levels), padded only
        to the largest atom count of the batch (a host read between the stages; one
        compilation per padding size). A perov_5 batch decodes 5-atom crystals, not
        ``max_atoms``-atom buffers.

        When the batch splits evenly over several devices (GPUs, or CPU devices simulated
        with ``--xla_force_host_platform_device_count``) both stages run data parallel:
        parameters replicated, every per-crystal array sharded along the batch. Sharding
        does not change the result beyond float32 rounding (each crystal's computation
        and random stream are the same).
        """
        cache = self.__dict__.setdefault("_fn_cache", {})
        graphdef, _, _ = split_model(model)
        ndev = jax.device_count()
        key_ = (kind, batch, sampler, steps, tuple(sorted(ld.items())), graphdef, ndev)
        if key_ in cache:
            return cache[key_]
        c = self.config
        mesh = data_mesh() if ndev > 1 and batch % ndev == 0 else None

        def shard(st: dict) -> dict:
            """Constrain every per-crystal leaf to the batch sharding (not the key)."""
            if mesh is None:
                return st
            sh = batch_sharded(mesh)
            return {
                k: v if k == "key" else jax.lax.with_sharding_constraint(v, sh)
                for k, v in st.items()
            }

        def heads(net, z, key, num_atoms=None, gt_types=None):
            _, counts, _, lattice, comp_logits = net.decode_stats(z, num_atoms)
            out = {"z": z, "key": key, "num_atoms": counts, "lattice": lattice}
            out["probs"] = jax.nn.softmax(comp_logits, -1)
            if gt_types is not None:
                out["gt_types"] = gt_types
            return shard(out)

        def decode(net, z, counts, lattice, types0, frac0, key, update_types):
            if sampler == "langevin":
                return langevin_decode(
                    net.decoder,
                    z,
                    counts,
                    lattice,
                    types0,
                    frac0,
                    key,
                    sigmas=self.sigmas,
                    num_types=c.num_types,
                    n_step_each=steps,
                    step_lr=ld["step_lr"],
                    min_sigma=ld["min_sigma"],
                    update_types=update_types,
                    coord_D=c.coord_D,
                )
            if c.coord_process == "flow":
                return flow_decode(
                    net.decoder,
                    z,
                    counts,
                    lattice,
                    types0,
                    frac0,
                    steps=steps,
                    num_types=c.num_types,
                    method=sampler,
                    update_types=update_types,
                )
            # the ODE's levels: CDVAE's geometric ones, ``steps`` of them (then 0)
            sigmas = geometric_sigmas(c.sigma_begin, c.sigma_end, steps)
            return ode_decode(
                net.decoder,
                z,
                counts,
                lattice,
                types0,
                frac0,
                sigmas=sigmas,
                num_types=c.num_types,
                method=sampler,
                update_types=update_types,
            )

        decoders: dict[int, Any] = {}

        def decoder_for(n: int):
            if n not in decoders:

                @jax.jit
                def dec(params, rest, st):
                    net = nnx.merge(graphdef, params, rest)
                    st = shard(st)
                    z, counts, lattice = st["z"], st["num_atoms"], st["lattice"]
                    k_comp, k_frac, k_ld = jax.random.split(st["key"], 3)
                    gt = st.get("gt_types")
                    if gt is None:
                        types0 = sample_composition(k_comp, st["probs"], counts, n)
                    else:
                        types0 = jnp.pad(gt, ((0, 0), (0, max(n - gt.shape[1], 0))))[:, :n]
                        types0 = types0 * _node_mask(counts, n).astype(types0.dtype)
                    # uniform on the torus: CDVAE's start, and the wrapped Gaussian or
                    # PFGM++ kernel at sigma_1 = 10 A up to exponentially small terms
                    frac0 = jax.random.uniform(k_frac, (z.shape[0], n, 3))
                    init = shard({"types0": types0, "frac0": frac0})
                    frac, types, _ = decode(
                        net, z, counts, lattice, init["types0"], init["frac0"], k_ld, gt is None
                    )
                    out = {"frac": frac, "types": types, "lattice": lattice, "num_atoms": counts}
                    return shard(out)

                decoders[n] = dec
            return decoders[n]

        if kind == "generate":

            @jax.jit
            def first(params, rest, key):
                net = nnx.merge(graphdef, params, rest)
                kz, kd = jax.random.split(key)
                return heads(net, jax.random.normal(kz, (batch, c.latent_dim)), kd)

        elif kind == "latent":

            @jax.jit
            def first(params, rest, key, z):
                return heads(nnx.merge(graphdef, params, rest), shard({"z": z})["z"], key)

        elif kind == "reconstruct":
            use_mean, force_n, force_t = ld["use_mean"], ld["force_num_atoms"], ld["force_types"]

            @jax.jit
            def first(params, rest, key, frac, types, lattice, num_atoms):
                net = nnx.merge(graphdef, params, rest)
                inp = shard({"frac": frac, "types": types, "lattice": lattice, "n": num_atoms})
                frac, types, lattice, num_atoms = (
                    inp["frac"],
                    inp["types"],
                    inp["lattice"],
                    inp["n"],
                )
                ke, kd = jax.random.split(key)
                mask = _node_mask(num_atoms, types.shape[1])
                mu, logvar = net.encode(types, frac, lattice, mask)
                z = mu if use_mean else mu + jnp.exp(0.5 * logvar) * jax.random.normal(ke, mu.shape)
                return heads(net, z, kd, num_atoms if force_n else None, types if force_t else None)

        else:  # pragma: no cover - internal
            raise ValueError(kind)

        def run(params, rest, *args):
            if mesh is not None:
                # parameters (e.g. restored onto one device) replicated over the mesh
                params, rest = jax.device_put((params, rest), replicated(mesh))
            st = first(params, rest, *args)
            n = int(jax.device_get(jnp.max(st["num_atoms"])))  # one host read per batch
            if "gt_types" in st:
                n = max(n, int(st["gt_types"].shape[1]))
            return decoder_for(max(n, 1))(params, rest, st)

        cache[key_] = run
        return run

    def _decode_options(self, sampler, steps, options) -> tuple[str, int, dict]:
        """``(sampler, steps, sampler options)`` with the config's defaults filled in.

        ``steps``: Langevin steps per level (default ``n_step_each``) or the ODE's number
        of levels (default ``num_noise_level``, CDVAE's levels exactly).
        """
        c = self.config
        sampler = sampler or c.sampler
        if sampler not in SAMPLERS:
            raise ValueError(
                f"unknown CDVAE sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}"
            )
        opts = dict(options)
        if sampler == "langevin" and c.coord_process == "flow":
            raise ValueError("the flow decoder is sampled by 'euler' or 'heun', not 'langevin'")
        if sampler == "langevin":
            ld = {
                "step_lr": float(opts.pop("step_lr", c.step_lr)),
                "min_sigma": float(opts.pop("min_sigma", c.min_sigma)),
            }
            accepted, default = "step_lr, min_sigma", c.n_step_each
        else:
            ld, accepted, default = {}, "no options", c.num_noise_level
        if opts:
            raise ValueError(
                f"CDVAE {sampler} sampling got unknown options {sorted(opts)}; it accepts "
                f"{accepted}"
            )
        steps = int(steps or default)
        if sampler != "langevin" and steps < 1:
            raise ValueError(f"the ODE needs at least one noise level, got steps={steps}")
        return sampler, steps, ld

    def decode_arrays(self, out: dict) -> list[Structure | None]:
        """Structures from decoded arrays (``frac``, ``types``, ``lattice``, ``num_atoms``,
        as :meth:`sample_arrays` returns); ``None`` where the lattice admits no cell."""
        out = jax.device_get(out)
        state = {"frac": out["frac"], "types": out["types"], "lattice": out["lattice"]}
        return self.domain.decode(state, {"num_atoms": out["num_atoms"]})

    @staticmethod
    def _concat(parts: list[dict], num: int) -> dict[str, np.ndarray]:
        """Concatenate host batches padded to different atom counts; keep ``num`` rows."""
        n = max(p["frac"].shape[1] for p in parts)
        out: dict[str, list] = {k: [] for k in ("frac", "types", "lattice", "num_atoms")}
        for p in parts:
            pad = n - p["frac"].shape[1]
            out["frac"].append(np.pad(np.asarray(p["frac"]), ((0, 0), (0, pad), (0, 0))))
            out["types"].append(np.pad(np.asarray(p["types"]), ((0, 0), (0, pad))))
            out["lattice"].append(np.asarray(p["lattice"]))
            out["num_atoms"].append(np.asarray(p["num_atoms"]))
        return {k: np.concatenate(v)[:num] for k, v in out.items()}

    def sample_arrays(
        self,
        model: CDVAEModel,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        **options: Any,
    ) -> dict[str, np.ndarray]:
        """Generate ``num`` crystals from ``z ~ N(0, I)`` (CDVAE ``generation``) as arrays.

        Needs no pymatgen: the arrays can be made on an accelerator host and turned into
        structures elsewhere with :meth:`decode_arrays`.

        Args:
          model: a trained model.
          key: PRNG key; batch ``r`` uses ``fold_in(key, r)``.
          num: number of crystals.
          sampler: ``"langevin"`` (CDVAE), ``"heun"`` or ``"euler"`` (the PFGM++ / EDM
            backward ODE); default the config's ``sampler``.
          steps: Langevin steps per noise level (default ``n_step_each``, 100), or the
            number of ODE levels (default ``num_noise_level``, 50).
          batch_size: crystals per jitted batch (default ``sample_batch``); it runs
            sharded over all devices when it is a multiple of their number.
          progress: tqdm bar over batches.
          **options: ``step_lr``, ``min_sigma`` overrides (Langevin).

        Returns:
          ``frac`` [num, N, 3], ``types`` [num, N] (class ``k`` is atomic number ``k + 1``),
          ``lattice`` [num, 6] and ``num_atoms`` [num], ``N`` the largest count generated.
        """
        sampler, steps, ld = self._decode_options(sampler, steps, options)
        batch = batch_size or self.config.sample_batch
        run = self._runner(model, "generate", batch, sampler, steps, **ld)
        _, params, rest = split_model(model)
        parts = []
        rounds = math.ceil(num / batch)
        for r in tqdm(range(rounds), desc="sample", disable=not progress or rounds == 1):
            parts.append(jax.device_get(run(params, rest, jax.random.fold_in(key, r))))
        return self._concat(parts, num)

    def sample(
        self, model: CDVAEModel, key: Array, num: int, **kwargs: Any
    ) -> list[Structure | None]:
        """Generate ``num`` crystals (:meth:`sample_arrays`, same arguments) as pymatgen
        structures, ``None`` where the lattice admits no cell."""
        return self.decode_arrays(self.sample_arrays(model, key, num, **kwargs))

    def decode_latents(
        self,
        model: CDVAEModel,
        key: Array,
        z: Array,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        **options: Any,
    ) -> list[Structure | None]:
        """Decode given latents [B, latent_dim] (one jitted batch; ``sampler``, ``steps``
        and ``options`` as for :meth:`sample_arrays`)."""
        sampler, steps, ld = self._decode_options(sampler, steps, options)
        z = jnp.asarray(z, jnp.float32)
        run = self._runner(model, "latent", int(z.shape[0]), sampler, steps, **ld)
        _, params, rest = split_model(model)
        return self.decode_arrays(run(params, rest, key, z))

    def reconstruct_arrays(
        self,
        model: CDVAEModel,
        key: Array,
        split: str = "test",
        *,
        num: int | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        use_mean: bool = False,
        force_num_atoms: bool = False,
        force_atom_types: bool = False,
        progress: bool = True,
        **options: Any,
    ) -> dict[str, np.ndarray]:
        """Encode the first ``num`` crystals of ``split`` and decode them again (arrays).

        CDVAE ``reconstructon``: the latent is the reparameterized sample ``mu + sigma
        eps`` (``use_mean=True``: ``mu``); atom count, lattice and types come from the
        heads unless forced to the ground truth. Batch ``r`` uses ``fold_in(key, r)``;
        ``sampler``, ``steps`` and ``options`` as for :meth:`sample_arrays`.

        Returns:
          The arrays of :meth:`sample_arrays`, one row per input crystal in split order.
        """
        sampler, steps, ld = self._decode_options(sampler, steps, options)
        a = self.arrays(split)
        total = a["num_atoms"].shape[0] if num is None else min(num, a["num_atoms"].shape[0])
        batch = min(batch_size or self.config.sample_batch, total)
        run = self._runner(
            model,
            "reconstruct",
            batch,
            sampler,
            steps,
            use_mean=bool(use_mean),
            force_num_atoms=bool(force_num_atoms),
            force_types=bool(force_atom_types),
            **ld,
        )
        _, params, rest = split_model(model)
        parts = []
        rounds = math.ceil(total / batch)
        for r in tqdm(range(rounds), desc="reconstruct", disable=not progress or rounds == 1):
            idx = np.arange(r * batch, (r + 1) * batch) % total  # pad the last batch
            res = run(
                params,
                rest,
                jax.random.fold_in(key, r),
                *(a[k][idx] for k in ("frac", "types", "lattice", "num_atoms")),
            )
            res = jax.device_get(res)
            parts.append({k: v[: min(batch, total - r * batch)] for k, v in res.items()})
        return self._concat(parts, total)

    def reconstruct(
        self, model: CDVAEModel, key: Array, split: str = "test", **kwargs: Any
    ) -> list[Structure | None]:
        """:meth:`reconstruct_arrays` (same arguments) as structures; compare them with
        :meth:`evaluate_reconstruction`."""
        return self.decode_arrays(self.reconstruct_arrays(model, key, split, **kwargs))

    def optimize_property(
        self,
        model: CDVAEModel,
        key: Array,
        num: int = 100,
        steps: int = 5000,
        lr: float = 1e-3,
        *,
        start: str = "data",
        split: str = "test",
        num_saved: int = 10,
        maximize: bool = False,
        decode: bool = True,
        ld_steps: int | None = None,
    ) -> dict[str, Any]:
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
        graphdef, params, rest = split_model(model)
        if start == "data":
            a = self.arrays(split)
            idx = np.arange(min(num, a["num_atoms"].shape[0]))

            @jax.jit
            def enc(params, rest, key, frac, types, lattice, num_atoms):
                net = nnx.merge(graphdef, params, rest)
                mu, logvar = net.encode(types, frac, lattice, _node_mask(num_atoms, types.shape[1]))
                return mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)

            z0 = enc(
                params,
                rest,
                k_start,
                *(a[k][idx] for k in ("frac", "types", "lattice", "num_atoms")),
            )
        elif start == "random":
            z0 = jax.random.normal(k_start, (num, self.config.latent_dim))
        else:
            raise ValueError(f"unknown start {start!r}; choose data or random")
        interval = max(steps // max(num_saved - 1, 1), 1)
        saved = sorted(set(range(0, steps, interval)) | {steps - 1})
        slot_of = np.full((steps,), -1, np.int32)
        slot_of[saved] = np.arange(len(saved))
        sign = -1.0 if maximize else 1.0
        tx = optax.adam(lr)

        @jax.jit
        def run(params, rest, z0):
            net = nnx.merge(graphdef, params, rest)

            def objective(z):
                return sign * jnp.mean(net.fc_property(z))

            def step(carry, slot):
                z, opt, buf = carry
                g = jax.grad(objective)(z)
                upd, opt = tx.update(g, opt, z)
                z = optax.apply_updates(z, upd)
                buf = jnp.where(slot >= 0, buf.at[jnp.maximum(slot, 0)].set(z), buf)
                return (z, opt, buf), None

            buf = jnp.zeros((len(saved),) + z0.shape, z0.dtype)
            (_, _, buf), _ = jax.lax.scan(step, (z0, tx.init(z0), buf), jnp.asarray(slot_of))
            props = jax.vmap(net.predict_property)(buf)
            return buf, props

        zs, props = run(params, rest, z0)
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
        write_cif(samples, path)

    def read_samples(self, path: Path) -> list[Structure | None]:
        return read_cif(path, keep_failed=True)

    def _fingerprints(self, split: str):
        """The split's fingerprints: in memory, else from the disk cache
        (``cache_dir()/crystals``, keyed by the split's parsed arrays), else computed with
        one worker process per CPU (CrystalNN: minutes for a test split)."""
        cache = self.__dict__.setdefault("_fp_cache", {})
        if split not in cache:
            import hashlib
            import os

            from genmodels.datasets.registry import cache_dir
            from genmodels.metrics.crystals import fingerprints_cached

            ds = self.dataset(split)
            h = hashlib.sha256(b"fp-v1")
            for a in (
                ds.arrays.frac,
                ds.arrays.atomic_numbers,
                ds.arrays.num_atoms,
                ds.arrays.lattice,
            ):
                h.update(np.ascontiguousarray(a).tobytes())
            path = cache_dir() / "crystals" / f"{ds.name}-{split}-fp-{h.hexdigest()[:20]}.npz"
            cache[split] = fingerprints_cached(
                ds.structures(), path, n_jobs=max(1, min(os.cpu_count() or 1, 8)), progress=True
            )
        return cache[split]

    def evaluate(
        self, samples: list[Structure | None], split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """CDVAE's generation metrics against ``split`` (validity, COV-R/P, density and
        element-count Wasserstein distances; :func:`genmodels.metrics.crystals.generation_metrics`).
        """
        from genmodels.metrics.crystals import generation_metrics

        ref = self.dataset(split).structures()
        out = generation_metrics(
            list(samples),
            ref,
            self.config.dataset,
            test_fingerprints=self._fingerprints(split),
            progress=False,
        )
        out = {k: float(v) for k, v in out.items()}
        out["num_reference"] = float(len(ref))
        return out

    def evaluate_reconstruction(
        self, pred: list[Structure | None], split: str = "test"
    ) -> dict[str, float]:
        """Match rate and RMSE of :meth:`reconstruct`'s output against the same crystals."""
        from genmodels.metrics.crystals import reconstruction_metrics

        true = self.dataset(split).structures()[: len(pred)]
        return reconstruction_metrics(list(pred), true)
