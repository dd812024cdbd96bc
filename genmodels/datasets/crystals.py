"""The CDVAE crystal benchmarks (perov_5, carbon_24, mp_20) and a user's own crystals.

Each split is a CSV from the CDVAE repository (``data/<name>/<split>.csv``; Xie et al.,
ICLR 2022): a first unnamed column (the original row index), ``material_id``, ``cif`` (a
P1 CIF written by pymatgen) and property columns. The property CDVAE trains on
(``conf/data/*.yaml`` ``prop``) is ``heat_ref`` for perov_5, ``energy_per_atom`` for
carbon_24 and ``formation_energy_per_atom`` for mp_20.

Every CIF is parsed with pymatgen and put in CDVAE's canonical cell
(:func:`genmodels.domains.crystals.canonical_structure`: Niggli-reduced, not primitive).
That takes about 20 ms a crystal, so the parsed arrays are cached under
:func:`genmodels.datasets.registry.cache_dir` (never in the data folder), keyed by the
CSV's sha256 and size and the cell settings. Rows whose CIF does not parse are skipped,
counted, and named in a warning. :func:`load_user_crystals` reads a user's folder of
CIF files, multi-block CIF file or CDVAE-style csv the same way.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from tqdm.auto import tqdm

from genmodels.datasets.registry import DatasetError, cache_dir, fetch, sha256sum
from genmodels.datasets.user import UserData, split_indices
from genmodels.domains.crystals import CrystalArrays, _split_blocks, canonical_structure
from genmodels.errors import DataError, MissingFileError

__all__ = [
    "CRYSTAL_DATASETS",
    "CRYSTAL_MAX_ATOMS",
    "CrystalDataset",
    "load_crystals",
    "load_user_crystals",
    "parse_crystal_csv",
]

#: Dataset name -> the property column CDVAE uses (``conf/data/*.yaml`` ``prop``).
CRYSTAL_DATASETS: dict[str, str] = {
    "perov_5": "heat_ref",
    "carbon_24": "energy_per_atom",
    "mp_20": "formation_energy_per_atom",
}
#: Dataset name -> CDVAE ``max_atoms`` (``conf/data/*.yaml``).
CRYSTAL_MAX_ATOMS: dict[str, int] = {"perov_5": 20, "carbon_24": 24, "mp_20": 20}
_SPLITS = ("train", "val", "test")
# Bump when the cached layout or the parsing changes, so stale caches are not reused.
_CACHE_VERSION = 1


@dataclass(frozen=True)
class CrystalDataset:
    """One parsed split.

    Attributes:
      name: dataset name.
      split: ``train``, ``val`` or ``test``.
      material_ids: [C] str ids, in file order (skipped rows removed).
      properties: [C] float64 values of the dataset's property (NaN where empty).
      arrays: canonical flat arrays (:class:`CrystalArrays`).
      num_skipped: rows whose CIF could not be parsed.
      skipped: one message per skipped row (row number, material_id, error).
    """

    name: str
    split: str
    material_ids: np.ndarray
    properties: np.ndarray
    arrays: CrystalArrays
    num_skipped: int = 0
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.arrays)

    def structures(self) -> list[Structure]:
        """The crystals as pymatgen structures (canonical cells)."""
        return self.arrays.to_structures()


def _parse_row(args: tuple[str, bool, bool]) -> tuple | str:
    """Parse one CIF; returns arrays or the error message (picklable for workers)."""
    cif, niggli, primitive = args
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_str(cif, fmt="cif")
        if not s.is_ordered:
            return "disordered structure (partial occupancies)"
        if len(s) == 0:
            return "no sites"
        c = canonical_structure(s, niggli=niggli, primitive=primitive)
        return (
            np.asarray(c.frac_coords, np.float64),
            np.asarray(c.atomic_numbers, np.int64),
            np.asarray(c.lattice.parameters, np.float64),
        )
    except Exception as e:  # pymatgen raises many types on a malformed CIF
        return f"{type(e).__name__}: {str(e)[:100]}"


def _float(x: str | None) -> float:
    try:
        return float(x) if x not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def _warn_skipped(path, bad: Sequence[str], unit: str = "row") -> None:
    shown = "; ".join(bad[:10]) + (" ..." if len(bad) > 10 else "")
    warnings.warn(
        f"{path}: skipped {len(bad)} {unit}(s) with an unreadable CIF: {shown}", stacklevel=3
    )


def _parse_jobs(jobs: list[tuple[str, bool, bool]], desc: str, num_workers: int, progress: bool):
    """:func:`_parse_row` of every job, in worker processes when ``num_workers > 0``."""
    if num_workers > 0:
        # spawn, not fork: the parent may hold JAX's threads.
        with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn")) as ex:
            it = ex.map(_parse_row, jobs, chunksize=64)
            return list(tqdm(it, total=len(jobs), desc=desc, disable=not progress))
    return [_parse_row(j) for j in tqdm(jobs, desc=desc, disable=not progress)]


def _assemble(
    path, labels: Sequence[str], ids: Sequence[str], props: Sequence[float], results: list,
    name: str, split: str, error: type[Exception] = DatasetError, unit: str = "row",
) -> CrystalDataset:  # fmt: skip
    """A :class:`CrystalDataset` of the parsed items (``labels`` name the bad ones in one
    warning, counting ``unit``s); ``error`` is raised when none parsed."""
    fr, zs, lat, keep, bad = [], [], [], [], []
    for k, (label, res) in enumerate(zip(labels, results)):
        if isinstance(res, str):
            bad.append(f"{label}: {res}")
            continue
        fr.append(res[0])
        zs.append(res[1])
        lat.append(res[2])
        keep.append(k)
    if bad:
        _warn_skipped(path, bad, unit)
    if not fr:
        raise error(f"{path}: no crystal could be parsed ({len(labels)} {unit}s; first: {bad[0]})")
    arrays = CrystalArrays(
        frac=np.concatenate(fr),
        atomic_numbers=np.concatenate(zs),
        num_atoms=np.asarray([len(z) for z in zs], np.int64),
        lattice=np.stack(lat),
    )
    return CrystalDataset(
        name=name,
        split=split,
        material_ids=np.asarray([ids[k] for k in keep], dtype=str),
        properties=np.asarray([props[k] for k in keep], np.float64),
        arrays=arrays,
        num_skipped=len(bad),
        skipped=tuple(bad),
    )


def parse_crystal_csv(
    path: str | Path,
    prop: str | None,
    *,
    niggli: bool = True,
    primitive: bool = False,
    limit: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
    name: str = "",
    split: str = "",
    error: type[Exception] = DatasetError,
) -> CrystalDataset:
    """Parse a CDVAE-format CSV (no caching; see :func:`load_crystals`).

    Args:
      path: CSV with a ``cif`` column, optionally ``material_id`` (default: the row
        number) and the ``prop`` column.
      prop: property column to keep (``None``: the properties are NaN).
      niggli, primitive: canonical cell settings (:func:`canonical_structure`).
      limit: parse only the first ``limit`` rows.
      num_workers: worker processes for parsing (0: in this process).
      progress: show a tqdm bar.
      name, split: recorded in the result and in messages.
      error: the exception raised for a bad file (a user file: ``DataError``).

    Returns:
      A :class:`CrystalDataset`.

    Raises:
      DatasetError: missing columns, or no row could be parsed.
    """
    csv.field_size_limit(1 << 26)  # a CIF field can exceed the default 128 kB
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for col in ("cif",) + ((prop,) if prop else ()):
            if col not in cols:
                raise error(f"{path}: no column {col!r} (columns: {cols})")
        rows = []
        for k, row in enumerate(reader):
            if limit is not None and k >= limit:
                break
            rows.append(row)
    ids = [r.get("material_id") or str(k) for k, r in enumerate(rows)]
    jobs = [(r["cif"] or "", niggli, primitive) for r in rows]
    desc = f"parsing {name or Path(path).name} {split}".strip()
    results = _parse_jobs(jobs, desc, num_workers, progress)
    labels = [f"row {k} (material_id {i!r})" for k, i in enumerate(ids)]
    props = [_float(r[prop]) if prop else float("nan") for r in rows]
    return _assemble(path, labels, ids, props, results, name, split, error)


def _cache_path(name: str, split: str, key: str) -> Path:
    return cache_dir() / "crystals" / f"{name}-{split}-{key}.npz"


def _save(path: Path, ds: CrystalDataset, meta: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(
            tmp,
            frac=ds.arrays.frac,
            atomic_numbers=ds.arrays.atomic_numbers,
            num_atoms=ds.arrays.num_atoms,
            lattice=ds.arrays.lattice,
            material_ids=ds.material_ids,
            properties=ds.properties,
            num_skipped=np.asarray(ds.num_skipped),
            skipped=np.asarray(ds.skipped, dtype=str).reshape(-1),
            meta=np.asarray(meta),
        )
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path, meta: str, name: str, split: str) -> CrystalDataset | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["meta"]) != meta:
                return None
            arrays = CrystalArrays(
                frac=z["frac"],
                atomic_numbers=z["atomic_numbers"],
                num_atoms=z["num_atoms"],
                lattice=z["lattice"],
            )
            return CrystalDataset(
                name=name,
                split=split,
                material_ids=z["material_ids"],
                properties=z["properties"],
                arrays=arrays,
                num_skipped=int(z["num_skipped"]),
                skipped=tuple(str(m) for m in z["skipped"]),
            )
    except Exception:  # unreadable or truncated cache: parse again
        return None


def load_crystals(
    name: str,
    split: str,
    *,
    niggli: bool = True,
    primitive: bool = False,
    limit: int | None = None,
    num_workers: int = 0,
    use_cache: bool = True,
    progress: bool = True,
) -> CrystalDataset:
    """Load one split of a CDVAE crystal benchmark, parsed and in canonical cells.

    The CSV is resolved by :func:`genmodels.datasets.registry.fetch` (checksum verified
    where the registry pins one; a missing split raises its error naming the file and
    URL). The parsed arrays are cached under ``cache_dir()/crystals`` keyed by the CSV's
    sha256 and size, the cell settings and ``limit``.

    Args:
      name: one of :data:`CRYSTAL_DATASETS`.
      split: ``train``, ``val`` or ``test``.
      niggli, primitive: canonical cell settings (CDVAE: ``True``, ``False``).
      limit: parse only the first ``limit`` rows (quick checks).
      num_workers: worker processes for a first parse (0: in this process).
      use_cache: read and write the cache.
      progress: show a tqdm bar while parsing.

    Returns:
      A :class:`CrystalDataset` whose ``properties`` is the dataset's CDVAE property.

    Raises:
      DatasetError: unknown dataset or split, missing or corrupt file, bad columns.
    """
    if name not in CRYSTAL_DATASETS:
        raise DatasetError(
            f"unknown crystal dataset {name!r}; choose one of {', '.join(CRYSTAL_DATASETS)}"
        )
    if split not in _SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(_SPLITS)}")
    path = fetch(name, f"crystals/{name}/{split}.csv")
    prop = CRYSTAL_DATASETS[name]
    if not use_cache:
        return parse_crystal_csv(
            path, prop, niggli=niggli, primitive=primitive, limit=limit,
            num_workers=num_workers, progress=progress, name=name, split=split,
        )  # fmt: skip
    sha = sha256sum(path)
    size = path.stat().st_size
    meta = f"v{_CACHE_VERSION} sha256={sha} size={size} niggli={niggli} primitive={primitive} limit={limit} prop={prop}"
    key = hashlib.sha256(meta.encode()).hexdigest()[:20]
    cpath = _cache_path(name, split, key)
    if cpath.exists() and (ds := _load(cpath, meta, name, split)) is not None:
        if ds.skipped:
            _warn_skipped(path, ds.skipped)
        return ds
    ds = parse_crystal_csv(
        path, prop, niggli=niggli, primitive=primitive, limit=limit,
        num_workers=num_workers, progress=progress, name=name, split=split,
    )  # fmt: skip
    _save(cpath, ds, meta)
    return ds


# ----------------------------------------------------------------- a user's crystals

#: in-process memo of parsed user sources: (path, cache meta, max_atoms) -> crystals
_USER_MEMO: dict[tuple[str, str, int | None], CrystalDataset] = {}


def _cif_files(path: Path) -> list[Path]:
    """``path`` itself, or the ``.cif`` files under a folder (sorted, hidden ones left out)."""
    if path.is_file():
        return [path]
    files = sorted(
        f for f in path.rglob("*") if f.is_file() and f.suffix.lower() == ".cif"
        and not any(p.startswith(".") for p in f.relative_to(path).parts)
    )  # fmt: skip
    if not files:
        raise DataError(f"--dataset {path}: the folder holds no .cif file")
    return files


def _cif_items(path: Path, files: list[Path]) -> tuple[list[str], list[str], list[str]]:
    """``(labels, ids, texts)`` of every ``data_`` block of ``files``; a file that is not
    UTF-8 text or has no ``data_`` line is one item whose text says so (``"!why"``)."""
    labels, ids, texts = [], [], []
    for f in files:
        rel = f.name if f == path else f.relative_to(path).as_posix()
        try:
            blocks = _split_blocks(f.read_text(encoding="utf-8-sig")) or ["!no data_ block"]
        except (UnicodeDecodeError, OSError) as e:
            blocks = [f"!not a UTF-8 text file ({type(e).__name__})"]
        for k, block in enumerate(blocks):
            head = block.strip().partition("\n")[0].strip()
            name = head[5:] if head.startswith("data_") else str(k)
            one = len(blocks) == 1 and f != path
            labels.append(rel if one else f"{rel} block {k} ({head[:40]})")
            ids.append(rel if one else (f"{rel}:{name}" if f != path else name))
            texts.append(block)
    return labels, ids, texts


def _user_source(path: str | Path, data: UserData, progress: bool, use_cache: bool):
    """The good crystals of one user source with at most ``data.max_atoms`` atoms, parsed
    once (cached by checksum) and memoised, so each skip warning is given once."""
    p, prop = Path(path), data.property
    if not p.exists():
        raise MissingFileError(f"--dataset {path}: no such file or folder")
    csv_file = p.is_file() and p.suffix.lower() == ".csv"
    if prop and not csv_file:
        raise DataError(f"--property {prop}: {path} is not a csv (only a csv has properties)")
    files = [p] if csv_file else _cif_files(p)
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(p) if f != p else ''}\0{sha256sum(f)}\n".encode())
    meta = f"user v{_CACHE_VERSION} sha256={h.hexdigest()} niggli=True primitive=False prop={prop}"
    memo = (str(p.resolve()), meta, data.max_atoms)
    if memo in _USER_MEMO:
        return _USER_MEMO[memo]
    if (ds := _USER_MEMO.get(memo[:2] + (None,))) is not None:  # parsed, not yet filtered
        return _filter_max_atoms(ds, path, data.max_atoms, memo)
    key = hashlib.sha256(meta.encode()).hexdigest()[:20]
    cpath = _cache_path("user-" + "".join(c if c.isalnum() else "_" for c in p.stem), "all", key)
    if use_cache and cpath.exists() and (ds := _load(cpath, meta, str(p), "all")) is not None:
        if ds.skipped:
            _warn_skipped(p, ds.skipped, "row" if csv_file else "structure")
    elif csv_file:
        ds = parse_crystal_csv(p, prop, progress=progress, name=str(p), split="all",
                               error=DataError)  # fmt: skip
    else:
        labels, ids, texts = _cif_items(p, files)
        jobs = [(t, True, False) for t in texts if not t.startswith("!")]
        parsed = iter(_parse_jobs(jobs, f"parsing {p.name}", 0, progress))
        results = [t[1:] if t.startswith("!") else next(parsed) for t in texts]
        nan = [float("nan")] * len(ids)
        ds = _assemble(p, labels, ids, nan, results, str(p), "all", DataError, "structure")
    if use_cache and not cpath.exists():
        _save(cpath, ds, meta)
    _USER_MEMO[memo[:2] + (None,)] = ds
    return _filter_max_atoms(ds, path, data.max_atoms, memo)


def _filter_max_atoms(ds: CrystalDataset, path, max_atoms: int | None, memo: tuple):
    """``ds`` without the crystals of more than ``max_atoms`` atoms (counted, named in
    one warning), memoised under ``memo``."""
    if max_atoms is not None:
        counts = ds.arrays.num_atoms
        big = np.flatnonzero(counts > max_atoms)
        if big.size == len(counts):
            raise DataError(f"{path}: no crystal has at most --max-atoms {max_atoms} atoms")
        if big.size:
            names = ", ".join(f"{ds.material_ids[i]} ({counts[i]} atoms)" for i in big[:10])
            warnings.warn(
                f"{path}: skipped {big.size} crystal(s) with more than --max-atoms "
                f"{max_atoms} atoms: {names}{' ...' if big.size > 10 else ''}",
                stacklevel=4,
            )
        ds = _select(ds, np.flatnonzero(counts <= max_atoms), ds.split, big.size)
    _USER_MEMO[memo] = ds
    return ds


def _select(ds: CrystalDataset, idx: np.ndarray, split: str, more_skipped: int = 0):
    return dataclasses.replace(
        ds, split=split, material_ids=ds.material_ids[idx], properties=ds.properties[idx],
        arrays=ds.arrays.select(idx), num_skipped=ds.num_skipped + more_skipped,
    )  # fmt: skip


def load_user_crystals(
    path: str | Path, data: UserData, split: str, *, progress: bool = True,
    use_cache: bool = True,
) -> CrystalDataset:  # fmt: skip
    """One split of a user's crystals (``--dataset PATH``), in CDVAE's canonical cells.

    ``path`` is a folder of ``.cif`` files (every ``data_`` block of each), one ``.cif``
    with many ``data_`` blocks, or a CDVAE-style csv (a ``cif`` column, optional
    ``material_id`` and property columns; ``data.property`` picks the property, else the
    properties are NaN). Unreadable or disordered structures are skipped and named (file
    and block, or csv row) in one warning; so are, in another, crystals with more than
    ``data.max_atoms`` atoms. The parse is cached under ``cache_dir()/crystals`` keyed by
    the file's (or every file's) sha256.

    Splits: ``train`` and ``test`` are :func:`~genmodels.datasets.user.split_indices` of
    the good crystals (``data.test_fraction``, ``data.split_seed``); ``val`` is the test
    split (nothing here selects models on a validation split). ``data.train_file`` /
    ``data.test_file`` replace a split by a whole file (the other split is then all of
    ``path``, unless both are given).

    Args:
      path: the user's folder or file.
      data: the user data options.
      split: ``train``, ``val`` or ``test``.
      progress: show a bar while parsing.
      use_cache: read and write the parse cache.

    Returns:
      A :class:`CrystalDataset` named by ``path``.

    Raises:
      MissingFileError: no such file or folder.
      DataError: no good crystal, a missing ``cif`` or property column, or ``--property``
        without a csv.
    """
    if split not in _SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(_SPLITS)}")
    want = "train" if split == "train" else "test"
    given = data.train_file if want == "train" else data.test_file
    if given or data.train_file or data.test_file:
        ds = _user_source(given or path, data, progress, use_cache)  # a whole file: no split
        return _select(ds, np.arange(len(ds)), split)
    ds = _user_source(path, data, progress, use_cache)
    tr, te = split_indices(len(ds), data.test_fraction, data.split_seed)
    return _select(ds, tr if want == "train" else te, split)
