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

A user's own file (``--dataset PATH``, :func:`load_user_molecules`): a ``.csv`` /
``.csv.gz`` with a SMILES column or a ``.smi`` / ``.smiles`` / ``.txt`` file with one
SMILES a line. Its vocabulary (the elements present, by atomic number) and padded size (the
largest molecule, or ``--max-atoms``) come from the data; unreadable molecules are skipped
and named by their line in one warning; the split is
:func:`~genmodels.datasets.user.split_indices` of the good molecules (or
``--train-file`` / ``--test-file``). Formal charges are dropped by the encoding and come
back only through GDSS's charge rule when decoding (N+, O+, S+ where a valence needs it;
see :mod:`genmodels.domains.molecules`), so the vocabulary holds elements, not charged
species, and an anion is generated in its neutral form.
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
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.rdBase import BlockLogs
from tqdm.auto import tqdm

from genmodels.datasets.registry import REGISTRY, DatasetError, cache_dir, fetch, sha256sum
from genmodels.datasets.user import UserData, split_indices
from genmodels.domains.files import check_file, read_text
from genmodels.domains.molecules import (
    MOSES_ATOMS,
    QM9_ATOMS,
    ZINC_ATOMS,
    MoleculeDomain,
    check_smiles,
    mol_to_graph,
)
from genmodels.errors import DataError, MissingFileError, UsageError

__all__ = [
    "MOSES_MAX_ATOMS",
    "QM9_MAX_ATOMS",
    "USER_MAX_ATOMS",
    "ZINC_MAX_ATOMS",
    "MoleculeDataset",
    "load_molecule_csv",
    "load_moses",
    "load_qm9",
    "load_user_molecules",
    "load_zinc250k",
    "moses_smiles",
    "read_smiles_column",
    "read_user_smiles",
    "split_rows",
    "user_molecule_vocab",
]

#: GDSS ``max_node_num`` for QM9 and ZINC250k; the largest MOSES molecule has 27 heavy atoms.
QM9_MAX_ATOMS = 9
ZINC_MAX_ATOMS = 38
MOSES_MAX_ATOMS = 27
#: the most heavy atoms a molecule of a user file may have (atom indices are stored as int8)
USER_MAX_ATOMS = 127

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
      rows: [M] 0-based data row (header excluded) of each kept molecule in its file (a
        user file: its entry, blank and comment lines excluded).
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
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


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
      MissingFileError: no such file.
      DataError: an empty, binary, non-UTF-8 or corrupt (gzip) file, no header, no column
        of that name, no data row, or no cell that is a SMILES string
        (:func:`~genmodels.domains.molecules.check_smiles`).
    """
    path = check_file(path)
    want = f"a csv with a header line and a {column!r} column"
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} holds no samples (no header line); expected {want}")
            names = [h.strip().lower() for h in header]
            if column.lower() not in names:
                shown = ", ".join(repr(h[:20]) for h in header[:8])
                raise DataError(f"{path}: no {column!r} column (header: {shown}); expected {want}")
            c = names.index(column.lower())
            rows = [(r[c].strip() if len(r) > c else "") for r in reader]
    except (UnicodeDecodeError, csv.Error, OSError, EOFError, zlib.error) as e:
        why = str(e).splitlines()[0][:60] if str(e) else ""
        raise DataError(
            f"{path} is not a readable csv text file ({type(e).__name__}: {why}); expected {want}"
        ) from None
    return check_smiles(rows, path, unit="data row")


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


def _line_summary(bad: dict[str, list[int]], lines: Sequence[int]) -> str:
    """``"invalid SMILES: lines 4, 9; ..."``: each reason with its first few file lines."""
    parts = []
    for kind, rows in bad.items():
        if rows:
            shown = ", ".join(str(lines[r]) for r in rows[:5])
            more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
            parts.append(f"{kind}: line{'s' if len(rows) > 1 else ''} {shown}{more}")
    return "; ".join(parts)


def _convert(
    smiles: list[str], domain: MoleculeDomain, source: str, lines: Sequence[int] | None = None
) -> dict:
    """Convert SMILES rows to arrays; returns the cache payload.

    ``lines`` (a user file: the 1-based line of each entry) gives one warning naming the
    lines of the skipped molecules (and ``summary``, its reasons) instead of one per
    reason naming 0-based data rows."""
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
    extra = {}
    if lines is not None:
        extra["summary"] = _line_summary(bad, lines)
        n_bad = sum(len(v) for v in bad.values())
        noun = "molecule" if len(smiles) == 1 else "molecules"
        head = f"{source}: skipped {n_bad} of {len(smiles)} {noun}"
        messages = [f"{head} ({extra['summary']})"] if n_bad else []
    return {
        **extra,
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


_ARRAYS = ("types", "edges", "edge_ptr", "rows")


def _cached_payload(cpath: Path, build: Callable[[], dict]) -> dict:
    """The conversion payload stored at ``cpath``, or ``build()`` stored there (its arrays
    :data:`_ARRAYS` and ``smiles``; every other entry as JSON)."""
    if cpath.exists():
        try:
            with np.load(cpath, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k] for k in _ARRAYS}
                return {**arrays, "smiles": z["smiles"].tobytes().decode(), **meta}
        except Exception as e:  # noqa: BLE001 - a broken cache is rebuilt
            warnings.warn(f"ignoring unreadable cache {cpath}: {e}", stacklevel=4)
    payload = build()
    cpath.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in payload.items() if k not in (*_ARRAYS, "smiles")}
    fd, tmp = tempfile.mkstemp(dir=cpath.parent, suffix=".npz.part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                **{k: payload[k] for k in _ARRAYS},
                smiles=np.frombuffer(payload["smiles"].encode(), np.uint8),
                meta=np.asarray(json.dumps(meta)),
            )
        os.replace(tmp, cpath)  # atomic: a concurrent reader never sees half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return payload


def _load_converted(
    tag: str, path: Path, sha: str | None, column: str, domain: MoleculeDomain, limit: int | None
) -> dict:
    """Cached conversion of a SMILES file; warnings about skipped rows are repeated."""

    def build() -> dict:
        smiles = read_smiles_column(path, column)
        return _convert(smiles[:limit] if limit is not None else smiles, domain, str(path))

    payload = _cached_payload(_cache_path(tag, path, sha, domain, limit), build)
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


# ------------------------------------------------------------------ a user's own file

_EXPECTED = (
    "a .smi/.smiles/.txt file with one SMILES a line, or a .csv/.csv.gz file with a header "
    "line and a SMILES column"
)
# every element, by atomic number: the vocabulary a user file is first read with
_ELEMENTS = tuple(Chem.GetPeriodicTable().GetElementSymbol(z) for z in range(1, 119))


def _data_file(path: str | Path, option: str) -> Path:
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a molecule file" if path.is_dir() else "does not exist"
        raise MissingFileError(f"{option} {path} {what}; expected {_EXPECTED}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; expected {_EXPECTED}")
    return path


def _read_user_csv(path: Path, column: str | None) -> tuple[list[str], list[int]]:
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = next(reader, None) or []
            names = [h.strip() for h in header]
            want = (column or "").lower()
            match = [
                i
                for i, h in enumerate(names)
                if (h.lower() == want if column else "smiles" in h.lower())
            ]
            if not match:
                what = f"no column {column!r}" if column else 'no column named like "smiles"'
                shown = ", ".join(repr(h[:20]) for h in names[:12]) or "none"
                raise DataError(f"{path}: {what} (columns: {shown}); pass --smiles-column NAME")
            c, smiles, lines = match[0], [], []
            for row in reader:
                if any(cell.strip() for cell in row):  # a blank line is no molecule
                    smiles.append(row[c].strip() if len(row) > c else "")
                    lines.append(reader.line_num)  # 1-based line (header = line 1)
    except (UnicodeDecodeError, csv.Error, OSError, EOFError, zlib.error) as e:
        why = str(e).splitlines()[0][:60] if str(e) else ""
        raise DataError(
            f"{path} is not a readable csv text file ({type(e).__name__}: {why}); "
            f"expected {_EXPECTED}"
        ) from None
    return smiles, lines


def read_user_smiles(
    path: str | Path, column: str | None = None, option: str = "--dataset"
) -> tuple[list[str], list[int]]:
    """The SMILES of a user's molecule file with the line each comes from.

    ``.csv`` / ``.csv.gz``: a header line, then one molecule a row; the SMILES column is
    ``column`` (case-insensitive) or else the first whose name contains "smiles"
    (case-insensitive); blank lines are skipped. Other suffixes (``.smi``, ``.smiles``,
    ``.txt``): one SMILES a line, optionally followed by whitespace and a name; blank lines,
    lines starting with ``#`` and a first line whose first field is ``smiles`` (a header)
    are skipped. Nothing is parsed here.

    Args:
      path: the file.
      column: the csv's SMILES column (``None``: the first named like "smiles").
      option: the option that named the file, for the messages.

    Returns:
      ``(smiles, lines)``: the entries (``""`` for an empty csv cell) and the 1-based line
      of the file each comes from (for a csv, a record's last line).

    Raises:
      MissingFileError: no such file.
      DataError: an empty, binary or undecodable file, no SMILES column (the message
        lists the columns), or no entry at all.
    """
    path = _data_file(path, option)
    if path.name.lower().endswith((".csv", ".csv.gz")):
        smiles, lines = _read_user_csv(path, column)
    else:
        smiles, lines = [], []
        text = read_text(path, _EXPECTED).replace("\r\n", "\n").replace("\r", "\n")
        for i, line in enumerate(text.split("\n"), start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if not smiles and fields[0].lower() == "smiles":
                continue  # a header line
            smiles.append(fields[0])
            lines.append(i)
    if not smiles:
        raise DataError(f"{path} holds no SMILES (only blank, comment or header lines)")
    return smiles, lines


def _derive(smiles: list[str], lines: list[int], source: str, max_atoms: int | None) -> dict:
    """Convert with every element allowed, then keep the elements present (by atomic
    number) as the vocabulary and the largest molecule (or ``max_atoms``) as the width."""
    payload = _convert(
        smiles, MoleculeDomain(_ELEMENTS, max_atoms or USER_MAX_ATOMS), source, lines
    )
    types = payload["types"]
    present = np.unique(types[types >= 0])  # indices into _ELEMENTS: by atomic number
    remap = np.full(len(_ELEMENTS), -1, np.int8)
    remap[present] = np.arange(len(present))
    types = np.where(types >= 0, remap[np.maximum(types, 0)], -1).astype(np.int8)
    width = max_atoms or max(int((types >= 0).sum(1).max(initial=0)), 1)
    atoms = [_ELEMENTS[i] for i in present]
    return {**payload, "types": types[:, :width], "atoms": atoms, "max_atoms": width}


def _user_payload(
    path: Path, data: UserData, domain: MoleculeDomain | None, option: str = "--dataset"
) -> dict:
    """Cached conversion of one user file: with a vocabulary derived from it (``domain``
    ``None``) or with a given one (a test file read with the training vocabulary)."""
    from genmodels.metrics.cache import file_sha256

    path = _data_file(path, option)
    vocab = None if domain is None else [list(domain.atoms), domain.max_atoms]
    key = [_CACHE_VERSION, "user", file_sha256(path), path.stat().st_size]
    key += [data.smiles_column, data.max_atoms, vocab]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]

    def build() -> dict:
        smiles, lines = read_user_smiles(path, data.smiles_column, option)
        if domain is None:
            return _derive(smiles, lines, str(path), data.max_atoms)
        return _convert(smiles, domain, str(path), lines)

    payload = _cached_payload(cache_dir() / "molecules" / f"user-{digest}.npz", build)
    if not len(payload["rows"]):
        fits = "" if domain is None else f" with the training elements {', '.join(domain.atoms)}"
        raise DataError(
            f"{path}: no molecule{fits} in {payload['num_rows']} entries "
            f"({payload['summary']}); expected {_EXPECTED}"
        )
    return payload


def _check_data(data: UserData | None) -> UserData:
    data = data or UserData()
    if data.max_atoms is not None and data.max_atoms > USER_MAX_ATOMS:
        raise UsageError(f"--max-atoms may be at most {USER_MAX_ATOMS}, got {data.max_atoms}")
    return data


def user_molecule_vocab(
    path: str | Path, data: UserData | None = None
) -> tuple[tuple[str, ...], int]:
    """The vocabulary and padded size a user's molecule file gives (cheap after the first
    conversion, which is cached): the elements of its good molecules by atomic number and
    their largest heavy-atom count (or ``data.max_atoms``). With ``data.train_file`` that
    file is the one read.

    Args:
      path: the ``--dataset`` file.
      data: the user data options (default: ``UserData()``).

    Returns:
      ``(atoms, max_atoms)``, e.g. ``(("C", "N", "O", "S", "Cl"), 27)``.

    Raises:
      MissingFileError, DataError: see :func:`load_user_molecules`.
    """
    data = _check_data(data)
    option = "--train-file" if data.train_file else "--dataset"
    payload = _user_payload(Path(data.train_file or path), data, None, option)
    return tuple(payload["atoms"]), int(payload["max_atoms"])


def load_user_molecules(path: str | Path, data: UserData | None = None) -> MoleculeDataset:
    """A user's molecule file (``--dataset PATH``) as a :class:`MoleculeDataset`.

    The file is read by :func:`read_user_smiles` and converted as the benchmarks are
    (:func:`genmodels.domains.molecules.mol_to_graph`: Kekule bonds, implicit hydrogens,
    charges dropped). Its vocabulary is the elements of its good molecules ordered by
    atomic number, its padded size their largest heavy-atom count (or ``data.max_atoms``).
    Molecules RDKit cannot parse, or with more than ``data.max_atoms`` heavy atoms, are
    skipped and counted in ``skipped``, with one warning naming their first lines. The
    conversion is cached under ``cache_dir()/molecules`` keyed by the file's sha256 and
    the options.

    Splits: :func:`~genmodels.datasets.user.split_indices` of the good molecules
    (``data.test_fraction``, ``data.split_seed``). ``data.train_file`` / ``data.test_file``
    replace a split by a whole file (the other split is then all of ``path``, unless both
    are given); the vocabulary and size are the training file's, and test molecules with
    other elements or more atoms are skipped and counted (``skipped["test: ..."]``).

    Args:
      path: the ``.csv``, ``.csv.gz``, ``.smi``, ``.smiles`` or ``.txt`` file.
      data: the user data options (default: ``UserData()``).

    Returns:
      The dataset, named by the file; ``rows`` are entry numbers within each file.

    Raises:
      MissingFileError: no such file.
      DataError: an unreadable file, no SMILES column, no good molecule (one line naming
        the file and why, with lines), or fewer than 2 good molecules to split.
      UsageError: ``data.max_atoms`` above :data:`USER_MAX_ATOMS`.
    """
    data = _check_data(data)
    path = Path(path)
    train_src = Path(data.train_file or path)
    option = "--train-file" if data.train_file else "--dataset"
    train = _user_payload(train_src, data, None, option)
    domain = MoleculeDomain(tuple(train["atoms"]), int(train["max_atoms"]))
    parts, skipped = [train], dict(train["skipped"])
    for msg in train["messages"]:
        warnings.warn(msg, stacklevel=2)
    n_train = len(train["rows"])
    if data.train_file or data.test_file:
        test_src = Path(data.test_file or path)
        option = "--test-file" if data.test_file else "--dataset"
        test = _user_payload(test_src, data, domain, option)
        for msg in test["messages"]:
            warnings.warn(msg, stacklevel=2)
        skipped.update({f"test: {k}": v for k, v in test["skipped"].items()})
        parts.append(test)
        train_idx = np.arange(n_train)
        test_idx = n_train + np.arange(len(test["rows"]))
    else:
        if n_train < 2:
            raise DataError(f"{train_src}: 1 good molecule; a train/test split needs at least 2")
        train_idx, test_idx = split_indices(n_train, data.test_fraction, data.split_seed)
    offsets = np.cumsum([0] + [len(p["edges"]) for p in parts[:-1]])
    return MoleculeDataset(
        name=path.name,
        domain=domain,
        smiles=[s for p in parts for s in p["smiles"].split("\n")],
        rows=np.concatenate([p["rows"] for p in parts]),
        types=np.concatenate([p["types"] for p in parts]),
        edge_ptr=np.concatenate(
            [parts[0]["edge_ptr"][:1]] + [p["edge_ptr"][1:] + o for p, o in zip(parts, offsets)]
        ),
        edges=np.concatenate([p["edges"] for p in parts]),
        train_idx=train_idx,
        test_idx=test_idx,
        skipped=skipped,
    )
