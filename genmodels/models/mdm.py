"""Masked diffusion (absorbing state) for molecules and images, with the first-hitting sampler.

Molecules (:class:`MDMMolecules`) are described below; quantized images
(:class:`MDMImages`, MNIST) use the same process, loss and samplers with one token per
pixel and a small convolutional network (:mod:`genmodels.nets.conv`).

A molecule with ``n`` heavy atoms is a sequence of tokens in two leaves:

- ``atoms`` [B, N]: atom classes in ``[0, K_atom)`` (QM9: C, N, O, F), padding 0;
- ``bonds`` [B, P]: bond orders of the ``P = N (N - 1) / 2`` node pairs ``i < j`` (the
  order of ``numpy.triu_indices(N, 1)``) in ``{0: none, 1: single, 2: double, 3: triple}``
  (Kekule), pairs with a padded end are padding.

Each leaf has its own :class:`~genmodels.processes.masked.MaskedDiffusion` (mask id
``K``) with one shared schedule and shared times. A pair is one token, so the edge state
stays symmetric by construction: masking (i, j) masks (j, i), and a sampled pair sets
both entries of the adjacency. Padding tokens (``ctx["masks"]``) are never masked,
counted or sampled; the node count is drawn from the training set, as GDSS does.

Training: the continuous-time NELBO of MDLM (Sahoo et al. 2024, eq. 10) / MD4 (Shi et al.
2024), summed over the two leaves,

    L = E_{t ~ U(eps, 1)} [ -alpha'(t) / (1 - alpha(t))
          * sum_{masked positions l of x_t} -log p_theta(x_0^l | x_t) ],

i.e. :meth:`MaskedDiffusion.loss` applied leaf-wise (per molecule, then averaged over
the batch), with antithetic times. The network (:class:`MDMGraphNet`, a dense graph
transformer) predicts clean atom and bond classes at every position (SUBS
parameterization: no mask logit, unmasked tokens copied).

Sampling (:mod:`genmodels.samplers.masked`): ``"fhs"``, the first-hitting sampler of
Zheng et al. 2024 (one token per network call, so exactly ``n + n (n - 1) / 2`` calls for
an ``n``-atom molecule, no time discretization), or ``"ancestral"`` on ``steps`` uniform
steps (MDLM's cached sampler: at most ``steps`` calls). Categorical draws are float64-grade
by default (``precision="float32"`` reproduces the truncated Gumbel sampling that the same
paper shows lowers the effective temperature).

Decoding: raw atom classes and bond orders go through the GDSS molecule adapter
(:class:`genmodels.domains.molecules.MoleculeDomain`): validity without correction is
RDKit sanitization of the raw graph; the corrected SMILES use GDSS's valency correction
and largest fragment, so the metrics have GDSS's keys and definitions.

Departures from the references: MDLM and MD4 are sequence models (a DiT / transformer on
text); here the token set is a graph's atoms plus its node pairs, and the network is a
DiGress-style graph transformer (:mod:`genmodels.nets.graph_transformer`). Time
conditioning is optional (off by default, the time-agnostic view of Zheng et al.; MDLM
also trains without it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from genmodels.core.types import Array, Context, State, identity_constrain
from genmodels.domains.images import read_images_npz, write_images_npz
from genmodels.models.base import split_model
from genmodels.models.gdss import MOLECULE_DATASETS, GDSSMolecules
from genmodels.models.image_base import batch_sharded_constrain, sampling_mesh
from genmodels.nets.conv import TokenConvConfig
from genmodels.nets.graph_transformer import GraphTransformerConfig
from genmodels.processes.base import corrupt_state, loss_state
from genmodels.processes.masked import CosineSchedule, LinearSchedule, MaskedDiffusion
from genmodels.samplers.masked import masked_sample
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader
from genmodels.train.sharding import batch_sharded, data_mesh, replicated

__all__ = [
    "NUM_BOND_TYPES",
    "PRECISIONS",
    "SAMPLERS",
    "MDMGraphNet",
    "MDMImageConfig",
    "MDMImageNet",
    "MDMImages",
    "MDMMolConfig",
    "MDMMolecules",
    "dense_to_pairs",
    "pairs_to_dense",
]

#: sampler names; the first is the default
SAMPLERS = ("fhs", "ancestral")
#: ``precision=`` names of the categorical draws
PRECISIONS = {"float64": jnp.float64, "float32": jnp.float32}
#: bond classes: none, single, double, triple
NUM_BOND_TYPES = 4


def _vocab(dataset: str) -> tuple[int, int]:
    """(number of atom classes, max heavy atoms) of a molecule data set."""
    from genmodels.datasets import molecules as mdata
    from genmodels.domains import molecules as mdom

    return {
        "qm9": (len(mdom.QM9_ATOMS), mdata.QM9_MAX_ATOMS),
        "zinc250k": (len(mdom.ZINC_ATOMS), mdata.ZINC_MAX_ATOMS),
        "moses": (len(mdom.MOSES_ATOMS), mdata.MOSES_MAX_ATOMS),
    }[dataset]


def dense_to_pairs(a: Array) -> Array:
    """The strict upper triangle of [B, N, N] as [B, P] (``numpy.triu_indices(N, 1)``)."""
    iu, ju = np.triu_indices(a.shape[-1], 1)
    return a[..., iu, ju]


def pairs_to_dense(p: Array, n: int, diag: int = 0) -> Array:
    """Symmetric [B, N, N] matrices from their upper-triangle pairs [B, P].

    Args:
      p: [B, P] values of the pairs ``i < j``.
      n: N.
      diag: value on the diagonal.

    Returns:
      [B, N, N] with ``out[i, j] = out[j, i] = p[pair(i, j)]``.
    """
    iu, ju = np.triu_indices(n, 1)
    idx = np.full((n, n), len(iu))  # the diagonal reads the extra slot
    idx[iu, ju] = idx[ju, iu] = np.arange(len(iu))
    xp = jnp if isinstance(p, jax.Array) else np
    full = xp.concatenate([p, xp.full((*p.shape[:-1], 1), diag, p.dtype)], axis=-1)
    return full[..., idx.reshape(-1)].reshape(*p.shape[:-1], n, n)


def token_masks(node_mask: Array) -> dict[str, Array]:
    """Padding masks of the two leaves: ``atoms`` [B, N] and ``bonds`` [B, P]."""
    m = node_mask.astype(jnp.float32)
    pair = dense_to_pairs(m[:, :, None] * m[:, None, :])  # [B, P]
    return {"atoms": m, "bonds": pair}


class MDMGraphNet(nnx.Module):
    """``(state, t, ctx) -> {"atoms": [B, N, K_atom], "bonds": [B, P, 4]}`` logits.

    Wraps a :class:`~genmodels.nets.graph_transformer.GraphTransformer`: the bond pairs
    become a symmetric [B, N, N] token matrix, and the symmetric edge logits are read back
    on the pairs.

    Args:
      net: transformer sizes.
      num_atom_types: K_atom (the node vocabulary is K_atom + 1 with the mask).
      time_conditioning: feed ``t`` to the network.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        net: GraphTransformerConfig,
        num_atom_types: int,
        time_conditioning: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        self.net = net.make(num_atom_types + 1, NUM_BOND_TYPES + 1, time_conditioning, rngs)

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        atoms = state["atoms"]  # [B, N]
        n = atoms.shape[1]
        edges = pairs_to_dense(state["bonds"], n)  # [B, N, N]
        node_logits, edge_logits = self.net(atoms, edges, ctx["node_mask"], t)
        iu, ju = np.triu_indices(n, 1)
        return {"atoms": node_logits, "bonds": edge_logits[:, iu, ju]}


@dataclass(frozen=True)
class MDMMolConfig:
    """A masked-diffusion recipe for molecules.

    Attributes:
      dataset: qm9, zinc250k or moses (the GDSS molecule data path).
      index_offset: how the split file's ids map to rows (see data/README.md).
      moses_limit: MOSES training molecules to load (``None``: all).
      schedule: ``linear`` (``alpha = 1 - t``) or ``cosine`` (MD4's).
      t_eps: smallest training time (the weight ``-alpha'/(1 - alpha)`` ~ 1/t; MDLM's
        ``sampling_eps`` 1e-3).
      net: graph transformer sizes.
      time_conditioning: feed ``t`` to the network (off: time-agnostic, Zheng et al.).
      sampler: default sampler, ``fhs`` or ``ancestral``.
      sample_steps: steps of the ancestral sampler (FHS takes one step per token).
      precision: categorical sampling precision, ``float64`` or ``float32``.
      sample_use_ema: sample with the EMA parameters.
      sample_batch: molecules per sampling batch.
      eval_fcd, eval_nspdk: compute FCD (needs the ``metrics`` extra) and NSPDK.
    """

    dataset: str = "qm9"
    index_offset: int = 1
    moses_limit: int | None = None
    schedule: Literal["linear", "cosine"] = "linear"
    t_eps: float = 1e-3
    net: GraphTransformerConfig = field(default_factory=GraphTransformerConfig)
    time_conditioning: bool = False
    sampler: str = "fhs"
    sample_steps: int = 1000
    precision: Literal["float64", "float32"] = "float64"
    sample_use_ema: bool = True
    sample_batch: int = 1024
    eval_fcd: bool = True
    eval_nspdk: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def build(self) -> MDMMolecules:
        return MDMMolecules(self)


class MDMMolecules:
    """Masked diffusion on molecules (see the module docstring)."""

    samplers = SAMPLERS
    sample_suffix = ".smi"

    def __init__(self, config: MDMMolConfig):
        if config.dataset not in MOLECULE_DATASETS:
            raise ValueError(
                f"unknown molecule data set {config.dataset!r}; choose one of {MOLECULE_DATASETS}"
            )
        if config.schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule {config.schedule!r}; choose linear or cosine")
        self.config = config
        self.num_atom_types, self.max_atoms = _vocab(config.dataset)
        sched = LinearSchedule() if config.schedule == "linear" else CosineSchedule()
        self.processes = {
            "atoms": MaskedDiffusion(self.num_atom_types, sched, config.t_eps),
            "bonds": MaskedDiffusion(NUM_BOND_TYPES, sched, config.t_eps),
        }

    # ------------------------------------------------------------------ data
    @cached_property
    def data(self):
        """The :class:`~genmodels.datasets.molecules.MoleculeDataset` (GDSS's loader)."""
        return GDSSMolecules.data.func(self)

    @property
    def domain(self):
        return self.data.domain

    @cached_property
    def splits(self) -> tuple[list[str], list[str]]:
        """(train, test) canonical SMILES."""
        return self.data.train_smiles, self.data.test_smiles

    def loader(self) -> ArrayLoader:
        types, bonds = self.data.arrays(self.data.train_idx)  # int8 [M, N], [M, N, N]
        return ArrayLoader(
            {"types": types, "bonds": bonds},
            batch_size=self.config.train.batch_size,
            seed=self.config.train.seed,
        )

    def tokens(self, batch: dict) -> tuple[State, dict]:
        """Clean token state and context of a loader batch.

        Args:
          batch: ``{"types": [B, N] (-1 padding), "bonds": [B, N, N]}``.

        Returns:
          ``(x0, ctx)``: ``{"atoms": [B, N], "bonds": [B, P]}`` int32 (padding 0) and
          ``{"node_mask": [B, N], "masks": {"atoms": [B, N], "bonds": [B, P]}}``.
        """
        types = jnp.asarray(batch["types"]).astype(jnp.int32)
        node_mask = (types >= 0).astype(jnp.float32)
        masks = token_masks(node_mask)
        bonds = dense_to_pairs(jnp.asarray(batch["bonds"]).astype(jnp.int32))
        x0 = {"atoms": jnp.maximum(types, 0), "bonds": jnp.where(masks["bonds"] > 0, bonds, 0)}
        return x0, {"node_mask": node_mask, "masks": masks}

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> MDMGraphNet:
        return MDMGraphNet(
            self.config.net,
            self.num_atom_types,
            self.config.time_conditioning,
            rngs=nnx.Rngs(key),
        )

    def corrupt(self, x0: State, ctx: Context, key: Array) -> tuple[Array, State, dict]:
        """Training times and corrupted tokens: ``(t [B], xt, aux)`` (leaf-wise ``corrupt``
        at shared antithetic times)."""
        kt, kc = jax.random.split(key)
        t = self.processes["atoms"].sample_times(kt, x0["atoms"].shape[0])
        xt, aux = corrupt_state(self.processes, kc, x0, t, ctx)
        return t, xt, aux

    def loss_fn(self, model: MDMGraphNet, batch: dict, key: Array):
        """The MDLM NELBO (module docstring) per molecule, averaged over the batch.

        Returns:
          ``(loss, metrics)`` with the atom and bond parts and ``nll_per_token`` (the
          NELBO divided by the mean number of real tokens, nats).
        """
        x0, ctx = self.tokens(batch)
        t, xt, aux = self.corrupt(x0, ctx, key)
        preds = model(xt, t, ctx)
        total, per_leaf = loss_state(self.processes, preds, x0, xt, t, aux, ctx)
        loss = jnp.mean(total)
        ntok = sum(jnp.sum(m) for m in ctx["masks"].values()) / total.shape[0]
        return loss, {
            "loss_atoms": jnp.mean(per_leaf["atoms"]),
            "loss_bonds": jnp.mean(per_leaf["bonds"]),
            "nll_per_token": loss / ntok,
        }

    # -------------------------------------------------------------- sampling
    @cached_property
    def _count_sampler(self):
        counts = self.data.num_atoms[self.data.train_idx]
        return self.domain.node_count_sampler(counts)

    def sample_states(
        self,
        model: MDMGraphNet,
        key: Array,
        batch: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        precision: str | None = None,
        num_atoms: int | None = None,
    ) -> tuple[State, Context, dict]:
        """One jitted batch of sampled token states.

        Args:
          model: the network.
          key: PRNG key.
          batch: molecules in the batch.
          sampler: ``fhs`` or ``ancestral`` (default: the config's).
          steps: ancestral steps (default: the config's; ignored by ``fhs``).
          precision: ``float64`` or ``float32`` categorical draws (default: the config's).
          num_atoms: give every molecule this many atoms instead of drawing the counts
            from the training set.

        Returns:
          ``(state, ctx, info)``: int32 ``{"atoms": [B, N], "bonds": [B, P]}`` with no mask
          token left and zero padding; ``ctx`` with ``node_mask`` and ``masks``;
          ``info["nfe"]`` the number of network calls.
        """
        c = self.config
        fn, mesh = self._compiled(
            model,
            batch,
            sampler or c.sampler,
            int(steps or c.sample_steps),
            precision or c.precision,
            num_atoms,
        )
        _, params, _ = split_model(model)
        if mesh is not None:
            params = jax.device_put(params, replicated(mesh))
        return fn(params, key)

    def _token_shapes(self, batch: int) -> dict[str, tuple[int, int]]:
        """Shapes of the token leaves of a batch: atoms [B, N] and bonds [B, P]."""
        n = self.max_atoms
        return {"atoms": (batch, n), "bonds": (batch, n * (n - 1) // 2)}

    def _token_masks(self, node_mask: Array) -> dict[str, Array]:
        """Padding masks of the token leaves for a node mask [B, N]."""
        return token_masks(node_mask)

    def _compiled(self, model, batch, sampler, steps, precision, num_atoms):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown MDM sampler {sampler!r}; choose one of {SAMPLERS}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
        if num_atoms is not None and not 1 <= num_atoms <= self.max_atoms:
            raise ValueError(f"num_atoms must be in 1..{self.max_atoms}, got {num_atoms}")
        cache = self.__dict__.setdefault("_fn_cache", {})
        graphdef, _, rest = split_model(model)
        ckey = (batch, sampler, steps, precision, num_atoms, graphdef)
        if ckey in cache:
            return cache[ckey]
        n = self.max_atoms
        shapes = self._token_shapes(batch)
        dtype = PRECISIONS[precision]
        count_sampler = None if num_atoms is not None else self._count_sampler
        ndev = jax.device_count()
        mesh = data_mesh() if ndev > 1 and batch % ndev == 0 else None

        @jax.jit
        def run(params, key):
            net = nnx.merge(graphdef, params, rest)
            kc, ks = jax.random.split(key)
            if count_sampler is None:
                node_mask = jnp.broadcast_to(
                    (jnp.arange(n) < num_atoms).astype(jnp.float32), (batch, n)
                )
            else:
                node_mask = count_sampler(kc, batch)["node_mask"]
            ctx = {"node_mask": node_mask, "masks": self._token_masks(node_mask)}
            if mesh is not None:
                ctx = jax.lax.with_sharding_constraint(ctx, batch_sharded(mesh))
            out, info = masked_sample(
                net,
                self.processes,
                ctx,
                ks,
                shapes=shapes,
                sampler=sampler,
                steps=steps,
                precision=dtype,
                time_conditioning=self.config.time_conditioning,
            )
            return out, ctx, {"nfe": info["nfe"]}

        cache[ckey] = run, mesh
        return run, mesh

    def to_graphs(self, state: State, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """Host arrays of a sampled batch: ``(types [B, N] with -1 on padding, bonds
        [B, N, N] symmetric with a zero diagonal)``, the dataset's layout."""
        node_mask = np.asarray(ctx["node_mask"]) > 0
        types = np.where(node_mask, np.asarray(state["atoms"]), -1)
        bonds = pairs_to_dense(np.asarray(state["bonds"]), node_mask.shape[1])
        return types.astype(np.int64), bonds.astype(np.int64)

    def decode_smiles(self, state: State, ctx: Context) -> tuple[list[str], list[str]]:
        """``(corrected, raw)`` canonical SMILES of a sampled batch (GDSS decoding)."""
        types, bonds = self.to_graphs(state, ctx)
        x = np.eye(self.num_atom_types, dtype=np.float32)[np.maximum(types, 0)]  # [B, N, F]
        x *= (types >= 0)[..., None]
        dense = {"x": x, "adj": bonds.astype(np.float32)}
        return self.domain.decode_smiles(dense, {"node_mask": (types >= 0).astype(np.float32)})

    def _batches(self, model, key, num, sampler, steps, precision, batch_size, progress):
        batch = batch_size or self.config.sample_batch
        rounds = math.ceil(num / batch)
        for r in tqdm(range(rounds), desc="sample", disable=not progress or rounds == 1):
            out, ctx, _ = self.sample_states(
                model,
                jax.random.fold_in(key, r),
                batch,
                sampler=sampler,
                steps=steps,
                precision=precision,
            )
            yield jax.device_get(out), jax.device_get(ctx)

    def sample(
        self,
        model: MDMGraphNet,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        precision: str | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        correction: bool = True,
        **options: Any,
    ) -> list[str]:
        """``num`` canonical SMILES (``""`` where decoding failed).

        Args:
          sampler: ``fhs`` (default) or ``ancestral``.
          steps: ancestral steps.
          precision: ``float64`` (default) or ``float32`` categorical draws.
          correction: GDSS's valency correction (``False``: the raw molecules).
        """
        if options:
            raise ValueError(f"MDM sample got unknown options {sorted(options)}")
        smiles, raw = self.sample_pairs(
            model,
            key,
            num,
            sampler=sampler,
            steps=steps,
            precision=precision,
            batch_size=batch_size,
            progress=progress,
        )
        return smiles if correction else raw

    def sample_pairs(
        self,
        model: MDMGraphNet,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        precision: str | None = None,
        batch_size: int | None = None,
        progress: bool = True,
    ) -> tuple[list[str], list[str]]:
        """The same ``num`` samples decoded with and without valency correction.

        Returns:
          ``(corrected, raw)`` canonical SMILES (``""`` where decoding failed).
        """
        out: list[str] = []
        raws: list[str] = []
        for st, ctx in self._batches(
            model, key, num, sampler, steps, precision, batch_size, progress
        ):
            smiles, raw = self.decode_smiles(st, ctx)
            out.extend(smiles)
            raws.extend(raw)
        return out[:num], raws[:num]

    # .smi files and GDSS's molecule metrics (same keys: validity, validity_wo_correction,
    # uniqueness, novelty, fcd, nspdk); they only read config/data/splits
    write_samples = GDSSMolecules.write_samples
    read_samples = GDSSMolecules.read_samples
    evaluate = GDSSMolecules.evaluate
    _reference_stats = GDSSMolecules._reference_stats


# ---------------------------------------------------------------------- images


@dataclass(frozen=True)
class MDMImageConfig:
    """A masked-diffusion recipe for discretized gray-scale images (MNIST).

    Pixels are quantized to ``levels`` equal-width bins (:func:`genmodels.datasets.images.
    quantize`); each pixel is one token of the leaf ``image`` [B, H, W].

    Attributes:
      dataset: ``mnist``.
      levels: intensity bins K (2 = binarized).
      height, width: image size.
      schedule, t_eps, time_conditioning, sampler, sample_steps, precision,
      sample_use_ema, sample_batch: as :class:`MDMMolConfig`.
      net: network sizes.
      eval_size: test images used by :meth:`MDMImages.evaluate` (``None``: all).
    """

    dataset: str = "mnist"
    levels: int = 4
    height: int = 28
    width: int = 28
    schedule: Literal["linear", "cosine"] = "linear"
    t_eps: float = 1e-3
    net: TokenConvConfig = field(default_factory=TokenConvConfig)
    time_conditioning: bool = False
    sampler: str = "fhs"
    sample_steps: int = 1000
    precision: Literal["float64", "float32"] = "float64"
    sample_use_ema: bool = True
    sample_batch: int = 256
    eval_size: int | None = 10000
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def build(self) -> MDMImages:
        return MDMImages(self)


class MDMImageNet(nnx.Module):
    """``(state, t, ctx) -> {"image": [B, H, W, K]}`` logits (a :class:`TokenConvNet`)."""

    def __init__(self, config: MDMImageConfig, *, rngs: nnx.Rngs):
        self.net = config.net.make(
            config.levels + 1, config.height, config.width, config.time_conditioning, rngs
        )

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        del ctx
        return {"image": self.net(state["image"], t)}


class MDMImages:
    """Masked diffusion on quantized images: one token per pixel, no padding.

    Same process, loss and samplers as :class:`MDMMolecules`; the first-hitting sampler
    makes exactly ``H * W`` network calls per batch (784 for MNIST).
    """

    samplers = SAMPLERS
    sample_suffix = ".npz"

    def __init__(self, config: MDMImageConfig):
        if config.dataset != "mnist":
            raise ValueError(f"unknown image data set {config.dataset!r}; choose mnist")
        if config.schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule {config.schedule!r}; choose linear or cosine")
        self.config = config
        sched = LinearSchedule() if config.schedule == "linear" else CosineSchedule()
        self.processes = {"image": MaskedDiffusion(config.levels, sched, config.t_eps)}

    # ------------------------------------------------------------------ data
    @cached_property
    def data(self) -> dict[str, np.ndarray]:
        """``{"train": uint8 [N, H, W], "test": uint8 [M, H, W]}``."""
        from genmodels.datasets.images import load_mnist

        return {split: load_mnist(split)[0] for split in ("train", "test")}

    def loader(self) -> ArrayLoader:
        from genmodels.datasets.images import quantize

        c = self.config
        train = self.data["train"]
        if train.shape[1:] != (c.height, c.width):
            raise ValueError(f"images are {train.shape[1:]}, config says {(c.height, c.width)}")
        return ArrayLoader(
            {"image": quantize(train, c.levels)}, batch_size=c.train.batch_size, seed=c.train.seed
        )

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> MDMImageNet:
        return MDMImageNet(self.config, rngs=nnx.Rngs(key))

    def loss_fn(self, model: MDMImageNet, batch: dict, key: Array):
        """The MDLM NELBO per image, averaged over the batch.

        Returns:
          ``(loss, metrics)`` with ``bits_per_dim``: the NELBO in bits per pixel of the
          quantized images (an upper bound on their negative log-likelihood).
        """
        x0 = {"image": jnp.asarray(batch["image"]).astype(jnp.int32)}  # [B, H, W]
        ctx: dict = {}
        kt, kc = jax.random.split(key)
        t = self.processes["image"].sample_times(kt, x0["image"].shape[0])
        xt, aux = corrupt_state(self.processes, kc, x0, t, ctx)
        preds = model(xt, t, ctx)
        total, _ = loss_state(self.processes, preds, x0, xt, t, aux, ctx)
        loss = jnp.mean(total)
        pixels = x0["image"].shape[1] * x0["image"].shape[2]
        return loss, {"bits_per_dim": loss / pixels / math.log(2.0)}

    # -------------------------------------------------------------- sampling
    def sample_states(
        self,
        model: MDMImageNet,
        key: Array,
        batch: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        precision: str | None = None,
    ) -> tuple[State, dict]:
        """One jitted batch of token images ``{"image": int32 [B, H, W]}`` and
        ``info["nfe"]`` (see :meth:`MDMMolecules.sample_states` for the arguments).

        With several devices that divide ``batch`` the images are sharded over them along
        the batch (parameters replicated), as for molecules; the samples are the same."""
        c = self.config
        sampler = sampler or c.sampler
        precision = precision or c.precision
        steps = int(steps or c.sample_steps)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown MDM sampler {sampler!r}; choose one of {SAMPLERS}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
        cache = self.__dict__.setdefault("_fn_cache", {})
        graphdef, params, rest = split_model(model)
        ckey = (batch, sampler, steps, precision, graphdef)
        if ckey not in cache:
            shapes = {"image": (batch, c.height, c.width)}
            dtype = PRECISIONS[precision]
            mesh = sampling_mesh(batch)
            # no context to carry the sharding: the samplers' constrain hook (applied to
            # the initial state and after every step) pins the batch axis to the mesh
            hook = batch_sharded_constrain(identity_constrain, mesh)

            @jax.jit
            def run(params, key):
                net = nnx.merge(graphdef, params, rest)
                out, info = masked_sample(
                    net,
                    self.processes,
                    {},
                    key,
                    shapes=shapes,
                    sampler=sampler,
                    steps=steps,
                    precision=dtype,
                    time_conditioning=c.time_conditioning,
                    constrain=hook,
                )
                return out, {"nfe": info["nfe"]}

            cache[ckey] = run, mesh
        run, mesh = cache[ckey]
        if mesh is not None:
            params = jax.device_put(params, replicated(mesh))
        return run(params, key)

    def sample(
        self,
        model: MDMImageNet,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        precision: str | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        **options: Any,
    ) -> np.ndarray:
        """``num`` images, uint8 [num, H, W, 1] (bins mapped back to 0..255)."""
        from genmodels.datasets.images import dequantize

        if options:
            raise ValueError(f"MDM sample got unknown options {sorted(options)}")
        batch = batch_size or self.config.sample_batch
        rounds = math.ceil(num / batch)
        out = []
        for r in tqdm(range(rounds), desc="sample", disable=not progress or rounds == 1):
            st, _ = self.sample_states(
                model,
                jax.random.fold_in(key, r),
                batch,
                sampler=sampler,
                steps=steps,
                precision=precision,
            )
            out.append(np.asarray(jax.device_get(st["image"])))
        tokens = np.concatenate(out)[:num]
        return dequantize(tokens, self.config.levels)[..., None]

    def write_samples(self, samples: np.ndarray, path: Path) -> None:
        """``.npz`` with uint8 ``images`` [N, H, W, C] and a PNG grid of the first 100
        (:func:`genmodels.domains.images.write_images_npz`)."""
        write_images_npz(path, samples)

    def read_samples(self, path: Path) -> np.ndarray:
        """uint8 [N, H, W, C] from a sample ``.npz`` (clear errors on a bad file)."""
        return read_images_npz(path)

    def evaluate(
        self, samples: np.ndarray, split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """Simple distribution statistics against a reference split (no FID here).

        Returns:
          ``level_tv``: total variation between the histograms of quantized levels;
          ``mean_image_rmse``: RMS difference of the mean images (intensities in [0, 1]);
          ``ink_fraction_gap``: difference of the mean fraction of non-background pixels;
          ``num_samples``.
        """
        from genmodels.datasets.images import quantize

        del meta
        if split not in self.data:
            raise ValueError(f"unknown split {split!r}; choose test or train")
        ref = self.data[split][: self.config.eval_size]
        x = np.asarray(samples, np.uint8)[..., 0]
        levels = self.config.levels
        qx, qr = quantize(x, levels), quantize(ref, levels)
        hx = np.bincount(qx.ravel(), minlength=levels) / qx.size
        hr = np.bincount(qr.ravel(), minlength=levels) / qr.size
        mx, mr = x.mean(0) / 255.0, ref.mean(0) / 255.0
        return {
            "level_tv": float(0.5 * np.abs(hx - hr).sum()),
            "mean_image_rmse": float(np.sqrt(np.mean((mx - mr) ** 2))),
            "ink_fraction_gap": float(np.mean(qx > 0) - np.mean(qr > 0)),
            "num_samples": int(len(x)),
        }
