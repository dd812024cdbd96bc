"""Molecules (QM9, ZINC250k, MOSES or a user's SMILES file) as GDSS's graphs.

Training arrays are atom classes ``types`` [M, N] (-1 on padding) and Kekule bond orders
``bonds`` [M, N, N]; the dense state is ``{"x": one-hot atom types, "adj": bond orders}``.
Decoding applies GDSS's rounding, charge rule, valency correction and largest-fragment
rule (:class:`~genmodels.domains.molecules.MoleculeDomain`) and keeps both the corrected
and the raw SMILES of every sample. ``evaluate`` gives validity (with and without
correction), uniqueness, novelty, FCD and NSPDK (MOSES metrics for MOSES). A user file's
vocabulary, size and split: :func:`~genmodels.datasets.molecules.load_user_molecules`.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.masks import graph_masks
from genmodels.core.types import Context, State
from genmodels.datasets.user import UserData, is_user_path, user_data_kind
from genmodels.errors import DataError, UsageError
from genmodels.models.tasks.base import check_split, reference_split
from genmodels.models.tasks.graphs import DenseGraphTask

#: molecule data sets
MOLECULE_DATASETS = ("qm9", "zinc250k", "moses")


def molecule_vocab(dataset: str, data: UserData | None = None) -> tuple[int, int]:
    """``(atom classes, max heavy atoms)`` of a benchmark (without loading it) or of a user
    file (its cached conversion, :func:`~genmodels.datasets.molecules.user_molecule_vocab`)."""
    from genmodels.datasets import molecules as mdata
    from genmodels.domains import molecules as mdom

    if is_user_path(dataset):
        atoms, max_atoms = mdata.user_molecule_vocab(dataset, data)
        return len(atoms), max_atoms
    return {
        "qm9": (len(mdom.QM9_ATOMS), mdata.QM9_MAX_ATOMS),
        "zinc250k": (len(mdom.ZINC_ATOMS), mdata.ZINC_MAX_ATOMS),
        "moses": (len(mdom.MOSES_ATOMS), mdata.MOSES_MAX_ATOMS),
    }[dataset]


def molecule_net(net, dataset: str, data: UserData):
    """GDSS network sizes ``net`` with a molecule file's atom classes and size as
    ``max_feat_num`` / ``max_node_num``; a benchmark name or other data keep ``net``."""
    if user_data_kind(dataset) != "molecules":
        return net
    f, n = molecule_vocab(dataset, data)
    return dataclasses.replace(net, max_feat_num=f, max_node_num=n)


class MolSample(NamedTuple):
    """One decoded molecule: canonical SMILES with and without valency correction
    (``""`` where decoding failed)."""

    smiles: str
    raw: str


class MoleculeTask(DenseGraphTask):
    """Molecules of one data set (module docstring).

    Args:
      dataset: qm9, zinc250k, moses or the path of a user's SMILES file.
      data: a user file's options (split, SMILES column, ``max_atoms``).
      index_offset: how the split file's ids map to rows (data/README.md).
      moses_limit: MOSES training molecules to load (``None``: all).
      eval_fcd, eval_nspdk: compute FCD (``metrics`` extra) and NSPDK in ``evaluate``.
      plain_validity: ``evaluate`` adds PARD's plain validity to the raw validity.
    """

    sample_suffix = ".smi"
    sample_suffixes, eval_splits = (".smi", ".txt", ".csv", ".csv.gz"), ("test", "train")

    def __init__(self, dataset: str, *, data: UserData | None = None, index_offset: int = 1,
                 moses_limit: int | None = None, eval_fcd=True, eval_nspdk=True,
                 plain_validity=False):  # fmt: skip
        kind = user_data_kind(dataset)
        if kind not in ("", "molecules"):
            raise DataError(f"--dataset {dataset} holds {kind}; a molecule recipe reads SMILES")
        if not kind and dataset not in MOLECULE_DATASETS:
            raise UsageError(f"unknown molecule data set {dataset!r}; choose one of "
                             f"{MOLECULE_DATASETS} or a .smi/.csv file")  # fmt: skip
        self.dataset, self.user_data = dataset, data or UserData()
        self.index_offset = index_offset
        self.moses_limit = moses_limit
        self.eval_fcd, self.eval_nspdk, self.plain_validity = eval_fcd, eval_nspdk, plain_validity
        self.num_atom_types, self.max_atoms = molecule_vocab(dataset, self.user_data)
        self.dims = (self.max_atoms, self.num_atom_types)
        self._ref_cache: dict[str, dict] = {}

    @classmethod
    def of(cls, config, **kw) -> MoleculeTask:
        """The task of a recipe config: its ``dataset``, ``data`` and the options above."""
        opts = ("index_offset", "moses_limit", "eval_fcd", "eval_nspdk")
        return cls(config.dataset, data=config.data, **{k: getattr(config, k) for k in opts}, **kw)

    @cached_property
    def data(self):
        """The :class:`~genmodels.datasets.molecules.MoleculeDataset`."""
        from genmodels.datasets import molecules as mdata

        loaders = {
            "qm9": lambda: mdata.load_qm9(index_offset=self.index_offset),
            "zinc250k": lambda: mdata.load_zinc250k(index_offset=self.index_offset),
            "moses": lambda: mdata.load_moses("train", limit=self.moses_limit),
        }
        if self.dataset not in loaders:
            return mdata.load_user_molecules(self.dataset, self.user_data)
        return loaders[self.dataset]()

    @property
    def domain(self):
        return self.data.domain

    @cached_property
    def splits(self) -> tuple[list[str], list[str]]:
        """(train, test) canonical SMILES."""
        return self.data.train_smiles, self.data.test_smiles

    def train_arrays(self) -> dict[str, np.ndarray]:
        """``types`` int8 [M, N] (-1 padding) and ``bonds`` int8 [M, N, N], in this order."""
        types, bonds = self.data.arrays(self.data.train_idx)
        return {"types": types, "bonds": bonds}

    def dense_batch(self, batch: dict, key=None) -> tuple[State, Context]:
        """Loader arrays -> GDSS state and context (jit-compatible; ``key``: augmentation
        randomness, none for molecules).

        Returns:
          ``({"x": [B, N, F] one-hot (padding rows 0), "adj": [B, N, N]},
          {"node_mask": [B, N], "masks": ...})``.
        """
        types = jnp.asarray(batch["types"]).astype(jnp.int32)  # [B, N]
        node_mask = (types >= 0).astype(jnp.float32)
        x0 = {
            "x": jax.nn.one_hot(types, self.num_atom_types),  # one_hot(-1) = 0
            "adj": jnp.asarray(batch["bonds"]).astype(jnp.float32),
        }
        return x0, {"node_mask": node_mask, "masks": graph_masks(node_mask)}

    @cached_property
    def count_sampler(self):
        """``(key, batch) -> {"node_mask", "masks"}`` with training atom counts."""
        return self.domain.node_count_sampler(self.data.num_atoms[self.data.train_idx])

    def decode(self, state: State, ctx: Context) -> list[MolSample]:
        """Dense states -> corrected and raw SMILES (GDSS decoding)."""
        smiles, raw = self.domain.decode_smiles(state, ctx)
        return [MolSample(s, r) for s, r in zip(smiles, raw)]

    def decode_graphs(self, types: np.ndarray, bonds: np.ndarray) -> list[MolSample]:
        """Atom classes [B, N] (-1 padding) and bond orders [B, N, N] -> samples."""
        f = self.num_atom_types
        x = np.eye(f, dtype=np.float32)[np.maximum(types, 0)] * (types >= 0)[..., None]
        dense = {"x": x, "adj": bonds.astype(np.float32)}
        return self.decode(dense, {"node_mask": (types >= 0).astype(np.float32)})

    @staticmethod
    def pairs(parts: list[list[MolSample]], num: int) -> tuple[list[str], list[str]]:
        """``(corrected, raw)`` SMILES lists of decoded batches, first ``num`` kept."""
        flat = [m for part in parts for m in part][:num]
        return [m.smiles for m in flat], [m.raw for m in flat]

    def collate(
        self, parts: list[list[MolSample]], num: int, *, correction: bool = True
    ) -> list[str]:
        """SMILES of decoded batches: corrected, or raw with ``correction=False``."""
        smiles, raw = self.pairs(parts, num)
        return smiles if correction else raw

    def write_samples(self, samples: list[str], path: Path) -> None:
        from genmodels.domains.molecules import write_smiles

        write_smiles(samples, path)

    def read_samples(self, path: Path) -> list[str]:
        """SMILES from a ``.smi``/``.txt`` file (an empty line for a failed sample) or from
        the ``smiles`` column of a ``.csv`` / ``.csv.gz`` file."""
        from genmodels.domains.files import check_suffix
        from genmodels.domains.molecules import read_smiles

        path = check_suffix(path, self.sample_suffixes, "molecules")
        if path.name.lower().endswith((".csv", ".csv.gz")):
            from genmodels.datasets.molecules import read_smiles_column

            return read_smiles_column(path)
        return read_smiles(path)

    def default_num_samples(self) -> int:
        """10,000 (GDSS Table 2)."""
        return 10_000

    def evaluate(
        self, samples: list[str], split="test", meta: dict | None = None, raw: list | None = None
    ) -> dict[str, float]:
        """GDSS's molecule metrics of a SMILES list.

        Args:
          samples: SMILES, ``""`` for failed samples.
          split: reference split for FCD / NSPDK.
          meta: the sample file's sidecar; ``correction: false`` there marks raw
            molecules, whose validity is also ``validity_wo_correction``.
          raw: the same samples decoded without correction.
        """
        from genmodels.metrics.molecules import molecule_metrics

        check_split(split, self.eval_splits)
        train = self.splits[0]
        ref = reference_split(self.splits, split)
        refs = self.reference_stats(split)
        if raw is None and (meta or {}).get("correction") is False:
            raw = samples
        out = molecule_metrics(
            samples,
            train,
            ref,
            raw_smiles=raw,
            train_canonical=True,
            compute_fcd=self.eval_fcd,
            compute_nspdk=self.eval_nspdk,
            moses=self.dataset == "moses",
            plain=self.plain_validity,
            test_fcd_stats=refs.get("fcd"),
            test_nspdk_embedding=refs.get("nspdk"),
            progress=True,
        )
        out["num_samples"] = len(samples)
        return out

    def reference_stats(self, split: str) -> dict:
        """ChemNet statistics and NSPDK mean embedding of a split: in memory, else from the
        metric disk cache (keyed by the data files' checksums, the split and its SMILES),
        else computed (minutes on the QM9 test set) and stored there."""
        if split not in self._ref_cache:
            from genmodels.metrics.cache import data_checksums
            from genmodels.metrics.molecules import reference_statistics

            # the SMILES digest added there also covers index_offset and moses_limit
            key = {"dataset": self.dataset, "split": split, "files": data_checksums(self.dataset)}
            ref, name = reference_split(self.splits, split), f"{Path(self.dataset).name} {split}"
            self._ref_cache[split] = reference_statistics(
                ref, key, fcd=self.eval_fcd, nspdk=self.eval_nspdk, name=name
            )
        return self._ref_cache[split]
