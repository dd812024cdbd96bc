"""What the command line needs from a method: the :class:`Method` protocol.

A recipe's config is a frozen dataclass with ``train`` (:class:`TrainConfig`), ``optim``
(:class:`OptimConfig`) and a ``build()`` method returning a :class:`Method`; the method
composes processes, a network, a domain adapter and sampler settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import jax
from flax import nnx

from genmodels.train.data import Loader


class Method(Protocol):
    """A trainable, sampleable, evaluable generative model for one domain."""

    config: Any
    #: sampler names accepted by ``sample(..., sampler=NAME)``; the first is the default
    samplers: tuple[str, ...]
    #: file suffix of the sample files (``.npz``, ``.g6``, ``.smi``, ``.cif``)
    sample_suffix: str
    #: suffixes ``read_samples`` accepts (the first is ``sample_suffix``)
    sample_suffixes: tuple[str, ...]
    #: split names ``evaluate(split=...)`` accepts
    eval_splits: tuple[str, ...]

    def init_model(self, key: jax.Array) -> nnx.Module: ...

    def loss_fn(self, model: nnx.Module, batch: dict, key: jax.Array) -> tuple[jax.Array, dict]: ...

    def loader(self) -> Loader: ...

    def sample(self, model, key, num, *, sampler=None, steps=None, **options) -> Any: ...

    def write_samples(self, samples: Any, path: Path) -> None: ...

    def read_samples(self, path: Path) -> Any: ...

    def evaluate(
        self, samples: Any, split: str = "test", meta: dict | None = None
    ) -> dict[str, float]: ...


def split_model(model: nnx.Module):
    """``(graphdef, params, rest)``: a pure view of an nnx module for jitted sampling."""
    return nnx.split(model, nnx.Param, ...)
