"""Reading pickles whose checksum is not pinned, without running code from them.

A pickle names the functions that rebuild its objects, and :func:`pickle.load` calls
them: a crafted file runs ``os.system`` or anything else. :func:`safe_load` unpickles
with an allow-list instead: the built-in containers and scalars (dict, list, tuple, str,
bytes, int, float, bool, None, which need no lookup), ``set``/``frozenset``/``bytearray``/
``complex``, and numpy arrays, dtypes and scalars (the helpers numpy's own pickles name,
under ``numpy.core`` or ``numpy._core``). Any other global refused raises
:class:`~genmodels.errors.DataError` naming the file and the refused name, before any
object of the file is built.

Use it for pickles from a folder a user controls (the extracted CIFAR-10 batches). Files
that need richer objects (networkx graphs, ``Counter``s) are read with :mod:`pickle` only
after :func:`genmodels.datasets.registry.fetch` has verified their pinned sha256.
"""

from __future__ import annotations

import builtins
import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from genmodels.errors import DataError

__all__ = ["safe_load"]

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of ``bytes`` use it (latin-1 only)."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin-1", errors)


# (module, name) -> object; module names as written by numpy 1.x and 2.x and Python 2 and 3
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _m in ("numpy.core", "numpy._core"):
    _ALLOWED[_m + ".multiarray", "_reconstruct"] = _multiarray._reconstruct  # protocol < 5
    _ALLOWED[_m + ".multiarray", "scalar"] = _multiarray.scalar  # np.int64(3), ...
    if hasattr(_numeric, "_frombuffer"):  # ndarray.__reduce_ex__(5)
        _ALLOWED[_m + ".numeric", "_frombuffer"] = _numeric._frombuffer
for _m in ("builtins", "__builtin__"):
    for _n in ("set", "frozenset", "bytearray", "complex"):
        _ALLOWED[_m, _n] = getattr(builtins, _n)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of :data:`_ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return found


def safe_load(
    path: str | Path,
    *,
    encoding: str = "ASCII",
    what: str = "pickle of arrays, lists and strings",
    fix: str = "Replace it with a trusted copy.",
) -> Any:
    """Unpickle ``path`` allowing only arrays, containers, strings and numbers.

    Args:
      path: the pickle file.
      encoding: how Python 2 ``str`` objects are decoded (``"bytes"`` keeps them as
        bytes, as the CIFAR-10 batches need); see :func:`pickle.load`.
      what: what the file should be, for the error message (``"CIFAR-10 batch"``).
      fix: the last sentence of the error message: what to do.

    Returns:
      The unpickled object.

    Raises:
      DataError: the file names a global outside the allow-list (the message names it),
        is truncated, or is not a pickle.
      OSError: the file cannot be opened.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, encoding=encoding).load()
        except pickle.UnpicklingError as e:
            if str(e).startswith("refused global"):
                raise DataError(
                    f"{path}: not loaded: a {what} needs no code, but this file asks for "
                    f"{str(e).removeprefix('refused global ')}. {fix}"
                ) from e
            raise DataError(f"{path}: not a readable {what} ({e}). {fix}") from e
        except Exception as e:  # any other failure to rebuild the objects: unusable file
            raise DataError(
                f"{path}: not a readable {what} ({type(e).__name__}: {e}). {fix}"
            ) from e
