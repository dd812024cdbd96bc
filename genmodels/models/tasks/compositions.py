"""Crystal compositions (the atom types of perov_5, carbon_24, mp_20 or a user's path).

A crystal with ``n`` atoms is a row ``types`` [N] of element indices into the vocabulary
(atoms sorted by atomic number, -1 beyond ``n``; ``N``: the training split's largest
count, perov_5 5); sampling draws atom counts from the training crystals. Samples are
``.txt`` files, one ``Composition.formula`` a line (``Ca1 Ti1 O3``); ``evaluate`` is
:func:`genmodels.metrics.crystals.composition_metrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Element, Structure

from genmodels.core.types import Context, State
from genmodels.datasets.user import UserData, is_user_path
from genmodels.domains.crystals import (
    CrystalDomain,
    as_composition,
    read_compositions,
    write_compositions,
)
from genmodels.domains.files import check_suffix
from genmodels.models.tasks.base import check_split, concat_lists


class CompositionTask:
    """The compositions of one crystal data set (module docstring).

    Args:
      dataset: ``perov_5``, ``carbon_24``, ``mp_20`` or a user's path (its splits ``train``
        and ``test``: :func:`~genmodels.datasets.crystals.load_user_crystals` with ``data``).
      train_split: split trained on (its atom counts are sampled, its largest is N).
      eval_split: default reference split of :meth:`evaluate`.
      train_limit, eval_limit: load only the first rows of the training / other splits.
      elements: the vocabulary as element symbols (``None``: every element of
        ``train_split`` and ``eval_split``, sorted by atomic number).
      data: the options of a user's path.
    """

    sample_suffix = ".txt"
    sample_suffixes, eval_splits = (".txt",), ("test", "val", "train")

    def __init__(
        self,
        dataset: str,
        train_split: str = "train",
        eval_split: str = "test",
        train_limit: int | None = None,
        eval_limit: int | None = None,
        elements: Sequence[str] | None = None,
        data: UserData = UserData(),
    ):
        from genmodels.datasets.crystals import CRYSTAL_DATASETS

        self.user, self.data = is_user_path(dataset), data
        if not self.user and dataset not in CRYSTAL_DATASETS:
            raise ValueError(
                f"unknown crystal data set {dataset!r}; choose one of {tuple(CRYSTAL_DATASETS)}"
            )
        if self.user:
            train_split, eval_split = "train", "test"
        self.dataset_name, self.train_split, self.eval_split = dataset, train_split, eval_split
        self.train_limit, self.eval_limit, self.vocab = train_limit, eval_limit, elements
        self._datasets: dict = {}
        self._compositions: dict[str, list[Composition]] = {}

    def dataset(self, split: str):
        """One split (:class:`~genmodels.datasets.crystals.CrystalDataset`), cached."""
        from genmodels.datasets.crystals import load_crystals, load_user_crystals

        if self.user and split not in self._datasets:
            self._datasets[split] = load_user_crystals(self.dataset_name, self.data, split)
        elif split not in self._datasets:
            limit = self.train_limit if split == self.train_split else self.eval_limit
            self._datasets[split] = load_crystals(self.dataset_name, split, limit=limit)
        return self._datasets[split]

    def atomic_numbers(self, split: str) -> list[np.ndarray]:
        """The atomic numbers of every crystal of ``split`` (one int64 array each)."""
        a = self.dataset(split).arrays
        return np.split(np.asarray(a.atomic_numbers, np.int64), a.offsets[1:-1])

    def compositions(self, split: str) -> list[Composition]:
        """The compositions of every crystal of ``split``, cached."""
        if split not in self._compositions:
            self._compositions[split] = [
                Composition(Counter(Element.from_Z(int(z)).symbol for z in zs))
                for zs in self.atomic_numbers(split)
            ]
        return self._compositions[split]

    @cached_property
    def elements(self) -> tuple[str, ...]:
        """The vocabulary: token k is ``elements[k]``."""
        if self.vocab is not None:
            syms = [Element(s).symbol for s in self.vocab]
            if len(set(syms)) != len(syms) or not syms:
                raise ValueError(f"elements must be distinct and non-empty, got {self.vocab}")
            return tuple(syms)
        zs: set[int] = set()
        for split in dict.fromkeys((self.train_split, self.eval_split)):
            zs.update(int(z) for z in self.dataset(split).arrays.atomic_numbers)
        return tuple(Element.from_Z(z).symbol for z in sorted(zs))

    @property
    def num_types(self) -> int:
        """K, the vocabulary size."""
        return len(self.elements)

    @cached_property
    def train_counts(self) -> np.ndarray:
        """[M] atom counts of the training crystals."""
        return np.asarray(self.dataset(self.train_split).arrays.num_atoms, np.int64)

    @property
    def max_atoms(self) -> int:
        """N: the training split's largest atom count."""
        return int(self.train_counts.max())

    @cached_property
    def count_sampler(self):
        """``(key, batch) -> {"node_mask": [B, N], ...}`` with training atom counts."""
        domain = CrystalDomain(self.max_atoms, one_hot_types=False)
        return domain.num_atoms_sampler(self.train_counts)

    def token_rows(self, zs: Sequence[np.ndarray], n: int | None = None) -> np.ndarray:
        """int32 [C, n] token rows of crystals' atomic numbers (``n``: the largest count).

        Raises:
          ValueError: a crystal with no atom or more than ``n``, or an unknown element.
        """
        n = int(max((len(z) for z in zs), default=1)) if n is None else int(n)
        index = {Element(s).Z: k for k, s in enumerate(self.elements)}
        out = np.full((len(zs), n), -1, np.int32)
        for i, z in enumerate(zs):
            if not 1 <= len(z) <= n:
                raise ValueError(f"crystal {i} has {len(z)} atoms, outside 1..{n}")
            try:
                out[i, : len(z)] = [index[int(v)] for v in sorted(z)]
            except KeyError as e:
                sym = Element.from_Z(int(e.args[0])).symbol
                raise ValueError(
                    f"crystal {i} has {sym}, which is not in the vocabulary {self.elements}"
                ) from None
        return out

    def encode(self, objs: Sequence[Composition | Structure | str]) -> dict[str, np.ndarray]:
        """``{"types": [C, n]}`` rows (:meth:`token_rows`) of compositions or structures."""
        zs = []
        for o in objs:
            comp = as_composition(o)
            zs.append(np.repeat([el.Z for el in comp], [int(round(a)) for a in comp.values()]))
        return {"types": self.token_rows(zs)}

    def train_arrays(self) -> dict[str, np.ndarray]:
        """``types`` int32 [M, N] of the training crystals."""
        return {"types": self.token_rows(self.atomic_numbers(self.train_split), self.max_atoms)}

    def decode(self, state: State, ctx: Context) -> list[Composition]:
        """The compositions of a token batch ``{"types": [B, N]}`` (padding dropped).

        Raises:
          ValueError: a mask token (or any index outside the vocabulary) on a real atom.
        """
        types = np.asarray(state["types"])
        real = np.asarray(ctx["node_mask"]) > 0
        bad = real & ((types < 0) | (types >= self.num_types))
        if bad.any():
            i = int(np.argmax(bad.any(1)))
            raise ValueError(f"crystal {i} has tokens outside the vocabulary: {types[i]}")
        syms = np.asarray(self.elements)
        return [Composition(Counter(syms[types[i][real[i]]].tolist())) for i in range(len(types))]

    def collate(self, parts: list[list[Composition]], num: int) -> list[Composition]:
        return concat_lists(parts, num)

    def write_samples(self, samples: Sequence[Composition], path: Path) -> None:
        write_compositions(samples, path)

    def read_samples(self, path: Path) -> list[Composition]:
        return read_compositions(check_suffix(path, self.sample_suffixes, "compositions"))

    def default_num_samples(self) -> int:
        """1,000 per seed (the shipped metrics)."""
        return 1000

    def evaluate(
        self,
        samples: Sequence[Composition | Structure | str],
        split: str | None = None,
        meta: dict | None = None,
    ) -> dict[str, float]:
        """:func:`~genmodels.metrics.crystals.composition_metrics` against ``split``
        (default ``eval_split``), novelty against the training split.

        Raises:
          ValueError: no samples, or a sample that is not a composition of elements.
        """
        from genmodels.metrics.crystals import composition_metrics

        del meta
        check_split(split or self.eval_split, self.eval_splits)
        comps = [as_composition(s) for s in samples]
        if not comps:
            raise ValueError("evaluate got no samples")
        train = {c.reduced_formula for c in self.compositions(self.train_split)}
        return composition_metrics(comps, self.compositions(split or self.eval_split), train)
