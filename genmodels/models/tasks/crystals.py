"""Periodic crystals (perov_5, carbon_24, mp_20, or a user's path): CDVAE's data kind.

State ``{"frac": [B, N, 3], "types": [B, N] int32 (class ``Z - 1``), "lattice": [B, 6]}``
with ``num_atoms`` [B] (:class:`~genmodels.domains.crystals.CrystalDomain`, canonical
Niggli cells); the splits are the benchmark's CSVs (a user's path:
:func:`~genmodels.datasets.crystals.load_user_crystals`); the atom-count prior is the training
split's counts; samples are one CIF file with a ``data_`` block per crystal; ``evaluate``
is CDVAE's generation metrics and :meth:`CrystalTask.evaluate_reconstruction` its
reconstruction metrics (:mod:`genmodels.metrics.crystals`).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from genmodels.core.types import Context, State
from genmodels.datasets import crystals as dsc
from genmodels.datasets.user import UserData, is_user_path
from genmodels.domains.crystals import CrystalDomain, read_cif, write_cif
from genmodels.domains.files import check_suffix
from genmodels.errors import DataError
from genmodels.models.tasks.base import check_split

__all__ = ["CrystalTask"]

#: the keys of a batch of crystals as padded host arrays
ARRAY_KEYS = ("frac", "types", "lattice", "num_atoms")


class CrystalTask:
    """The crystals of one benchmark (module docstring).

    Args:
      dataset: ``perov_5``, ``carbon_24``, ``mp_20`` or a user's path (then ``max_atoms``
        is the data's largest count, ``train_split`` is ``train`` and :attr:`elements`
        are the data's elements).
      max_atoms: largest atom count (the domain's padding).
      num_types: atom classes (class ``k`` is atomic number ``k + 1``).
      data: the options of a user's path.
      train_split: the split trained on.
      train_limit, eval_limit: read only the first rows of the training / other splits.

    Raises:
      ValueError: an unknown dataset.
    """

    sample_suffix = ".cif"
    sample_suffixes, eval_splits = (".cif",), ("test", "val", "train")

    def __init__(
        self,
        dataset: str,
        max_atoms: int,
        num_types: int = 100,
        *,
        data: UserData = UserData(),
        train_split: str = "train",
        train_limit: int | None = None,
        eval_limit: int | None = None,
    ):
        self.user, self.data, self.name = is_user_path(dataset), data, dataset
        if not self.user and dataset not in dsc.CRYSTAL_DATASETS:
            names = ", ".join(dsc.CRYSTAL_DATASETS)
            raise ValueError(f"unknown crystal dataset {dataset!r}; choose one of {names}")
        self.train_split = "train" if self.user else train_split
        self.limits = {"train": train_limit, "eval": eval_limit}
        self._datasets: dict[str, dsc.CrystalDataset] = {}
        self.elements: tuple[int, ...] | None = None  # a user's data: its atomic numbers
        if self.user:
            splits = [self.dataset(s).arrays for s in ("train", "test")]
            max_atoms = max(int(a.num_atoms.max()) for a in splits)
            self.elements = tuple(np.unique(np.concatenate([a.atomic_numbers for a in splits])))
            if self.elements[-1] > num_types:  # class k is atomic number k + 1
                raise DataError(f"{dataset}: atomic number {self.elements[-1]} > {num_types}")
        self.domain = CrystalDomain(max_atoms, num_types, one_hot_types=False)
        self._arrays: dict[str, dict[str, np.ndarray]] = {}
        self._fingerprints: dict[str, tuple] = {}

    # ------------------------------------------------------------------ data
    def dataset(self, split: str) -> dsc.CrystalDataset:
        """One split, parsed and cached (the training or evaluation row limit applied)."""
        if self.user and split not in self._datasets:
            self._datasets[split] = dsc.load_user_crystals(self.name, self.data, split)
        elif split not in self._datasets:
            limit = self.limits["train" if split == self.train_split else "eval"]
            self._datasets[split] = dsc.load_crystals(self.name, split, limit=limit)
        return self._datasets[split]

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """Padded host arrays: ``frac`` [M, N, 3], ``types`` [M, N] int32, ``lattice``
        [M, 6], ``num_atoms`` [M] int32 and ``property`` [M] (raw), ``N`` the split's
        largest atom count (perov_5: 5, not ``max_atoms``; the networks cost ``N^2``)."""
        if split not in self._arrays:
            ds = self.dataset(split)
            state, ctx = self.domain.encode_arrays(ds.arrays)
            n = max(int(np.max(ctx["num_atoms"])), 1)
            self._arrays[split] = {
                "frac": np.asarray(state["frac"][:, :n], np.float32),
                "types": np.asarray(state["types"][:, :n], np.int32),
                "lattice": np.asarray(state["lattice"], np.float32),
                "num_atoms": np.asarray(ctx["num_atoms"], np.int32),
                "property": np.asarray(ds.properties, np.float32),
            }
        return self._arrays[split]

    def train_arrays(self) -> dict[str, np.ndarray]:
        """:meth:`arrays` of the training split."""
        return self.arrays(self.train_split)

    def scaler_stats(self, eps: float) -> dict[str, np.ndarray]:
        """Training-split statistics: mean and population std (plus ``eps``) of
        ``[lengths / N^(1/3), angles]`` (CDVAE ``scale_length``, ``StandardScalerTorch``)
        as ``lattice_mean``, ``lattice_std`` [6] and of the property (NaN ignored) as
        ``property_mean``, ``property_std``."""
        a = self.train_arrays()
        lat = a["lattice"].astype(np.float64)
        scaled = np.concatenate([lat[:, :3] / a["num_atoms"][:, None] ** (1 / 3), lat[:, 3:]], 1)
        prop = a["property"].astype(np.float64)
        ok = np.isfinite(prop).any()
        mean, std = (np.nan_to_num(f(prop)) if ok else 0.0 for f in (np.nanmean, np.nanstd))
        return {
            "lattice_mean": scaled.mean(0).astype(np.float32),
            "lattice_std": (scaled.std(0) + eps).astype(np.float32),
            "property_mean": np.float32(mean),
            "property_std": np.float32(std + eps),
        }

    @cached_property
    def count_sampler(self):
        """``(key, batch) -> ctx`` with atom counts drawn from the training crystals (for
        methods without a count head)."""
        return self.domain.num_atoms_sampler(self.train_arrays()["num_atoms"])

    # ------------------------------------------------------ arrays <-> objects
    def decode(self, state: State, ctx: Context) -> list[Structure | None]:
        """Structures of a host batch; ``None`` where the lattice admits no cell."""
        return self.domain.decode(state, ctx)

    def decode_arrays(self, out: dict) -> list[Structure | None]:
        """:meth:`decode` of ``{frac, types, lattice, num_atoms}`` arrays."""
        state = {k: out[k] for k in ("frac", "types", "lattice")}
        return self.decode(state, {"num_atoms": out["num_atoms"]})

    @staticmethod
    def collate(parts: list[dict], num: int) -> dict[str, np.ndarray]:
        """Host array batches padded to different atom counts, joined; first ``num`` kept."""
        n = max(p["frac"].shape[1] for p in parts)
        out: dict[str, list] = {k: [] for k in ARRAY_KEYS}
        for p in parts:
            pad = n - p["frac"].shape[1]
            out["frac"].append(np.pad(np.asarray(p["frac"]), ((0, 0), (0, pad), (0, 0))))
            out["types"].append(np.pad(np.asarray(p["types"]), ((0, 0), (0, pad))))
            out["lattice"].append(np.asarray(p["lattice"]))
            out["num_atoms"].append(np.asarray(p["num_atoms"]))
        return {k: np.concatenate(v)[:num] for k, v in out.items()}

    def write_samples(self, samples: list[Structure | None], path: Path) -> None:
        write_cif(samples, path)

    def read_samples(self, path: Path) -> list[Structure | None]:
        return read_cif(check_suffix(path, self.sample_suffixes, "crystals"), keep_failed=True)

    def default_num_samples(self) -> int:
        """1,000 crystals per seed (the shipped metrics' protocol)."""
        return 1000

    # ---------------------------------------------------------------- metrics
    def fingerprints(self, split: str):
        """The split's CrystalNN / composition fingerprints: in memory, else from the metric
        disk cache (keyed by the split's csv checksum and parsed arrays), else computed
        with one worker per CPU (minutes for a test split)."""
        if split not in self._fingerprints:
            from genmodels.metrics.cache import content_digest, data_checksums
            from genmodels.metrics.crystals import fingerprints_cached

            ds, a = self.dataset(split), self.dataset(split).arrays
            files = data_checksums(self.name, [f"crystals/{self.name}/{split}.csv"])
            arrays = content_digest([a.frac, a.atomic_numbers, a.num_atoms, a.lattice])
            key = {"dataset": self.name, "split": split, "files": files, "arrays": arrays}
            jobs = max(1, min(os.cpu_count() or 1, 8))
            self._fingerprints[split] = fingerprints_cached(
                ds.structures(), key, n_jobs=jobs, progress=f"fingerprints ({self.name} {split})"
            )
        return self._fingerprints[split]

    def evaluate(
        self, samples: list[Structure | None], split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """CDVAE's generation metrics against ``split`` (validity, COV-R/P, density,
        element-count and, with a shipped property model, property Wasserstein distances,
        diversity; :func:`~genmodels.metrics.crystals.generation_metrics`)."""
        from genmodels.metrics.crystals import generation_metrics
        from genmodels.metrics.property_model import property_inputs

        del meta
        check_split(split, self.eval_splits)
        ref = self.dataset(split).structures()
        out = generation_metrics(
            list(samples), ref, "mp_20" if self.user else self.name,  # a user's: mp_20 cutoffs
            test_fingerprints=self.fingerprints(split), progress="fingerprints (samples)",
            **property_inputs(self.name, self.dataset(split).arrays),
        )  # fmt: skip
        out = {k: float(v) for k, v in out.items()}
        out["num_reference"] = float(len(ref))
        return out

    def evaluate_reconstruction(
        self, pred: list[Structure | None], split: str = "test"
    ) -> dict[str, float]:
        """Match rate and RMSE of reconstructions of the first ``len(pred)`` crystals of
        ``split`` (:func:`~genmodels.metrics.crystals.reconstruction_metrics`)."""
        from genmodels.metrics.crystals import reconstruction_metrics

        true = self.dataset(split).structures()[: len(pred)]
        return reconstruction_metrics(list(pred), true)
