"""Masked diffusion (absorbing state) with the first-hitting sampler, on any token layout.

One method, :class:`MDM`: each state leaf is a token sequence with its own
:class:`~genmodels.processes.masked.MaskedDiffusion` (mask id ``K``), one schedule and
shared antithetic times. The loss is the continuous-time NELBO of MDLM (Sahoo et al.
2024, eq. 10) / MD4 (Shi et al. 2024), summed over the leaves,

    L = E_{t ~ U(eps, 1)} [ -alpha'(t) / (1 - alpha(t))
          * sum_{masked positions l of x_t} -log p_theta(x_0^l | x_t) ],

per example, averaged over the batch (SUBS: no mask logit, unmasked tokens copied).
Padding tokens (``ctx["masks"]``) are never masked, counted or sampled; sizes come from
the task's prior or ``num_atoms=``. Samplers come from the registry: ``fhs``, the
first-hitting sampler of Zheng et al. 2024 (one token per network call), or
``ancestral`` (MDLM's cached sampler on uniform steps), with float64-grade categorical
draws by default (``precision="float32"``: truncated Gumbel draws, which Zheng et al.
show lower the temperature).

Per data kind only the token layout and the network differ: molecules
(:class:`MDMMolecules`: ``atoms`` [B, N] and Kekule ``bonds`` [B, P] of the pairs
``i < j`` in ``numpy.triu_indices`` order, so the adjacency stays symmetric; a
DiGress-style graph transformer; GDSS decoding with and without valency correction),
quantized images (:class:`MDMImages`: one token per pixel, a dilated conv net), generic
graphs (:mod:`~genmodels.models.mdm_graphs`) and crystal compositions
(:mod:`~genmodels.models.mdm_crystals`). Departures: MDLM and MD4 model text; no time
conditioning by default (time-agnostic, as Zheng et al.; MDLM also trains without it).
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

from genmodels.core.types import Array, Context, State, identity_constrain
from genmodels.datasets.images import dequantize, quantize
from genmodels.datasets.user import UserData
from genmodels.domains.graphs import dense_to_pairs, node_masks_from_counts, pairs_to_dense
from genmodels.models.runner import (
    Runner,
    batch_sharded_constrain,
    decode_rounds,
    resolve_sampler,
    sampler_names,
    shard_batch,
)
from genmodels.models.tasks.base import array_loader, check_split
from genmodels.models.tasks.images import ImageTask
from genmodels.models.tasks.molecules import MoleculeTask
from genmodels.nets.conv import TokenConvConfig
from genmodels.nets.graph_transformer import GraphTransformerConfig
from genmodels.nets.tokens import NUM_BOND_TYPES, MDMGraphNet, MDMImageNet
from genmodels.processes.base import corrupt_state, loss_state
from genmodels.processes.masked import CosineSchedule, LinearSchedule, MaskedDiffusion
from genmodels.samplers.registry import run_sampler
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader

__all__ = [
    "MDM",
    "NUM_BOND_TYPES",
    "MDMConfig",
    "MDMGraphNet",
    "MDMImageConfig",
    "MDMImageNet",
    "MDMImages",
    "MDMMolConfig",
    "MDMMolecules",
    "pair_mask",
]

SCHEDULES = {"linear": LinearSchedule, "cosine": CosineSchedule}


def pair_mask(node_mask: Array) -> Array:
    """[B, P] float32: 1 on the pairs ``i < j`` of two real nodes of ``node_mask`` [B, N]."""
    m = node_mask.astype(jnp.float32)
    return dense_to_pairs(m[:, :, None] * m[:, None, :])


@dataclass(frozen=True)
class MDMConfig:
    """Settings of every masked-diffusion recipe (a data kind's config adds its own).

    Attributes:
      schedule: ``linear`` (``alpha = 1 - t``) or ``cosine`` (MD4's).
      t_eps: smallest training time (MDLM's ``sampling_eps`` 1e-3).
      time_conditioning: feed ``t`` to the network (off: time-agnostic, Zheng et al.).
      sampler: default sampler, ``fhs`` or ``ancestral``.
      sample_steps: steps of the ancestral sampler.
      precision: categorical draws in ``float64`` or ``float32``.
      draw: the ancestral sampler's draw per step: ``split`` (an unmask test, then K
        classes) or ``joint`` (MDLM's: one draw over the K classes and the mask).
      sample_use_ema: sample with the EMA parameters.
      sample_batch: samples per sampling batch.
    """

    schedule: Literal["linear", "cosine"] = "linear"
    t_eps: float = 1e-3
    time_conditioning: bool = False
    sampler: str = "fhs"
    sample_steps: int = 1000
    precision: Literal["float64", "float32"] = "float64"
    draw: Literal["split", "joint"] = "split"
    sample_use_ema: bool = True
    sample_batch: int = 1024
    train: TrainConfig = field(default_factory=TrainConfig)
    data: UserData = UserData()  # options of a user data file (``--dataset PATH``)
    optim: OptimConfig = field(default_factory=OptimConfig)


class MDM:
    """Masked diffusion on a task's token layout (module docstring).

    A data kind subclasses it with its token layout: ``vocab()`` (leaf -> K real
    classes), ``shapes(batch)``, ``token_masks(node_mask [B, N])`` (leaf -> padding
    mask), ``tokens(loader batch) -> (x0, ctx)`` (int32, padding 0), ``init_model`` and,
    where the task's objects are not decoded from the tokens directly, :meth:`decode`.

    Attributes:
      config: the recipe config (an :class:`MDMConfig`).
      task: the data kind (data, size prior, files, metrics).
      max_atoms: N, the padded size the task's size prior fills (``None``: no padding).
      collate_options: ``sample`` options passed on to ``task.collate``.
    """

    max_atoms: int | None = None
    collate_options: tuple[str, ...] = ()

    def __init__(self, config: Any, task: Any):
        if config.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {config.schedule!r}; choose linear or cosine")
        self.config, self.task = config, task
        self.runner = Runner()

    # the token layout's hooks (class docstring)
    def vocab(self) -> dict[str, int]: ...

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]: ...

    def token_masks(self, node_mask: Array) -> dict[str, Array]: ...

    def tokens(self, batch: dict) -> tuple[State, Context]: ...

    def init_model(self, key: Array) -> nnx.Module: ...

    def decode(self, state: State, ctx: Context) -> Any:
        """A sampled host batch -> the task's objects (default: ``task.decode``)."""
        return self.task.decode(state, ctx)

    # --------------------------------------------------------------------- shared
    @property
    def samplers(self) -> tuple[str, ...]:
        return sampler_names(MaskedDiffusion.kind, "fhs")

    sample_suffix = property(lambda self: self.task.sample_suffix)
    sample_suffixes = property(lambda self: self.task.sample_suffixes)
    eval_splits = property(lambda self: self.task.eval_splits)

    @cached_property
    def processes(self) -> dict[str, MaskedDiffusion]:
        """Leaf -> ``MaskedDiffusion(K)`` with the config's schedule and ``t_eps``."""
        sched = SCHEDULES[self.config.schedule]()
        return {k: MaskedDiffusion(v, sched, self.config.t_eps) for k, v in self.vocab().items()}

    def context(self, node_mask: Array) -> Context:
        """``{"node_mask": [B, N], "masks": token_masks}``."""
        m = jnp.asarray(node_mask, jnp.float32)
        return {"node_mask": m, "masks": self.token_masks(m)}

    def loader(self) -> ArrayLoader:
        return array_loader(self.task, self.config.train)

    def corrupt(self, x0: State, ctx: Context, key: Array) -> tuple[Array, State, dict]:
        """Antithetic times and leaf-wise corrupted tokens: ``(t [B], xt, aux)``."""
        kt, kc = jax.random.split(key)
        batch = next(iter(x0.values())).shape[0]
        t = next(iter(self.processes.values())).sample_times(kt, batch)
        xt, aux = corrupt_state(self.processes, kc, x0, t, ctx)
        return t, xt, aux

    def loss_fn(self, model: nnx.Module, batch: dict, key: Array):
        """The NELBO (module docstring) per example, averaged over the batch.

        Returns:
          ``(loss, metrics)`` (:meth:`loss_metrics`).
        """
        x0, ctx = self.tokens(batch)
        t, xt, aux = self.corrupt(x0, ctx, key)
        total, per_leaf = loss_state(self.processes, model(xt, t, ctx), x0, xt, t, aux, ctx)
        loss = jnp.mean(total)
        return loss, self.loss_metrics(loss, per_leaf, x0, ctx)

    def loss_metrics(self, loss: Array, per_leaf: dict, x0: State, ctx: Context) -> dict:
        """``nll_per_token``: the NELBO over the mean number of real tokens (nats); with
        several leaves also each leaf's loss ``loss_<leaf>``."""
        b = next(iter(x0.values())).shape[0]
        ntok = sum(jnp.sum(m) for m in ctx["masks"].values()) / b
        out = {"nll_per_token": loss / jnp.maximum(ntok, 1.0)}
        if len(per_leaf) > 1:
            out.update({f"loss_{k}": jnp.mean(v) for k, v in per_leaf.items()})
        return out

    def sample_states(
        self, model, key, batch, *, sampler=None, steps=None, precision=None, num_atoms=None
    ) -> tuple[State, Context, dict]:
        """One jitted batch of sampled tokens.

        Args:
          model, key, batch: the network, a PRNG key and the batch size.
          sampler: a registry name accepting masked processes (default: the config's).
          steps: ancestral steps (default: the config's; ``fhs`` takes one per token).
          precision: ``float64`` or ``float32`` categorical draws (default: the config's).
          num_atoms: every sample this many atoms / nodes instead of the task's prior.

        Returns:
          ``(state, ctx, info)``: int32 tokens with no mask left and zero padding, the
          context, and ``info["nfe"]`` the number of network calls.
        """
        return self._compiled(model, batch, sampler, steps, precision, num_atoms)(key)

    def _compiled(self, model, batch, sampler=None, steps=None, precision=None, num_atoms=None):
        name, steps, opts = resolve_sampler(
            self.processes, sampler, steps, self.config, precision=precision
        )
        n = self.max_atoms
        if num_atoms is not None and (n is None or not 1 <= num_atoms <= n):
            raise ValueError(f"num_atoms must be in 1..{n}, got {num_atoms}")
        count_sampler = None if n is None or num_atoms is not None else self.task.count_sampler

        def body(net, key, mesh):
            ctx, ks = {}, key
            if n is not None:
                kc, ks = jax.random.split(key)
                if count_sampler is None:
                    node_mask = node_masks_from_counts(jnp.full((batch,), num_atoms), n)
                else:
                    node_mask = count_sampler(kc, batch)["node_mask"]
                ctx = shard_batch(self.context(node_mask), mesh)
            hook = batch_sharded_constrain(identity_constrain, mesh)
            out, info = run_sampler(
                name,
                net,
                self.processes,
                ctx,
                ks,
                shapes=self.shapes(batch),
                steps=steps,
                options=opts,
                constrain=hook,
            )
            return out, ctx, {"nfe": info["nfe"]}

        return self.runner.compile(model, batch, (name, steps, opts, num_atoms), body)

    def sample_parts(
        self,
        model: nnx.Module,
        key: Array,
        num: int,
        *,
        batch_size: int | None = None,
        progress: bool = True,
        **sampling: Any,
    ) -> list:
        """Decoded batches (:meth:`decode`) of ``ceil(num / batch)`` rounds, round ``r``
        with ``fold_in(key, r)``; ``sampling``: ``sampler``, ``steps``, ``precision`` as
        for :meth:`sample_states`.

        Raises:
          ValueError: an unknown option, sampler or precision.
        """
        unknown = sorted(set(sampling) - {"sampler", "steps", "precision"})
        if unknown:
            raise ValueError(f"MDM sample got unknown options {unknown}")
        batch = batch_size or self.config.sample_batch
        fn = self._compiled(model, batch, **sampling)
        return decode_rounds(self.decode, fn, num, batch, key, progress)

    def sample(self, model: nnx.Module, key: Array, num: int, **options: Any) -> Any:
        """``num`` samples as the task's objects: :meth:`sample_parts` with ``options``
        except :attr:`collate_options` (e.g. ``correction=False``: raw molecules), which go
        to ``task.collate``."""
        kept = {k: options.pop(k) for k in self.collate_options if k in options}
        return self.collate(self.sample_parts(model, key, num, **options), num, **kept)

    def collate(self, parts: list, num: int, **options: Any) -> Any:
        return self.task.collate(parts, num, **options)

    def write_samples(self, samples: Any, path: Path) -> None:
        self.task.write_samples(samples, path)

    def read_samples(self, path: Path) -> Any:
        return self.task.read_samples(path)

    def evaluate(self, samples: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        """The task's metrics (``task.evaluate``: ``split``, ``meta`` and its own)."""
        return self.task.evaluate(samples, *args, **kwargs)


# ------------------------------------------------------------------------- molecules


@dataclass(frozen=True)
class MDMMolConfig(MDMConfig):
    """A masked-diffusion recipe for molecules (shared fields: :class:`MDMConfig`).

    Attributes:
      dataset: qm9, zinc250k, moses or a SMILES file (``data``: its options).
      index_offset: how the split file's ids map to rows (see data/README.md).
      moses_limit: MOSES training molecules to load (``None``: all).
      net: graph transformer sizes.
      eval_fcd, eval_nspdk: compute FCD (needs the ``metrics`` extra) and NSPDK.
    """

    dataset: str = "qm9"
    index_offset: int = 1
    moses_limit: int | None = None
    net: GraphTransformerConfig = field(default_factory=GraphTransformerConfig)
    eval_fcd: bool = True
    eval_nspdk: bool = True

    def build(self) -> MDMMolecules:
        return MDMMolecules(self)


class MDMMolecules(MDM):
    """Masked diffusion on molecules: leaves ``atoms`` [B, N] and ``bonds`` [B, P]."""

    collate_options = ("correction",)

    def __init__(self, config: MDMMolConfig):
        task = MoleculeTask.of(config)
        super().__init__(config, task)
        self.num_atom_types, self.max_atoms = task.num_atom_types, task.max_atoms

    def vocab(self) -> dict[str, int]:
        return {"atoms": self.num_atom_types, "bonds": NUM_BOND_TYPES}

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        n = self.max_atoms
        return {"atoms": (batch, n), "bonds": (batch, n * (n - 1) // 2)}

    def token_masks(self, node_mask: Array) -> dict[str, Array]:
        return {"atoms": node_mask, "bonds": pair_mask(node_mask)}

    def tokens(self, batch: dict) -> tuple[State, Context]:
        """Args: ``{"types": [B, N] (-1 padding), "bonds": [B, N, N]}`` (the task's)."""
        types = jnp.asarray(batch["types"]).astype(jnp.int32)
        ctx = self.context(types >= 0)
        bonds = dense_to_pairs(jnp.asarray(batch["bonds"]).astype(jnp.int32))
        bonds = jnp.where(ctx["masks"]["bonds"] > 0, bonds, 0)
        return {"atoms": jnp.maximum(types, 0), "bonds": bonds}, ctx

    def init_model(self, key: Array) -> MDMGraphNet:
        c = self.config
        return MDMGraphNet(c.net, self.num_atom_types, c.time_conditioning, rngs=nnx.Rngs(key))

    def to_graphs(self, state: State, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """Host ``(types [B, N] with -1 on padding, bonds [B, N, N] symmetric with a zero
        diagonal)``: the data set's layout."""
        node_mask = np.asarray(ctx["node_mask"]) > 0
        types = np.where(node_mask, np.asarray(state["atoms"]), -1)
        bonds = pairs_to_dense(np.asarray(state["bonds"]), node_mask.shape[1])
        return types.astype(np.int64), bonds.astype(np.int64)

    def decode(self, state: State, ctx: Context) -> list:
        """Corrected and raw SMILES (:class:`~genmodels.models.tasks.molecules.MolSample`)."""
        return self.task.decode_graphs(*self.to_graphs(state, ctx))

    def decode_smiles(self, state: State, ctx: Context) -> tuple[list[str], list[str]]:
        """``(corrected, raw)`` canonical SMILES of a sampled batch."""
        return self.task.pairs([self.decode(state, ctx)], len(state["atoms"]))


# ---------------------------------------------------------------------------- images


@dataclass(frozen=True)
class MDMImageConfig(MDMConfig):
    """A masked-diffusion recipe for gray-scale images quantized to ``levels`` equal-width
    bins (:func:`genmodels.datasets.images.quantize`), one token per pixel.

    Attributes:
      dataset: ``mnist``, or a user's folder or ``.npz`` of gray-scale images.
      levels: intensity bins K (2 = binarized).
      height, width: image size.
      net: network sizes.
      eval_size: test images used by ``evaluate`` (``None``: all).
    """

    dataset: str = "mnist"
    levels: int = 4
    height: int = 28
    width: int = 28
    net: TokenConvConfig = field(default_factory=TokenConvConfig)
    sample_batch: int = 256
    eval_size: int | None = 10000

    def build(self) -> MDMImages:
        return MDMImages(self)


class MDMImages(MDM):
    """Masked diffusion on quantized images: the leaf ``image`` [B, H, W], no padding
    (``fhs`` makes ``H * W`` network calls a batch); data and files from
    :class:`~genmodels.models.tasks.images.ImageTask`."""

    def __init__(self, config: MDMImageConfig):
        fix = "--height {} --width {} (it reads gray-scale images only; these have C = {})".format
        shape, kw = (config.height, config.width, 1), dict(data=config.data, size_flags=fix)
        super().__init__(config, ImageTask(config.dataset, shape, eval_inception=False, **kw))

    def vocab(self) -> dict[str, int]:
        return {"image": self.config.levels}

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        return {"image": (batch, self.config.height, self.config.width)}

    def tokens(self, batch: dict) -> tuple[State, Context]:
        """uint8 [B, H, W, 1] -> the bins ``floor(x K / 256)`` [B, H, W] (``quantize``)."""
        x = jnp.asarray(batch["image"]).astype(jnp.int32)[..., 0]
        return {"image": x * self.config.levels // 256}, {}

    def init_model(self, key: Array) -> MDMImageNet:
        return MDMImageNet(self.config, rngs=nnx.Rngs(key))

    def loss_metrics(self, loss: Array, per_leaf: dict, x0: State, ctx: Context) -> dict:
        """``bits_per_dim``: the NELBO in bits per pixel (a bound on the NLL)."""
        return {"bits_per_dim": loss / math.prod(x0["image"].shape[1:]) / math.log(2.0)}

    def decode(self, state: State, ctx: Context) -> np.ndarray:
        """uint8 [B, H, W, 1] (bins mapped back to 0..255)."""
        return dequantize(np.asarray(state["image"]), self.config.levels)[..., None]

    def evaluate(
        self, samples: np.ndarray, split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """Level-histogram total variation (``level_tv``), RMS difference of the mean
        images (``mean_image_rmse``, intensities in [0, 1]), difference of the fraction of
        non-background pixels (``ink_fraction_gap``) against ``split`` (no FID here)."""
        del meta
        check_split(split, self.eval_splits)
        ref = self.task.data if split == "train" else self.task.split_images(split)
        ref = ref[: self.config.eval_size, ..., 0]
        x = np.asarray(samples, np.uint8)[..., 0]
        k = self.config.levels
        qx, qr = quantize(x, k), quantize(ref, k)
        hx, hr = (np.bincount(q.ravel(), minlength=k) / q.size for q in (qx, qr))
        mx, mr = x.mean(0) / 255.0, ref.mean(0) / 255.0
        return {
            "level_tv": float(0.5 * np.abs(hx - hr).sum()),
            "mean_image_rmse": float(np.sqrt(np.mean((mx - mr) ** 2))),
            "ink_fraction_gap": float(np.mean(qx > 0) - np.mean(qr > 0)),
            "num_samples": int(len(x)),
        }
