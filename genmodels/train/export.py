"""Exported models: the parameters a recipe samples with, without the training state.

A training checkpoint holds the raw parameters, their EMA and the optimizer state (about
four copies of the network). A pretrained model shipped with a recipe needs one: the
EMA parameters, or the raw ones for recipes whose reference samples without EMA (GDSS on
generic graphs and molecules). :func:`export_model` writes that set in the checkpoint
layout (``DEST/checkpoints/<step>``, atomic, orbax), so :func:`genmodels.train.load_model`
reads exported and training folders alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from flax import nnx

from genmodels.train.checkpoint import Checkpointer

#: key in the checkpoint metadata marking an exported (parameters-only) model
EXPORT_KEY = "export"


def export_model(
    model: nnx.Module, dest: str | Path, *, meta: dict[str, Any], params: str, overwrite=False
) -> Path:
    """Write ``model``'s parameters (and non-parameter state) to ``dest/checkpoints``.

    Args:
      model: the module whose current values are exported.
      dest: the export folder (e.g. ``recipes/pretrained/<recipe>``).
      meta: the training checkpoint's metadata (config, its hash, recipe name, step),
        stored alongside: loading checks the recipe as for the training run.
      params: which parameters these are, ``"ema"`` or ``"raw"`` (recorded in the meta).
      overwrite: replace an existing export in ``dest``.

    Returns:
      The ``checkpoints`` folder written.
    """
    if params not in ("ema", "raw"):
        raise ValueError(f"params must be 'ema' or 'raw', got {params!r}")
    folder = Path(dest) / "checkpoints"
    if folder.exists():
        if not overwrite:
            raise FileExistsError(f"{folder} exists; pass overwrite=True to replace it")
        shutil.rmtree(folder)
    _, values, rest = nnx.split(model, nnx.Param, ...)
    step = int(meta.get("step", 0))
    ckpt = Checkpointer(folder, keep=1, async_save=False)
    try:
        ckpt.save(step, {"params": values, "rest": rest}, dict(meta, **{EXPORT_KEY: params}))
    finally:
        ckpt.close()
    return folder


def folder_size(path: str | Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
