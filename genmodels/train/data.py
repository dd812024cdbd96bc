"""Deterministic, resumable batch sources.

A loader maps a step index to a batch, so the data-iterator position of a run is just its
step: a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class Loader(Protocol):
    """Anything with ``batch(step) -> dict[str, np.ndarray]`` and a batch size."""

    batch_size: int

    def batch(self, step: int) -> dict[str, np.ndarray]: ...


@dataclass
class ArrayLoader:
    """Shuffled mini-batches of in-memory arrays, reshuffled each epoch.

    The permutation of epoch ``e`` is drawn from ``np.random.default_rng([seed, e])`` and
    the last incomplete batch of an epoch is dropped, so ``batch(step)`` is a pure function
    of ``(seed, step)``.

    Args:
      arrays: name -> array with a shared leading axis (the examples).
      batch_size: examples per batch (at most the number of examples).
      seed: shuffling seed.
      shuffle: shuffle each epoch (else keep the order).
    """

    arrays: Mapping[str, np.ndarray]
    batch_size: int
    seed: int = 0
    shuffle: bool = True
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        sizes = {k: len(v) for k, v in self.arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"arrays have different leading sizes: {sizes}")
        self.num_examples = next(iter(sizes.values()))
        if self.num_examples == 0:
            raise ValueError("ArrayLoader got no examples")
        if self.batch_size > self.num_examples:
            # Small data sets (e.g. 80 training graphs, batch 128): sample with wrap-around
            # inside one epoch so every batch still has batch_size examples.
            self.steps_per_epoch = 1
        else:
            self.steps_per_epoch = self.num_examples // self.batch_size

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            n = self.num_examples
            if self.shuffle:
                rng = np.random.default_rng([self.seed, epoch])
                reps = -(-self.batch_size // n)
                perm = np.concatenate([rng.permutation(n) for _ in range(reps)])
            else:
                perm = np.resize(np.arange(n), max(n, self.batch_size))
            self._cache = {epoch: perm}
        return self._cache[epoch]

    def batch(self, step: int, rows: slice | None = None) -> dict[str, np.ndarray]:
        """The batch of ``step``; ``rows`` (multi-process: this process's share) reads only
        those examples of it."""
        epoch, i = divmod(step, self.steps_per_epoch)
        idx = self._perm(epoch)[i * self.batch_size : (i + 1) * self.batch_size]
        if rows is not None:
            idx = idx[rows]
        return {k: np.asarray(v[idx]) for k, v in self.arrays.items()}


@dataclass
class FunctionLoader:
    """Batches from a pure function of the step (e.g. fresh draws from a toy density)."""

    fn: Callable[[int], dict[str, np.ndarray]]
    batch_size: int
    steps_per_epoch: int = 1

    def batch(self, step: int) -> dict[str, np.ndarray]:
        return self.fn(step)


@dataclass
class FlagLoader:
    """An :class:`ArrayLoader` whose batches also carry a schedule flag
    ``teacher_forcing`` [B] (1 while ``step < teacher_forcing_steps``; one value per
    example, so it shards like the data; CDVAE's teacher forcing)."""

    inner: ArrayLoader
    teacher_forcing_steps: int

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    @property
    def steps_per_epoch(self) -> int:
        return self.inner.steps_per_epoch

    def batch(self, step: int, rows: slice | None = None) -> dict[str, np.ndarray]:
        out = self.inner.batch(step, rows)
        on = np.float32(step < self.teacher_forcing_steps)
        out["teacher_forcing"] = np.full((len(next(iter(out.values()))),), on, np.float32)
        return out


def local_batch(loader: Loader, step: int, rows: slice) -> dict[str, np.ndarray]:
    """Rows ``rows`` of the global batch of ``step``: read alone when the loader can
    (:class:`ArrayLoader`), else cut from the whole batch."""
    try:
        return loader.batch(step, rows)  # type: ignore[call-arg]
    except TypeError:
        return {k: v[rows] for k, v in loader.batch(step).items()}
