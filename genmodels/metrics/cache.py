"""Disk cache of evaluation reference statistics (FCD / NSPDK of a test split, crystal
fingerprints, FID features): computed once, then read back in a fraction of a second.

:func:`cached_arrays` stores a dict of plain numpy arrays in
``cache_dir()/metrics/<kind>-<digest>.npz``. The digest hashes a JSON key that must name
everything the arrays depend on: the data files' sha256 (:func:`data_checksums`), the
split, any subset or row limit, a digest of the reference content where it is at hand
(:func:`content_digest`) and the metric's version (bump it whenever the computation
changes). Files are written atomically (a temporary file in the same folder, then
``os.replace``), read with ``allow_pickle=False``, and hold their own key, so a corrupt,
foreign or stale file is recomputed (with a warning) rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from genmodels.datasets.registry import REGISTRY, cache_dir, data_dir, sha256sum

__all__ = ["cache_path", "cached_arrays", "content_digest", "data_checksums", "file_sha256"]

_KEY = "__key__"
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, hashed once per process for each (path, mtime, size).

    Args:
      path: the file.

    Returns:
      The hex digest.
    """
    p = Path(path).resolve()
    st = p.stat()
    memo = (str(p), st.st_mtime_ns, st.st_size)
    if memo not in _SHA_MEMO:
        _SHA_MEMO[memo] = sha256sum(p)
    return _SHA_MEMO[memo]


def data_checksums(name: str, paths: Iterable[str] | None = None) -> dict[str, str]:
    """sha256 of a registered data set's files, for a cache key.

    A pinned checksum is taken as pinned (:func:`~genmodels.datasets.registry.fetch` has
    verified the file against it); an unpinned file is hashed (:func:`file_sha256`), or
    recorded as ``"absent"`` when it is not in the data folder.

    Args:
      name: the data set's registry name (an unregistered name gives ``{}``).
      paths: only these of its files (default: all).

    Returns:
      ``{relative path: sha256}``.
    """
    card = REGISTRY.get(name)
    if card is None:
        return {}
    out = {}
    for spec in card.files:
        if paths is not None and spec.path not in paths:
            continue
        local = data_dir() / spec.path
        out[spec.path] = spec.sha256 or (file_sha256(local) if local.is_file() else "absent")
    return out


def content_digest(items: Iterable[str | bytes | np.ndarray]) -> str:
    """sha256 of a sequence of strings or arrays (e.g. a split's SMILES), for a cache key."""
    h = hashlib.sha256()
    for x in items:
        if isinstance(x, np.ndarray):
            h.update(f"{x.dtype.str}{x.shape}".encode())
            x = np.ascontiguousarray(x).tobytes()
        h.update(x if isinstance(x, bytes) else str(x).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _key_text(kind: str, key: Mapping, version: int) -> str:
    return json.dumps({"kind": kind, "version": version, **key}, sort_keys=True, default=str)


def cache_path(kind: str, key: Mapping, version: int) -> Path:
    """The file :func:`cached_arrays` uses for ``(kind, key, version)``."""
    digest = hashlib.sha256(_key_text(kind, key, version).encode()).hexdigest()[:24]
    return cache_dir() / "metrics" / f"{kind}-{digest}.npz"


def _read(path: Path, text: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is recomputed
        warnings.warn(f"ignoring unreadable metric cache {path} ({e}); recomputing", stacklevel=3)
        return None
    if str(arrays.pop(_KEY, "")) != text:
        warnings.warn(
            f"ignoring metric cache {path}: made for another key; recomputing", stacklevel=3
        )
        return None
    return arrays


def cached_arrays(
    kind: str,
    key: Mapping,
    compute: Callable[[], Mapping[str, np.ndarray]],
    *,
    version: int,
) -> dict[str, np.ndarray]:
    """Arrays from the metric cache, or ``compute()`` written there.

    Args:
      kind: a short name of what is stored (file name prefix), e.g. ``"fcd-ref"``.
      key: JSON-serializable values the arrays depend on (data checksums, split, limits,
        content digests).
      compute: returns the arrays (plain numeric or string numpy arrays, no objects).
      version: the metric's version; bump it when the computation changes.

    Returns:
      The arrays; a cache hit returns exactly what ``compute`` returned when it was
      written (npz is lossless).
    """
    text = _key_text(kind, key, version)
    path = cache_path(kind, key, version)
    if path.is_file() and (arrays := _read(path, text)) is not None:
        return arrays
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    if bad := [k for k, v in arrays.items() if v.dtype == object]:
        raise TypeError(f"cached_arrays stores plain arrays only; {bad} hold Python objects")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".part")
    except OSError as e:  # a read-only cache folder costs time, not the result
        warnings.warn(f"cannot write the metric cache {path} ({e}); not cached", stacklevel=2)
        return arrays
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{_KEY: np.asarray(text)})
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return arrays
