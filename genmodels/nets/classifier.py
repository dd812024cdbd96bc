"""A small convolutional image classifier whose penultimate activations feed a fast FID.

For an image ``x`` [B, H, W, C] in [0, 1] and conv widths ``c_1, ..., c_L``::

    h^0 = x - 1/2
    h^l = MaxPool2x2(ReLU(Conv3x3(h^(l-1))))          # [B, H / 2^l, W / 2^l, c_l]
    phi(x) = ReLU(W_f flatten(h^L) + b_f)              # [B, F], the FID features
    logits = W_o phi(x) + b_o                          # [B, K]

The classifier FID (the "FID with a dataset-specific classifier" of, e.g., the MNIST
experiments of diffusion and flow-matching papers) is the Frechet distance between
Gaussians fitted to ``phi`` of generated and of real images: cheaper than Inception-v3 and
sharper on 28 x 28 digits, but comparable only between models scored with the same
classifier weights (:mod:`genmodels.metrics.images` ships them).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from flax import nnx

Array = jax.Array

__all__ = ["ClassifierConfig", "ImageClassifier"]


def _max_pool2(h: Array) -> Array:
    """2 x 2 max pooling with stride 2 (an odd trailing row/column is dropped)."""
    b, hh, ww, c = h.shape
    h = h[:, : hh // 2 * 2, : ww // 2 * 2]
    return h.reshape(b, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))


class ImageClassifier(nnx.Module):
    """Conv-ReLU-pool stages, one ReLU feature layer, then class logits (module docstring).

    Args:
      height, width, in_channels: input image shape (``[B, H, W, C]``).
      channels: widths ``c_l`` of the conv stages (each halves the resolution).
      features: width ``F`` of the feature layer.
      classes: number of classes ``K``.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        height: int = 28,
        width: int = 28,
        in_channels: int = 1,
        *,
        channels: tuple[int, ...] = (16, 32),
        features: int = 128,
        classes: int = 10,
        rngs: nnx.Rngs,
    ):
        self.input_shape = (height, width, in_channels)
        widths = (in_channels, *channels)
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, kernel_size=(3, 3), padding="SAME", rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:])
            ]
        )
        h, w = height, width
        for _ in channels:
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"{len(channels)} pooling stages shrink {height}x{width} to nothing")
        self.feature = nnx.Linear(h * w * widths[-1], features, rngs=rngs)
        self.out = nnx.Linear(features, classes, rngs=rngs)

    def features(self, x: Array) -> Array:
        """Args: x [B, H, W, C] in [0, 1]. Returns: phi(x) [B, F] (post-ReLU)."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"expected images [B, {', '.join(map(str, self.input_shape))}], got {x.shape}"
            )
        h = x - 0.5  # centred inputs: the first conv's bias need not learn the offset
        for conv in self.convs:
            h = _max_pool2(jax.nn.relu(conv(h)))
        return jax.nn.relu(self.feature(h.reshape(h.shape[0], -1)))

    def __call__(self, x: Array) -> Array:
        """Args: x [B, H, W, C] in [0, 1]. Returns: logits [B, K]."""
        return self.out(self.features(x))


@dataclass(frozen=True)
class ClassifierConfig:
    """Sizes of an :class:`ImageClassifier`.

    Attributes:
      channels: conv stage widths.
      features: feature layer width.
      classes: number of classes.
    """

    channels: tuple[int, ...] = (16, 32)
    features: int = 128
    classes: int = 10

    def make(self, height: int, width: int, in_channels: int, rngs: nnx.Rngs) -> ImageClassifier:
        """The classifier for ``[B, height, width, in_channels]`` images."""
        return ImageClassifier(
            height,
            width,
            in_channels,
            channels=self.channels,
            features=self.features,
            classes=self.classes,
            rngs=rngs,
        )
