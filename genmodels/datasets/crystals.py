"""The CDVAE crystal benchmarks: perov_5, carbon_24 and mp_20.

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
counted, and named in a warning.
"""

from __future__ import annotations

import csv
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
from genmodels.domains.crystals import CrystalArrays, canonical_structure

__all__ = [
    "CRYSTAL_DATASETS",
    "CRYSTAL_MAX_ATOMS",
    "CrystalDataset",
    "load_crystals",
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


def _warn_skipped(path, bad: Sequence[str]) -> None:
    shown = "; ".join(bad[:10]) + (" ..." if len(bad) > 10 else "")
    warnings.warn(
        f"{path}: skipped {len(bad)} row(s) with an unreadable CIF: {shown}", stacklevel=3
    )


def parse_crystal_csv(
    path: str | Path,
    prop: str,
    *,
    niggli: bool = True,
    primitive: bool = False,
    limit: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
    name: str = "",
    split: str = "",
) -> CrystalDataset:
    """Parse a CDVAE-format CSV (no caching; see :func:`load_crystals`).

    Args:
      path: CSV with columns ``material_id``, ``cif`` and ``prop``.
      prop: property column to keep.
      niggli, primitive: canonical cell settings (:func:`canonical_structure`).
      limit: parse only the first ``limit`` rows.
      num_workers: worker processes for parsing (0: in this process).
      progress: show a tqdm bar.
      name, split: recorded in the result and in messages.

    Returns:
      A :class:`CrystalDataset`.

    Raises:
      DatasetError: missing columns, or no row could be parsed.
    """
    csv.field_size_limit(1 << 26)  # a CIF field can exceed the default 128 kB
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for col in ("material_id", "cif", prop):
            if col not in cols:
                raise DatasetError(f"{path}: no column {col!r} (columns: {cols})")
        rows = []
        for k, row in enumerate(reader):
            if limit is not None and k >= limit:
                break
            rows.append(row)
    jobs = [(r["cif"] or "", niggli, primitive) for r in rows]
    desc = f"parsing {name or Path(path).name} {split}".strip()
    if num_workers > 0:
        # spawn, not fork: the parent may hold JAX's threads.
        with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn")) as ex:
            it = ex.map(_parse_row, jobs, chunksize=64)
            results = list(tqdm(it, total=len(jobs), desc=desc, disable=not progress))
    else:
        results = [_parse_row(j) for j in tqdm(jobs, desc=desc, disable=not progress)]
    fr, zs, lat, ids, props, bad = [], [], [], [], [], []
    for k, (row, res) in enumerate(zip(rows, results)):
        if isinstance(res, str):
            bad.append(f"row {k} (material_id {row['material_id']!r}): {res}")
            continue
        fr.append(res[0])
        zs.append(res[1])
        lat.append(res[2])
        ids.append(row["material_id"])
        props.append(_float(row[prop]))
    if bad:
        _warn_skipped(path, bad)
    if not fr:
        raise DatasetError(f"{path}: no crystal could be parsed ({len(rows)} rows)")
    arrays = CrystalArrays(
        frac=np.concatenate(fr),
        atomic_numbers=np.concatenate(zs),
        num_atoms=np.asarray([len(z) for z in zs], np.int64),
        lattice=np.stack(lat),
    )
    return CrystalDataset(
        name=name,
        split=split,
        material_ids=np.asarray(ids, dtype=str),
        properties=np.asarray(props, np.float64),
        arrays=arrays,
        num_skipped=len(bad),
        skipped=tuple(bad),
    )


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
