"""Checks shared by the sample-file readers: a bad file gets one :class:`DataError` line.

Each reader (:func:`~genmodels.domains.molecules.read_smiles`,
:func:`~genmodels.domains.graphs.read_graph6`, :func:`~genmodels.domains.crystals.read_cif`,
:func:`~genmodels.domains.images.read_images_npz`, ...) reads its file through
:func:`read_text` or :func:`load_npz`, so an empty, binary, truncated or wrong-kind file
raises a :class:`~genmodels.errors.DataError` that names the file, says what is wrong and
what the file should hold, instead of a ``UnicodeDecodeError``, ``EOFError`` or numpy's
advice to pass ``allow_pickle``. Tasks check the suffix first with :func:`check_suffix`.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genmodels.errors import DataError, MissingFileError

__all__ = ["check_file", "check_suffix", "load_npz", "read_bytes", "read_text"]

#: how to write a good sample file, appended to the messages
HOW = "write samples with `genmodels sample RECIPE --out FILE`"


def check_suffix(path: str | Path, suffixes: Sequence[str], kind: str) -> Path:
    """``path`` if its name ends with one of ``suffixes`` (case-insensitive).

    Args:
      path: a sample file.
      suffixes: the suffixes a task reads (``sample_suffixes``), e.g. ``(".g6",)``.
      kind: what the samples are, for the message (``"graphs"``).

    Returns:
      ``path`` as a ``Path``.

    Raises:
      DataError: another suffix, e.g. "x.g6 is a .g6 file; this recipe's samples are
        .smi/.txt/.csv/.csv.gz (molecules)".
    """
    path = Path(path)
    if not path.name.lower().endswith(tuple(s.lower() for s in suffixes)):
        found = f"a {path.suffix} file" if path.suffix else "a file without a suffix"
        raise DataError(
            f"{path} is {found}; this recipe's samples are {'/'.join(suffixes)} ({kind})"
        )
    return path


def check_file(path: str | Path) -> Path:
    """``path`` if it is a file of at least one byte.

    Raises:
      MissingFileError: no such file (or a folder).
      DataError: a file of zero bytes ("FILE holds no samples").
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a sample file" if path.is_dir() else "does not exist"
        raise MissingFileError(f"{path} {what}; {HOW}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} holds no samples (the file is empty); {HOW}")
    return path


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a sample file that exists and is not empty (:func:`check_file`)."""
    return check_file(path).read_bytes()


def read_text(path: str | Path, expected: str) -> str:
    """The text of a UTF-8 sample file (a leading byte-order mark dropped).

    Args:
      path: the file.
      expected: what it should hold, for the messages ("one SMILES a line").

    Returns:
      The decoded text.

    Raises:
      MissingFileError, DataError: see :func:`read_bytes`; also a binary file (a NUL
        byte) or one that is not UTF-8, with the offset of the first bad byte.
    """
    data = read_bytes(path)
    bad = data.find(b"\x00")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = e.start if bad < 0 else min(bad, e.start)
    if bad >= 0:
        raise DataError(
            f"{path} is a binary file, not text (byte {bad} is not UTF-8 text); expected {expected}"
        )
    return text


def load_npz(path: str | Path, key: str, expected: str) -> np.ndarray:
    """Array ``key`` of an ``.npz`` archive, read without pickle.

    Args:
      path: the archive.
      key: the array's name (``"images"``, ``"samples"``).
      expected: what the archive should hold, for the messages ("uint8 'images' [N, H, W, C]").

    Returns:
      The array (at least one row when it has a leading axis).

    Raises:
      MissingFileError: no such file.
      DataError: an empty file, not an npz archive (a bare ``.npy``, a pickle, text), a
        truncated or corrupt archive, no array ``key`` (the keys found are named), an
        array of Python objects, or an array with zero rows.
    """
    path = check_file(path)
    try:
        obj = np.load(path, allow_pickle=False)
        if not isinstance(obj, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path} is a bare .npy array, not an .npz archive; expected {expected}"
            )
        with obj:
            keys = list(obj.files)
            if key not in keys:
                raise DataError(
                    f"{path}: no {key!r} array (arrays found: {', '.join(keys) or 'none'}); "
                    f"expected {expected}; is it a sample file of this recipe?"
                )
            x = obj[key]
    except DataError:
        raise
    except ValueError as e:  # allow_pickle=False refused an object array or a pickle
        msg = str(e)
        what = (
            f"array {key!r} holds Python objects, which are not loaded for safety"
            if "bject arrays" in msg
            else "not an .npz archive"
            if "pickle" in msg
            else f"a corrupt .npz archive ({msg.splitlines()[0][:80] if msg else 'ValueError'})"
        )
        raise DataError(f"{path}: {what}; expected {expected}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise DataError(
            f"{path} is not a readable .npz archive (truncated or corrupt: {type(e).__name__}); "
            f"expected {expected}; {HOW}"
        ) from None
    if x.ndim and not len(x):
        raise DataError(f"{path} holds no samples ({key!r} has shape {x.shape}); {HOW}")
    return x
