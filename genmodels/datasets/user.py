"""A user's own data: ``--dataset PATH`` next to the benchmark names.

Every recipe's ``dataset`` field takes a benchmark name (``qm9``, ``community_small``,
``perov_5``, ``mnist``) or a path; :func:`is_user_path` tells them apart and
:func:`user_data_kind` says which task reads a path (by suffix, or by what a folder holds).
:class:`UserData` holds the options of a user file (SMILES column, split, size limits,
property); it is a field of every recipe config with a ``dataset`` (``--data.FIELD``; the
command line also takes ``--test-fraction``, ``--split-seed``, ``--smiles-column``,
``--max-atoms``, ``--property``). :func:`split_indices` is the one deterministic
train/test split of a user file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genmodels.errors import DataError, MissingFileError, UsageError

#: suffixes of user data files, by data kind
USER_SUFFIXES: dict[str, tuple[str, ...]] = {
    "molecules": (".csv", ".csv.gz", ".smi", ".smiles", ".txt"),
    "graphs": (".g6", ".s6", ".graphml", ".edgelist"),
    "crystals": (".cif",),
    "images": (".npz",),
}
_IMAGE_FILES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class UserData:
    """Options of a user data file (ignored for the benchmark data sets).

    Attributes:
      test_fraction: share of the file held out as the test split (deterministic).
      split_seed: seed of that split.
      train_file: a separate training file (then ``dataset`` is ignored for training).
      test_file: a separate test file, taken as given (no split).
      smiles_column: molecule csv: the SMILES column (default: the first column whose
        name contains "smiles", case-insensitive).
      max_atoms: molecules / crystals: skip larger ones (default: the data's largest).
      property: crystals csv: the property column to predict / optimise.
    """

    test_fraction: float = 0.1
    split_seed: int = 0
    train_file: str | None = None
    test_file: str | None = None
    smiles_column: str | None = None
    max_atoms: int | None = None
    property: str | None = None

    def __post_init__(self):
        if not 0.0 < self.test_fraction < 1.0:
            raise UsageError(f"--test-fraction must lie in (0, 1), got {self.test_fraction}")
        if self.max_atoms is not None and self.max_atoms < 1:
            raise UsageError(f"--max-atoms must be at least 1, got {self.max_atoms}")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix.lower()


def is_user_path(dataset: str) -> bool:
    """Whether ``dataset`` names a file or folder rather than a benchmark data set."""
    p = Path(dataset)
    known = {s for group in USER_SUFFIXES.values() for s in group}
    return "/" in dataset or "\\" in dataset or _suffix(p) in known or p.exists()


def user_data_kind(dataset: str) -> str:
    """``molecules``, ``graphs``, ``crystals`` or ``images`` for a user path ("" for a
    benchmark name). A folder is read by what it holds (``.cif`` files: crystals, image
    files or class subfolders of them: images, edge lists: graphs).

    Raises:
      MissingFileError: the path does not exist.
      DataError: a folder or suffix no task reads.
    """
    if not is_user_path(dataset):
        return ""
    p = Path(dataset)
    if not p.exists():
        raise MissingFileError(f"--dataset {dataset}: no such file or folder")
    if p.is_file():
        for kind, suffixes in USER_SUFFIXES.items():
            if _suffix(p) in suffixes:
                return kind
        raise DataError(f"--dataset {dataset}: unknown data file type {_suffix(p)!r}; " + _kinds())
    files = [f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")]
    suffixes = {_suffix(f) for f in files}
    if ".cif" in suffixes:
        return "crystals"
    if suffixes & set(_IMAGE_FILES):
        return "images"
    if suffixes & {".edgelist", ".txt", ".edges"} or suffixes & set(USER_SUFFIXES["graphs"]):
        return "graphs"
    raise DataError(f"--dataset {dataset}: the folder holds no file a task reads; " + _kinds())


def _kinds() -> str:
    parts = [f"{k}: {', '.join(v)}" for k, v in USER_SUFFIXES.items()]
    return "use " + "; ".join(parts) + " (or a folder of .cif, image or edge-list files)"


def split_indices(
    n: int, test_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test split of ``n`` items: a seeded permutation, the first
    ``ceil(n * test_fraction)`` (at least 1 when ``n >= 2``) are the test split.

    Returns:
      ``(train_idx, test_idx)``, each sorted int64.

    Raises:
      DataError: fewer than 2 items.
    """
    if n < 2:
        raise DataError(f"a user data file needs at least 2 good items to split, got {n}")
    k = min(max(1, math.ceil(n * test_fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]).astype(np.int64), np.sort(perm[:k]).astype(np.int64)


#: the run folder's copy of a user's data files (``RUN/data/NAME``)
RUN_DATA_DIR = "data"
_FILE_FIELDS = (("dataset", ""), ("train_file", "train-"), ("test_file", "test-"))


def _paths(config) -> dict[str, str]:
    """``{field: path}`` of the user data files a recipe config names."""
    names = {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else ()
    if "dataset" not in names or not is_user_path(str(config.dataset)):
        return {}
    data = getattr(config, "data", None) or UserData()
    out = {"dataset": str(config.dataset)}
    for name in ("train_file", "test_file"):
        if getattr(data, name):
            out[name] = str(getattr(data, name))
    return out


def _with_paths(config, paths: dict[str, str]):
    data = getattr(config, "data", None) or UserData()
    data = dataclasses.replace(data, **{k: v for k, v in paths.items() if k != "dataset"})
    return dataclasses.replace(config, dataset=paths["dataset"], data=data)


def _copy(src: Path, dst: Path) -> None:
    """Copy a file or folder to ``dst`` atomically (a temporary name, then a rename)."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if src.is_dir():
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".*"))
    else:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _is_lead() -> bool:
    from genmodels.train.distributed import is_lead

    return is_lead()


def snapshot_user_data(config, workdir: str | Path):
    """Copy the user data files a recipe config trains on into ``workdir/data``.

    The run folder then holds everything its vocabulary, sizes and split are derived
    from (the same file and the same ``--test-fraction``/``--split-seed`` give the same
    split), so ``sample`` and ``evaluate`` need only the checkpoint, also on another
    machine. A copy that exists already (a resumed run) is kept; an original file that
    has changed since is refused. Benchmark data sets are left alone.

    Returns:
      ``config`` naming the copies as ``data/NAME``, relative to the run folder
      (:func:`resolve_run_data` makes them absolute); this is the config the
      checkpoints store.

    Raises:
      MissingFileError: a named file or folder does not exist.
      DataError: a resumed run's original file differs from its copy.
    """
    run = Path(workdir)
    paths = _paths(resolve_run_data(config, run))
    if not paths:
        return config
    dest = run / RUN_DATA_DIR
    dest.mkdir(parents=True, exist_ok=True)
    stored, sources = {}, {}
    for field, prefix in _FILE_FIELDS:
        if field not in paths:
            continue
        src = Path(paths[field]).resolve()
        if src.parent == dest.resolve():  # already the run's copy
            stored[field] = f"{RUN_DATA_DIR}/{src.name}"
            continue
        if not src.exists():
            flag = "--dataset" if field == "dataset" else "--" + field.replace("_", "-")
            raise MissingFileError(f"{flag} {src}: no such file or folder")
        dst = dest / (prefix + src.name)
        if not dst.exists():
            if _is_lead():  # several processes: process 0 copies
                _copy(src, dst)
        elif src.is_file() and dst.is_file() and src.read_bytes() != dst.read_bytes():
            flag = "--dataset" if field == "dataset" else "--" + field.replace("_", "-")
            raise DataError(
                f"{src} changed since this run started (its copy is {dst}); resume with "
                f"{flag} {dst}, or start a new --workdir"
            )
        stored[field], sources[field] = f"{RUN_DATA_DIR}/{dst.name}", str(src)
    if sources:
        (dest / "sources.json").write_text(json.dumps(sources, indent=1) + "\n")
    return _with_paths(config, stored)


def resolve_run_data(config, run_dir: str | Path | None):
    """``config`` with its ``data/NAME`` paths (see :func:`snapshot_user_data`) made
    absolute against the run folder ``run_dir`` (or its ``checkpoints`` folder); other
    configs unchanged."""
    paths = _paths(config)
    if not paths or run_dir is None:
        return config
    run = Path(run_dir)
    run = run.parent if run.name == "checkpoints" else run
    fixed = {
        k: str(run / p) if Path(p).parts[:1] == (RUN_DATA_DIR,) and (run / p).exists() else p
        for k, p in paths.items()
    }
    return config if fixed == paths else _with_paths(config, fixed)
