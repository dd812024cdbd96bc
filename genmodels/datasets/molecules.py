"""Molecule datasets: QM9 and ZINC250k with the MoFlow/GDSS test splits, and MOSES.

Every molecule is converted once with :func:`genmodels.domains.molecules.mol_to_graph`
(canonical non-isomeric atom order, Kekule bonds, implicit hydrogens) and kept with its
canonical isomeric SMILES (RDKit ``MolToSmiles``, as GDSS ``canonicalize_smiles``; those
are the training SMILES that novelty compares against). Rows whose SMILES RDKit cannot
parse are skipped and counted, with a warning naming the file and the rows; so are
molecules with an element outside the vocabulary or more than ``max_atoms`` heavy atoms.

The converted arrays are cached under :func:`genmodels.datasets.registry.cache_dir`
(``molecules/``), never in the data folder, keyed by the source file's sha256 and size,
the vocabulary, ``max_atoms``, ``limit`` and a format version, so a second load only reads
one ``.npz`` file (QM9: 0.4 s). The first QM9 conversion takes 1-2 minutes of one core.

Split files (MoFlow ``valid_idx_qm9.json`` / ``valid_idx_zinc.json``, copied unchanged by
GDSS; see ``$GENMODELS_DATA_DIR/graphs/SOURCES.md``) list the test molecules by 1-based
id, and test row = id - 1 (``index_offset=1``, the default). Why 1-based:

- the file's first author, GraphNVP (Madhawa et al. 2019, ``data/transform_qm9.py`` and
  ``transform_zinc250k.py``, ``get_val_ids``), reads the ids as ``int(idx) - 1`` for
  both datasets, and MoFlow (``int(i) - 1``) keeps that;
- the QM9 ids are six-digit zero-padded strings (``"007278"``), the numbering of the QM9
  records themselves (``dsgdb9nsd_007278``), which starts at 1, while the csv rows are in
  the same GDB order starting at 0 (row i holds gdb_{i+1}: row 5 is formaldehyde, gdb_6);
- the ids span 6..133,841 and 2..249,429, inside 1..len(csv) as 1-based ids must be.

GDSS (``utils/data_loader_mol.py``, ``utils/mol_utils.py::load_smiles``) and PARD use the
ids as 0-based rows without the -1, so their test set is every MoFlow test molecule's
successor in file order; both are random 10% splits of the same size. Pass
``index_offset=0`` to reproduce GDSS's sets exactly.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.rdBase import BlockLogs
from tqdm.auto import tqdm

from genmodels.datasets.registry import REGISTRY, DatasetError, cache_dir, fetch, sha256sum
from genmodels.domains.molecules import (
    MOSES_ATOMS,
    QM9_ATOMS,
    ZINC_ATOMS,
    MoleculeDomain,
    mol_to_graph,
)

__all__ = [
    "MOSES_MAX_ATOMS",
    "QM9_MAX_ATOMS",
    "ZINC_MAX_ATOMS",
    "MoleculeDataset",
    "load_molecule_csv",
    "load_moses",
    "load_qm9",
    "load_zinc250k",
    "moses_smiles",
    "read_smiles_column",
    "split_rows",
]

#: GDSS ``max_node_num`` for QM9 and ZINC250k; the largest MOSES molecule has 27 heavy atoms.
QM9_MAX_ATOMS = 9
ZINC_MAX_ATOMS = 38
MOSES_MAX_ATOMS = 27

# Bump when the cached arrays change meaning.
_CACHE_VERSION = 1


@dataclass(frozen=True)
class MoleculeDataset:
    """Converted molecules with their source rows and split.

    Bonds are stored as an edge list (``edges[edge_ptr[k]:edge_ptr[k + 1]]`` holds the
    ``(i, j, order)`` triples with ``i < j`` of molecule ``k``) so that ZINC250k and MOSES
    fit in memory; :meth:`arrays` and :meth:`batch` build dense padded batches.

    Attributes:
      name: dataset name.
      domain: the :class:`MoleculeDomain` the arrays follow.
      smiles: canonical isomeric SMILES of each kept molecule (charges kept).
      rows: [M] 0-based data row (header excluded) of each kept molecule in its file.
      types: [M, N] int8 atom classes, -1 on padding.
      edge_ptr: [M + 1] int64 offsets into ``edges``.
      edges: [E, 3] int8 ``(i, j, order)``.
      train_idx, test_idx: positions (into the arrays above) of the two splits.
      skipped: counts of skipped rows by reason (and ``test_ids_skipped``: test ids whose
        row was skipped).
    """

    name: str
    domain: MoleculeDomain
    smiles: list[str]
    rows: np.ndarray
    types: np.ndarray
    edge_ptr: np.ndarray
    edges: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.smiles)

    @property
    def num_atoms(self) -> np.ndarray:
        """[M] heavy-atom counts."""
        return (self.types >= 0).sum(-1)

    @property
    def train_smiles(self) -> list[str]:
        """Canonical SMILES of the training split (the novelty reference)."""
        return [self.smiles[i] for i in self.train_idx]

    @property
    def test_smiles(self) -> list[str]:
        """Canonical SMILES of the test split (the FCD / NSPDK reference)."""
        return [self.smiles[i] for i in self.test_idx]

    def arrays(
        self, idx: Sequence[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dense padded arrays of some molecules.

        Args:
          idx: positions (default: all molecules).

        Returns:
          ``(types, bonds)``: [b, N] int8 classes (-1 padding), [b, N, N] int8 orders.
        """
        idx = np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64)
        n = self.domain.max_atoms
        starts, stops = self.edge_ptr[idx], self.edge_ptr[idx + 1]
        counts = stops - starts
        # gather all edges of the batch without a Python loop
        which = np.repeat(np.arange(len(idx)), counts)  # [E_b]
        pos = (
            np.arange(counts.sum())
            - np.repeat(np.cumsum(counts) - counts, counts)
            + np.repeat(starts, counts)
        )
        e = self.edges[pos].astype(np.int64)  # [E_b, 3]
        bonds = np.zeros((len(idx), n, n), np.int8)
        bonds[which, e[:, 0], e[:, 1]] = e[:, 2]
        bonds[which, e[:, 1], e[:, 0]] = e[:, 2]
        return self.types[idx], bonds

    def batch(self, idx: Sequence[int] | np.ndarray | None = None):
        """``(state, ctx)`` of some molecules, as :meth:`MoleculeDomain.encode` gives."""
        types, bonds = self.arrays(idx)
        return self.domain.arrays_to_state(types, bonds)


# ------------------------------------------------------------------ reading


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_smiles_column(path: str | Path, column: str = "smiles") -> list[str]:
    """The SMILES column of a csv (optionally gzipped) file, in row order.

    The column is found by name, case-insensitively (so an unnamed leading index column
    is harmless). Surrounding whitespace is stripped (the ZINC250k csv stores each SMILES
    with a trailing newline inside quotes).

    Args:
      path: csv or csv.gz with a header line.
      column: the header name of the SMILES column.

    Returns:
      One string per data row (empty string for an empty cell or a short row).

    Raises:
      DatasetError: no header, or no column of that name.
    """
    path = Path(path)
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetError(f"{path} is empty: no header line") from None
        names = [h.strip().lower() for h in header]
        if column.lower() not in names:
            raise DatasetError(f"{path}: no column {column!r} in header {header}")
        c = names.index(column.lower())
        return [(r[c].strip() if len(r) > c else "") for r in reader]


def split_rows(ids: Sequence[int | str], num_rows: int, index_offset: int = 1) -> np.ndarray:
    """0-based rows of a MoFlow split file's test ids.

    Args:
      ids: the ids as stored (ints or zero-padded strings).
      num_rows: number of data rows of the csv.
      index_offset: row = id - index_offset; 1 (MoFlow/GraphNVP, the default) or 0 (GDSS).

    Returns:
      [T] int64 rows, in file order.

    Raises:
      DatasetError: a repeated id or a row outside 0..num_rows-1.
    """
    rows = np.asarray([int(i) for i in ids], dtype=np.int64) - index_offset
    if len(np.unique(rows)) != len(rows):
        raise DatasetError("the split file repeats an id")
    if rows.size and (rows.min() < 0 or rows.max() >= num_rows):
        raise DatasetError(
            f"split ids map to rows {rows.min()}..{rows.max()}, outside 0..{num_rows - 1} "
            f"(index_offset={index_offset})"
        )
    return rows


def _summary(kind: str, source: str, rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:10])
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    noun = "row" if len(rows) == 1 else "rows"
    return f"{source}: skipped {len(rows)} {noun} ({kind}); data rows (0-based) {shown}{more}"


def _convert(smiles: list[str], domain: MoleculeDomain, source: str) -> dict:
    """Convert SMILES rows to arrays; returns the cache payload."""
    n = domain.max_atoms
    types_l, edges_l, ptr, rows, can = [], [], [0], [], []
    bad: dict[str, list[int]] = {"invalid SMILES": [], "element outside the vocabulary": []}
    bad[f"more than {n} heavy atoms"] = []
    bad["no heavy atom"] = []
    with BlockLogs():
        for r, s in enumerate(tqdm(smiles, desc=f"converting {Path(source).name}", leave=False)):
            mol = Chem.MolFromSmiles(s) if s else None
            if mol is None:
                bad["invalid SMILES"].append(r)
                continue
            try:
                t, b = mol_to_graph(mol, domain.atoms)
            except ValueError:
                bad["element outside the vocabulary"].append(r)
                continue
            if len(t) > n:
                bad[f"more than {n} heavy atoms"].append(r)
                continue
            if len(t) == 0:
                bad["no heavy atom"].append(r)
                continue
            row_types = np.full(n, -1, np.int8)
            row_types[: len(t)] = t
            types_l.append(row_types)
            i, j = np.nonzero(np.triu(b, 1))
            edges_l.append(np.stack([i, j, b[i, j]], -1).astype(np.int8))
            ptr.append(ptr[-1] + len(i))
            rows.append(r)
            can.append(Chem.MolToSmiles(mol))
    messages = [_summary(k, source, v) for k, v in bad.items() if v]
    return {
        "types": np.stack(types_l) if types_l else np.zeros((0, n), np.int8),
        "edges": np.concatenate(edges_l) if edges_l else np.zeros((0, 3), np.int8),
        "edge_ptr": np.asarray(ptr, np.int64),
        "rows": np.asarray(rows, np.int64),
        "smiles": "\n".join(can),
        "skipped": {k: len(v) for k, v in bad.items() if v},
        "messages": messages,
        "num_rows": len(smiles),
    }


def _cache_path(tag: str, path: Path, sha: str | None, domain: MoleculeDomain, limit) -> Path:
    sha = sha or sha256sum(path)
    key = json.dumps(
        [_CACHE_VERSION, tag, sha, path.stat().st_size, list(domain.atoms), domain.max_atoms, limit]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_dir() / "molecules" / f"{tag}-{digest}.npz"


def _load_converted(
    tag: str, path: Path, sha: str | None, column: str, domain: MoleculeDomain, limit: int | None
) -> dict:
    """Cached conversion of a SMILES file; warnings about skipped rows are repeated."""
    cpath = _cache_path(tag, path, sha, domain, limit)
    payload = None
    if cpath.exists():
        try:
            with np.load(cpath, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                payload = {
                    "types": z["types"],
                    "edges": z["edges"],
                    "edge_ptr": z["edge_ptr"],
                    "rows": z["rows"],
                    "smiles": z["smiles"].tobytes().decode(),
                    **meta,
                }
        except Exception as e:  # noqa: BLE001 - a broken cache is rebuilt
            warnings.warn(f"ignoring unreadable cache {cpath}: {e}", stacklevel=3)
            payload = None
    if payload is None:
        smiles = read_smiles_column(path, column)
        if limit is not None:
            smiles = smiles[:limit]
        payload = _convert(smiles, domain, str(path))
        cpath.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: payload[k] for k in ("skipped", "messages", "num_rows")}
        fd, tmp = tempfile.mkstemp(dir=cpath.parent, suffix=".npz.part")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    types=payload["types"],
                    edges=payload["edges"],
                    edge_ptr=payload["edge_ptr"],
                    rows=payload["rows"],
                    smiles=np.frombuffer(payload["smiles"].encode(), np.uint8),
                    meta=np.asarray(json.dumps(meta)),
                )
            os.replace(tmp, cpath)  # atomic: a concurrent reader never sees half a file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    for msg in payload["messages"]:
        warnings.warn(msg, stacklevel=3)
    return payload


def _dataset(
    name: str, payload: dict, domain: MoleculeDomain, test_rows: np.ndarray | None
) -> MoleculeDataset:
    rows = payload["rows"]
    smiles = payload["smiles"].split("\n") if payload["smiles"] else []
    skipped = dict(payload["skipped"])
    if test_rows is None:
        test_idx = np.zeros(0, np.int64)
        train_idx = np.arange(len(rows))
    else:
        train_idx = np.flatnonzero(~np.isin(rows, test_rows))
        # keep the split file's order for the test molecules (GDSS iterates it so)
        pos = {int(r): k for k, r in enumerate(rows)}
        test_idx = np.asarray([pos[int(r)] for r in test_rows if int(r) in pos], np.int64)
        if len(test_idx) < len(test_rows):
            skipped["test_ids_skipped"] = len(test_rows) - len(test_idx)
    return MoleculeDataset(
        name=name,
        domain=domain,
        smiles=smiles,
        rows=rows,
        types=payload["types"],
        edge_ptr=payload["edge_ptr"],
        edges=payload["edges"],
        train_idx=train_idx,
        test_idx=test_idx,
        skipped=skipped,
    )


def _sha(name: str, path: str) -> str | None:
    return REGISTRY[name].file(path).sha256


def load_molecule_csv(
    path: str | Path,
    domain: MoleculeDomain,
    *,
    name: str | None = None,
    column: str = "smiles",
    test_ids: Sequence[int | str] | None = None,
    index_offset: int = 1,
    sha256: str | None = None,
    limit: int | None = None,
) -> MoleculeDataset:
    """Convert (or load from the cache) a csv of SMILES into a :class:`MoleculeDataset`.

    The dataset-specific loaders below are thin wrappers around this one.

    Args:
      path: csv or csv.gz file with a header.
      domain: vocabulary and ``max_atoms``.
      name: dataset name (default: the file name).
      column: header name of the SMILES column (case-insensitive).
      test_ids: ids of the test molecules as in a MoFlow split file, or ``None`` (all
        molecules in ``train_idx``).
      index_offset: test row = id - index_offset (see the module docstring).
      sha256: the file's checksum if already known (else it is computed for the cache key).
      limit: convert only the first ``limit`` rows.

    Returns:
      The dataset; rows that were skipped are counted in ``skipped`` and reported with a
      warning (on every load, also from the cache).

    Raises:
      DatasetError: unreadable csv, no such column, or a test id outside the file.
    """
    path = Path(path)
    name = name or path.name.split(".")[0]
    payload = _load_converted(name, path, sha256, column, domain, limit)
    test_rows = None
    if test_ids is not None:
        test_rows = split_rows(test_ids, payload["num_rows"], index_offset)
    return _dataset(name, payload, domain, test_rows)


def load_qm9(index_offset: int = 1) -> MoleculeDataset:
    """QM9 (133,885 GDB-9 molecules) with the MoFlow/GDSS test split of 13,082.

    Reads ``graphs/DIG/qm9.csv`` (column ``smiles``; rows in GDB order, row i = gdb_{i+1};
    the GDB-17 SMILES, so non-canonical and with charged forms such as the zwitterion of
    gdb_80 at 0-based data row 79) and ``graphs/valid_idx_qm9.json``
    (``{"valid_idxs": ["007278", ...]}``).

    Args:
      index_offset: test row = id - index_offset; 1 (MoFlow/GraphNVP, default, see the
        module docstring) or 0 (GDSS).

    Returns:
      A :class:`MoleculeDataset` over :data:`QM9_ATOMS` with ``max_atoms=9``.

    Raises:
      DatasetError: missing or corrupt files, or a split id outside the file.
    """
    rel = "graphs/DIG/qm9.csv"
    csv_path = fetch("qm9", rel)
    with open(fetch("qm9", "graphs/valid_idx_qm9.json")) as f:
        ids = json.load(f)["valid_idxs"]
    domain = MoleculeDomain(QM9_ATOMS, QM9_MAX_ATOMS)
    return load_molecule_csv(
        csv_path,
        domain,
        name="qm9",
        test_ids=ids,
        index_offset=index_offset,
        sha256=_sha("qm9", rel),
    )


def load_zinc250k(index_offset: int = 1) -> MoleculeDataset:
    """ZINC250k (249,455 molecules) with the MoFlow/GDSS test split of 24,887.

    Reads ``graphs/zinc250k.csv`` (a ``smiles`` column, possibly after an unnamed index
    column, then ``logP,qed,SAS``) and ``graphs/valid_idx_zinc250k.json`` (a plain list of
    ints). No pinned checksum exists for the csv, so the cache is keyed by its computed
    sha256.

    Args:
      index_offset: test row = id - index_offset (see :func:`load_qm9`).

    Returns:
      A :class:`MoleculeDataset` over :data:`ZINC_ATOMS` with ``max_atoms=38``.

    Raises:
      DatasetError: missing files (the csv is not in the shared data folder; the error
        says where to get it), or a split id outside the file.
    """
    rel = "graphs/zinc250k.csv"
    csv_path = fetch("zinc250k", rel)
    split_path = fetch("zinc250k", "graphs/valid_idx_zinc250k.json")
    with open(split_path) as f:
        ids = json.load(f)
    if not isinstance(ids, list):
        raise DatasetError(f"{split_path}: expected a JSON list of ints")
    domain, sha = MoleculeDomain(ZINC_ATOMS, ZINC_MAX_ATOMS), _sha("zinc250k", rel)
    return load_molecule_csv(
        csv_path, domain, name="zinc250k", test_ids=ids, index_offset=index_offset, sha256=sha
    )


def load_moses(split: str = "train", limit: int | None = None) -> MoleculeDataset:
    """One MOSES split (molsets 0.3.1 files) as graphs over :data:`MOSES_ATOMS`.

    Converting the 1,584,663 training molecules takes a long while the first time (then it
    is cached); ``limit`` converts only the first rows. All molecules go to ``train_idx``
    (the MOSES test sets are separate files); ``test_idx`` is empty.

    Args:
      split: ``"train"``, ``"test"`` or ``"test_scaffolds"``.
      limit: convert only the first ``limit`` rows.

    Returns:
      A :class:`MoleculeDataset` with ``max_atoms=27``.

    Raises:
      DatasetError: unknown split or missing/corrupt file.
    """
    _check_moses_split(split)
    rel = f"graphs/moses/{split}.csv.gz"
    return load_molecule_csv(
        fetch("moses", rel),
        MoleculeDomain(MOSES_ATOMS, MOSES_MAX_ATOMS),
        name=f"moses_{split}",
        column="SMILES",
        sha256=_sha("moses", rel),
        limit=limit,
    )


def _check_moses_split(split: str) -> None:
    if split not in ("train", "test", "test_scaffolds"):
        raise DatasetError(f"unknown MOSES split {split!r}; use train, test or test_scaffolds")


def moses_smiles(split: str = "train") -> list[str]:
    """The SMILES of a MOSES split as stored (fast: no RDKit), e.g. as a novelty reference.

    Raises:
      DatasetError: unknown split or missing/corrupt file.
    """
    _check_moses_split(split)
    return read_smiles_column(fetch("moses", f"graphs/moses/{split}.csv.gz"), "SMILES")
