"""The task contract: what a data kind owns, independent of any method.

A task holds its data splits and padded training arrays (from a benchmark name or a
user's file), the size prior used when sampling (node / atom counts), the conversion
between sampled states and objects (through its domain adapter), sample-file read/write
and ``evaluate`` (through :mod:`genmodels.metrics`). It knows nothing of processes or
samplers; a method composes a task with a network and one process per state leaf.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from genmodels.errors import UsageError
from genmodels.train.data import ArrayLoader


class Task(Protocol):
    """Structural type every task satisfies (module docstring)."""

    #: file suffix of sample files (``.g6``, ``.smi``, ``.cif``, ``.npz``)
    sample_suffix: str
    #: suffixes :meth:`read_samples` accepts (the first is ``sample_suffix``)
    sample_suffixes: tuple[str, ...]
    #: split names ``evaluate(split=...)`` accepts
    eval_splits: tuple[str, ...]

    def train_arrays(self) -> dict[str, Any]:
        """Host arrays of the training split, one row per example (the loader's batches)."""
        ...

    def decode(self, state: dict, ctx: dict) -> Any:
        """One sampled host batch -> that batch's objects."""
        ...

    def collate(self, parts: list, num: int, **options: Any) -> Any:
        """Join decoded batches and keep ``num`` samples (``options``: the task's own)."""
        ...

    def write_samples(self, samples: Any, path: Path) -> None: ...

    def read_samples(self, path: Path) -> Any:
        """A sample file's samples; DataError: a suffix not in ``sample_suffixes``, or an
        empty, binary, corrupt or wrong-kind file (individual bad samples are kept)."""
        ...

    def evaluate(self, samples: Any, split: str = "test", meta: dict | None = None) -> dict: ...

    def default_num_samples(self) -> int:
        """Samples per seed of the data kind's evaluation protocol."""
        ...


def array_loader(task: Task, train_cfg: Any) -> ArrayLoader:
    """A shuffling loader over ``task.train_arrays()`` with the recipe's batch size and seed."""
    return ArrayLoader(task.train_arrays(), batch_size=train_cfg.batch_size, seed=train_cfg.seed)


def check_split(split: str, splits: tuple[str, ...]) -> str:
    """``split`` if it is one of ``splits`` (a task's ``eval_splits``).

    Raises:
      UsageError: another name ("unknown split 'banana'; choose one of test, train").
    """
    if split not in splits:
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(splits)}")
    return split


def reference_split(splits: tuple[Any, Any], split: str) -> Any:
    """The ``train`` or ``test`` member of ``(train, test)`` (see :func:`check_split`)."""
    return splits[("train", "test").index(check_split(split, ("test", "train")))]


def concat_lists(parts: list[list], num: int) -> list:
    """Decoded batches (lists) joined, first ``num`` kept."""
    return [obj for part in parts for obj in part][:num]
