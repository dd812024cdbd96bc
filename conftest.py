"""Shared test and notebook set-up: data from ../shared/data, nothing downloaded, caches in tmp."""

import os
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
os.environ.setdefault("GENMODELS_DATA_DIR", str((_ROOT / ".." / "shared" / "data").resolve()))
os.environ["GENMODELS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
# XLA's persistent compilation cache, shared by the test workers, the command-line
# subprocesses and the notebook kernels: many tests compile the same programs (a recipe's
# network, its sampler, each parameter initialiser). Keyed by the program and the jax
# version, so it changes no result; set JAX_COMPILATION_CACHE_DIR to move it.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"genmodels-tests-xla-cache-{os.getuid()}"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_collection_modifyitems(config, items):
    """The notebooks sample pretrained models for minutes each (17 min in all on 2 cores):
    they run with ``pytest -m slow``; tests/test_notebooks.py checks them cheaply."""
    import pytest

    for item in items:
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
