"""What the continuous-state image methods share: data, batching, sampling rounds, files,
evaluation.

:class:`ImageMethod` is the base of :class:`genmodels.models.flow.FlowImages` (rectified
flow / flow matching) and :class:`genmodels.models.pfgmpp.PFGMPPImages` (PFGM++ / EDM).
A subclass supplies the network (:meth:`ImageMethod.init_model`), the loss
(:meth:`ImageMethod.loss_fn`) and one jittable sampler call
(:meth:`ImageMethod._run_sampler`); the base class does the rest:

- data: :func:`genmodels.datasets.images.load_images` (``mnist``, ``cifar10`` or a PNG
  folder) as uint8 ``[N, H, W, C]``, checked against the UNet's sizes; batches stay uint8
  on the host and are mapped to ``[-1, 1]`` on the device by
  :func:`genmodels.domains.images.encode` (4x less host-to-device traffic);
- sampling: ``ceil(num / batch)`` rounds of one jitted sampler call (compiled once per
  batch size, sampler and step count), keys ``fold_in(key, round)``, decoded to uint8 by
  :func:`genmodels.domains.images.decode` (the only place images are clipped); when
  there are several devices and they divide the batch, the batch axis of the sampled
  state is sharded over them and the parameters are replicated (as GDSS and PARD do;
  the samples do not depend on it);
- files: ``.npz`` with uint8 ``images`` plus a PNG grid
  (:func:`genmodels.domains.images.write_images_npz`);
- evaluation: :func:`genmodels.metrics.images.image_metrics` (FID with Inception-v3
  features, and for MNIST a fast FID on a small classifier trained on the data set).
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
from flax import nnx
from tqdm.auto import tqdm

from genmodels.core.types import Array, ConstrainFn, Context, State
from genmodels.domains import images as dom
from genmodels.models.base import split_model
from genmodels.nets.unet import UNetConfig
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader
from genmodels.train.sharding import batch_sharded, data_mesh, replicated

__all__ = ["ImageMethod", "ImageMethodConfig", "batch_sharded_constrain", "sampling_mesh"]


def sampling_mesh(batch: int):
    """The data mesh over all devices when there are several and they divide ``batch``,
    else ``None`` (one device; the rule of GDSS and PARD)."""
    ndev = jax.device_count()
    return data_mesh() if ndev > 1 and batch % ndev == 0 else None


def batch_sharded_constrain(constrain: ConstrainFn, mesh) -> ConstrainFn:
    """``constrain`` followed by a sharding constraint that splits every leaf's batch axis
    over ``mesh`` (``constrain`` itself when ``mesh`` is ``None``).

    The samplers apply their ``constrain`` hook to the prior draw and after every update,
    so the state carried through the sampling loop is batch-sharded from the first step
    on, without the sampler knowing about devices.
    """
    if mesh is None:
        return constrain
    sharding = batch_sharded(mesh)

    def fn(state: State, ctx: Context) -> State:
        return jax.lax.with_sharding_constraint(constrain(state, ctx), sharding)

    return fn


@dataclass(frozen=True)
class ImageMethodConfig:
    """Fields every continuous image recipe has (subclassed per method).

    Attributes:
      dataset: ``mnist``, ``cifar10`` or a folder of PNG images (see
        :func:`genmodels.datasets.images.load_images`); training reads split ``train``.
      net: UNet sizes; ``img_resolution`` and ``in_channels`` must match the images.
      random_flip: random horizontal flips of training images (score_sde / rectified
        flow on CIFAR-10; wrong for digits).
      sampler: default sampler name (one of the method's ``samplers``).
      sample_steps: default number of sampler steps.
      sample_batch: images per jitted sampling call.
      sample_use_ema: sample with the EMA parameters.
      eval_inception: also compute the Inception-v3 FID in :meth:`ImageMethod.evaluate`
        (``False``: only the fast classifier FID).
    """

    dataset: str = "mnist"
    net: UNetConfig = field(default_factory=UNetConfig)
    random_flip: bool = False
    sampler: str = ""
    sample_steps: int = 100
    sample_batch: int = 256
    sample_use_ema: bool = True
    eval_inception: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


class ImageMethod:
    """Base class of the image methods (module docstring).

    Attributes:
      config: the recipe config (an :class:`ImageMethodConfig` subclass).
      samplers: sampler names; the first is the default.
      checkpoint_dir: the folder the parameters were loaded from (set by
        :func:`genmodels.models.run.load_recipe_model`); sampler artefacts stored next to
        a checkpoint (BOSS time grids) are looked up there.
    """

    samplers: tuple[str, ...] = ()
    sample_suffix = ".npz"
    checkpoint_dir: Path | None = None
    #: the state leaf (one process per leaf, DESIGN.md)
    leaf = "image"

    def __init__(self, config: ImageMethodConfig):
        net = config.net
        if net.in_channels != net.out_channels:
            raise ValueError(
                f"the UNet must output as many channels as it reads: in_channels="
                f"{net.in_channels}, out_channels={net.out_channels}"
            )
        if config.sampler not in self.samplers:
            raise ValueError(
                f"unknown sampler {config.sampler!r} for {type(self).__name__}; "
                f"choose one of {self.samplers}"
            )
        self.config = config

    # ------------------------------------------------------------------ data
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the images the network reads and the samples."""
        n = self.config.net
        return (n.img_resolution, n.img_resolution, n.in_channels)

    def check_images(self, images: np.ndarray, what: str = "training images") -> np.ndarray:
        """``images`` as uint8 [N, H, W, C], checked against :attr:`image_shape`."""
        x = dom.to_nhwc(np.asarray(images), what=what)
        if x.shape[1:] != self.image_shape:
            raise ValueError(
                f"{what} of {self.config.dataset!r} are {x.shape[1:]} (H, W, C) but the "
                f"network expects {self.image_shape}: set net.img_resolution and "
                "net.in_channels / net.out_channels to match"
            )
        return x

    @cached_property
    def data(self) -> np.ndarray:
        """Training images, uint8 [N, H, W, C]."""
        from genmodels.datasets.images import load_images

        return self.check_images(load_images(self.config.dataset, "train"))

    def loader(self) -> ArrayLoader:
        c = self.config
        return ArrayLoader({"image": self.data}, batch_size=c.train.batch_size, seed=c.train.seed)

    def clean_state(self, batch: dict, key: Array) -> State:
        """The clean training state ``{"image": [B, H, W, C]}`` in [-1, 1] of a uint8 batch
        (with random horizontal flips when the config asks for them)."""
        x0, _ = dom.encode(jnp.asarray(batch["image"]))
        x = x0["image"]  # [B, H, W, C]
        if self.config.random_flip:
            flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
            x = jnp.where(flip, x[:, :, ::-1], x)
        return {self.leaf: x}

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> nnx.Module:
        raise NotImplementedError

    def loss_fn(self, model: nnx.Module, batch: dict, key: Array) -> tuple[Array, dict]:
        raise NotImplementedError

    # -------------------------------------------------------------- sampling
    def _run_sampler(
        self,
        net: nnx.Module,
        key: Array,
        batch: int,
        sampler: str,
        steps: int,
        extra: Any,
        constrain: ConstrainFn = dom.constrain,
    ) -> tuple[State, dict]:
        """One traced sampler call: ``(state, info)`` for ``batch`` images (subclass);
        ``constrain`` is the samplers' hook (the image domain's, with the batch sharding
        of :meth:`sample_states` when sharded)."""
        raise NotImplementedError

    def _resolve(
        self, sampler: str | None, steps: int | None, options: dict
    ) -> tuple[str, int, Any]:
        """Sampler name, step count and the array argument of the jitted call (e.g. a BOSS
        time grid, so new grids do not recompile); consumes its own ``options``."""
        sampler = sampler or self.config.sampler
        if sampler not in self.samplers:
            raise ValueError(
                f"unknown sampler {sampler!r} for {type(self).__name__}; "
                f"choose one of {self.samplers}"
            )
        steps = int(steps or self.config.sample_steps)
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        return sampler, steps, None

    def sample_states(
        self,
        model: nnx.Module,
        key: Array,
        batch: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        **options: Any,
    ) -> tuple[State, dict]:
        """One jitted batch of raw sampled states.

        Args:
          model: the network.
          key: PRNG key of the prior draw.
          batch: images in the batch.
          sampler: sampler name (default: the config's).
          steps: sampler steps (default: the config's).
          options: method-specific sampler options (flow: ``grid``).

        Returns:
          ``(state, info)``: ``{"image": float32 [B, H, W, C]}`` (unclipped; sharded over
          the devices along the batch when :func:`sampling_mesh` gives a mesh) and
          ``info["nfe"]``, the number of network evaluations.
        """
        sampler, steps, extra = self._resolve(sampler, steps, dict(options))
        cache = self.__dict__.setdefault("_fn_cache", {})
        graphdef, params, rest = split_model(model)
        ckey = (batch, sampler, steps, graphdef)
        if ckey not in cache:
            mesh = sampling_mesh(batch)
            hook = batch_sharded_constrain(dom.constrain, mesh)

            @jax.jit
            def run(params, key, extra):
                net = nnx.merge(graphdef, params, rest)
                out, info = self._run_sampler(net, key, batch, sampler, steps, extra, hook)
                return out, {"nfe": info["nfe"]}

            cache[ckey] = run, mesh
        run, mesh = cache[ckey]
        if mesh is not None:
            # parameters (e.g. restored onto one device) replicated over the batch's devices
            params = jax.device_put(params, replicated(mesh))
        return run(params, key, extra)

    def sample(
        self,
        model: nnx.Module,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        return_nfe: bool = False,
        **options: Any,
    ) -> np.ndarray | tuple[np.ndarray, int]:
        """``num`` images, uint8 [num, H, W, C] (and the sampler's NFE with ``return_nfe``).

        Args:
          model: the network (EMA parameters for the recipes' samples).
          key: PRNG key; round ``r`` uses ``fold_in(key, r)``.
          num: number of images.
          sampler: sampler name (default: the config's).
          steps: sampler steps (default: the config's).
          batch_size: images per jitted call (default: ``sample_batch``).
          progress: tqdm bar over the rounds.
          return_nfe: also return the number of network evaluations per image.
          options: method-specific sampler options (flow: ``grid``).
        """
        sampler, steps, extra = self._resolve(sampler, steps, dict(options))
        batch = min(batch_size or self.config.sample_batch, max(num, 1))
        rounds = math.ceil(num / batch)
        out, nfe = [], 0
        for r in tqdm(range(rounds), desc="sample", disable=not progress or rounds == 1):
            st, info = self.sample_states(
                model,
                jax.random.fold_in(key, r),
                batch,
                sampler=sampler,
                steps=steps,
                **({} if extra is None else {"grid": extra}),
            )
            out.append(dom.decode(st))
            nfe = int(info["nfe"])
        images = np.concatenate(out)[:num] if out else np.zeros((0, *self.image_shape), np.uint8)
        return (images, nfe) if return_nfe else images

    # ------------------------------------------------------------ files, metrics
    def write_samples(self, samples: np.ndarray, path: Path) -> None:
        """``.npz`` with uint8 ``images`` [N, H, W, C] and a PNG grid of the first 100."""
        dom.write_images_npz(path, samples)

    def read_samples(self, path: Path) -> np.ndarray:
        return dom.read_images_npz(path)

    def evaluate(
        self, samples: np.ndarray, split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """FID of the samples against a split of the data set.

        Calls :func:`genmodels.metrics.images.image_metrics`: the Inception-v3 FID when
        ``eval_inception``, and the fast FID on features of a small classifier trained on
        the data set where one ships (MNIST).

        Args:
          samples: uint8 [N, H, W, C] of the network's shape, N >= 2.
          split: reference split of the data set.
          meta: the sample file's sidecar (unused).

        Returns:
          ``fid`` (with ``eval_inception``), ``fid_classifier`` (MNIST), ``num`` (as
          ``image_metrics`` returns them) and ``num_samples``.
        """
        from genmodels.metrics.images import image_metrics

        del meta
        x = self.check_images(samples, what="samples")
        out = image_metrics(
            x, dataset=self.config.dataset, split=split, inception=self.config.eval_inception
        )
        out = {
            k: (v if isinstance(v, int | float) or v is None else float(v)) for k, v in out.items()
        }
        out["num_samples"] = int(len(x))
        return out
