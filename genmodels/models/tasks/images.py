"""Images (MNIST, CIFAR-10, a user's image folder or ``.npz``): the image data kind.

Training images stay uint8 ``[N, H, W, C]`` on the host (4x less host-to-device traffic)
and become the state ``{"image": [B, H, W, C]}`` in [-1, 1] on the device
(:func:`genmodels.domains.images.encode`), with optional random horizontal flips.
Sampled states are decoded to uint8 (:func:`~genmodels.domains.images.decode`, the only
place images are clipped); samples are ``.npz`` files with uint8 ``images`` plus a PNG
grid; ``evaluate`` is the FID of :func:`genmodels.metrics.images.image_metrics`
(Inception-v3, and a fast FID on a small classifier trained on the data set where one
ships, or the MNIST one for a user's 28 x 28 gray images) against the test split.

:class:`ImageTaskConfig` holds the fields every continuous image recipe has; a method's
image config adds its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.types import Array, Context, State
from genmodels.datasets.user import UserData
from genmodels.domains import images as dom
from genmodels.domains.files import check_suffix
from genmodels.models.tasks.base import check_split
from genmodels.nets.unet import UNetConfig
from genmodels.processes.base import corrupt_state
from genmodels.samplers.guidance import Conditioning, condition_context, drop_condition
from genmodels.train.config import OptimConfig, TrainConfig


class ImageTask:
    """Images of one data set (module docstring).

    Args:
      dataset: ``mnist``, ``cifar10``, a user's image folder or ``.npz``
        (:func:`genmodels.datasets.images.load_image_set`; ``data`` splits a user's).
      shape: ``(H, W, C)`` the network reads and samples have.
      random_flip: random horizontal flips of training images (wrong for digits).
      eval_inception: also compute the Inception-v3 FID in :meth:`evaluate`.
      size_flags: ``(H, W, C) ->`` the options that fit the network to such images.
      condition: a ``label`` condition trains on the class labels (``p_uncond`` dropped).
    """

    sample_suffix = ".npz"
    sample_suffixes, eval_splits = (".npz",), ("test", "train")

    def __init__(
        self,
        dataset: str,
        shape: tuple[int, int, int],
        *,
        data: UserData | None = None,
        random_flip: bool = False,
        eval_inception: bool = True,
        size_flags=UNetConfig.fit_options,
        condition: Conditioning = Conditioning(),
    ):
        self.dataset, self.shape, self.user_data = dataset, tuple(shape), data or UserData()
        self.random_flip, self.eval_inception = random_flip, eval_inception
        self.size_flags, self.condition = size_flags, condition

    def check_images(self, images: np.ndarray, what: str = "training images") -> np.ndarray:
        """``images`` as uint8 [N, H, W, C], checked against :attr:`shape`."""
        return dom.check_shape(images, self.shape, what, self.dataset, self.size_flags)

    def split_images(self, split: str) -> np.ndarray:
        """uint8 [N, H, W, C] images of ``split``, checked (``train``: :attr:`data`)."""
        from genmodels.datasets.images import load_images

        x = load_images(self.dataset, split, self.user_data)
        return self.check_images(x, f"{split} images")

    @cached_property
    def data(self) -> np.ndarray:
        """Training images, uint8 [N, H, W, C]."""
        return self.split_images("train")

    def train_arrays(self) -> dict[str, np.ndarray]:
        """``image`` uint8 [N, H, W, C], and ``label`` int32 [N] for a label condition."""
        from genmodels.datasets.images import load_labels

        if not self.condition.kind:
            return {"image": self.data}
        k, n = self.condition.num_classes, len(self.data)
        return {"image": self.data, "label": load_labels(self.dataset, k, n, self.user_data)}

    def dense_batch(self, batch: dict, key: Array | None = None) -> tuple[State, Context]:
        """A uint8 batch -> ``({"image": [B, H, W, C] in [-1, 1]}, ctx)``, flipped at random
        (``key``) when the task asks for it; ``ctx`` holds the batch's labels as the
        condition, each dropped with probability ``p_uncond`` (given a ``key``). Traceable."""
        x = dom.encode(jnp.asarray(batch["image"]))[0]["image"]  # [B, H, W, C]
        if self.random_flip and key is not None:
            flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
            x = jnp.where(flip, x[:, :, ::-1], x)
        ctx = condition_context({}, batch["label"]) if "label" in batch else {}
        if key is not None:  # training: drop conditions (a no-op without one)
            ctx = drop_condition(jax.random.fold_in(key, 1), ctx, self.condition.p_uncond)
        return {"image": x}, ctx

    def sample_context(self, key: Array, batch: int) -> tuple[Context, Array]:
        """``(ctx, prior key)`` of a sampling round: images have no context."""
        del batch
        return {}, key

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        return {"image": (batch, *self.shape)}

    def constrain(self, state: State, ctx: Context) -> State:
        return dom.constrain(state, ctx)

    def decode(self, state: State, ctx: Context) -> np.ndarray:
        return dom.decode(state, ctx)

    def collate(self, parts: list[np.ndarray], num: int) -> np.ndarray:
        """Decoded batches joined, first ``num`` kept: uint8 [num, H, W, C]."""
        return np.concatenate(parts)[:num] if parts else np.zeros((0, *self.shape), np.uint8)

    def write_samples(self, samples: np.ndarray, path: Path) -> None:
        """``.npz`` with uint8 ``images`` [N, H, W, C] and a PNG grid of the first 100."""
        dom.write_images_npz(path, samples)

    def read_samples(self, path: Path) -> np.ndarray:
        return dom.read_images_npz(check_suffix(path, self.sample_suffixes, "images"))

    def default_num_samples(self) -> int:
        """10,000 (the FID protocol of the recipes' metrics)."""
        return 10_000

    def evaluate(
        self, samples: np.ndarray, split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """FID of uint8 samples (N >= 2) against ``split``: ``fid`` (with
        ``eval_inception``), ``fid_classifier`` (MNIST), ``num`` and ``num_samples``; for
        samples of one requested class (``meta["label"]``, the sample file's sidecar)
        ``class_accuracy``, the fraction the shipped classifier assigns to it."""
        from genmodels.metrics.images import class_accuracy, image_metrics

        check_split(split, self.eval_splits)
        x = self.check_images(samples, what="samples")
        kw = dict(inception=self.eval_inception, data=self.user_data)
        out = {**image_metrics(x, self.dataset, split, **kw), "num_samples": int(len(x))}
        if (meta or {}).get("label") is not None:
            out["class_accuracy"] = class_accuracy(x, int(meta["label"]), self.dataset)
        return out


@dataclass(frozen=True)
class ImageTaskConfig:
    """Fields of every continuous image recipe (PFGM++, flow; each adds its own).

    Attributes:
      dataset: ``mnist``, ``cifar10``, a user's image folder or ``.npz``.
      data: how a user's data is split.
      net: UNet sizes; ``img_resolution`` and ``in_channels`` must match the images.
      random_flip: random horizontal flips of training images (score_sde / rectified
        flow on CIFAR-10; wrong for digits).
      sampler: default sampler (a registry name, ``genmodels samplers RECIPE``).
      sample_steps: default number of sampler steps.
      sample_batch: images per jitted sampling call (at most the number asked for).
      sample_use_ema: sample with the EMA parameters.
      eval_inception: also compute the Inception-v3 FID (``False``: only the fast one).
      condition: class-conditional training (``net.label_dim`` = its ``num_classes``).
    """

    dataset: str = "mnist"
    data: UserData = UserData()
    net: UNetConfig = field(default_factory=UNetConfig)
    random_flip: bool = False
    sampler: str = ""
    sample_steps: int = 100
    sample_batch: int = 256
    sample_use_ema: bool = True
    eval_inception: bool = True
    condition: Conditioning = Conditioning()
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    #: the training noise of the leaves: each process's kernel, independently
    corrupt: ClassVar = staticmethod(corrupt_state)
    #: a round of ``sample_batch`` images even when fewer are asked for (no: UNets are
    #: costly, and the samples of ``num >= sample_batch`` do not depend on it)
    whole_batches: ClassVar[bool] = False

    def task(self) -> ImageTask:
        n = self.net
        if n.in_channels != n.out_channels:
            raise ValueError(
                f"the UNet must output as many channels as it reads: in_channels="
                f"{n.in_channels}, out_channels={n.out_channels}"
            )
        if n.label_dim != self.condition.num_classes:
            raise ValueError(f"net.label_dim must be condition.num_classes, got {n.label_dim}")
        shape = (n.img_resolution, n.img_resolution, n.in_channels)
        kw = dict(data=self.data, random_flip=self.random_flip, eval_inception=self.eval_inception)
        return ImageTask(self.dataset, shape, **kw, condition=self.condition)
