"""Shared test and notebook set-up: data from ../shared/data, nothing downloaded, caches in tmp."""

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
os.environ.setdefault("GENMODELS_DATA_DIR", str((_ROOT / ".." / "shared" / "data").resolve()))
os.environ["GENMODELS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
