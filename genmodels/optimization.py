"""Latent property optimisation scored as CDVAE does it (``genmodels optimize``).

CDVAE (Xie et al., ICLR 2022, Sec. 5, "property optimization"; txie-93/cdvae
``scripts/evaluate.py`` ``optimization`` and ``scripts/compute_metrics.py`` ``OptEval``):
the latents of the first 100 test crystals are moved by Adam (rate 1e-3, 5,000 steps) to
minimize the property head ``fc_property(z)``; after steps ``0, k, 2k, ...`` and the last
(``k = 5000 // 9``, 10 snapshots) the latents are decoded by Langevin dynamics. Each
decoded crystal that is valid gets the property predicted by the separate property model;
a start succeeds at ``p`` % when its best valid snapshot is at or below the ``p``-th
percentile of the training property (SR5, SR10, SR15).

The method's own optimiser is ``optimize_property`` (:class:`PropertyOptimizer`); the
scoring is :func:`genmodels.metrics.crystals.optimization_metrics`.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from genmodels.metrics.crystals import (
    REFERENCE_PERCENTILES,
    SR_PERCENTILES,
    optimization_metrics,
    property_percentiles,
)
from genmodels.metrics.property_model import PropertyModel

__all__ = ["PropertyOptimizer", "optimize_and_score"]


@runtime_checkable
class PropertyOptimizer(Protocol):
    """A method with CDVAE's latent property optimisation (``optimize_property``)."""

    def optimize_property(self, model: Any, key: jax.Array, *args: Any, **kwargs: Any) -> dict:
        """``{"iterations", "z", "property", "structures"}`` (CDVAE ``optimize_property``)."""
        ...


def _nan_to_none(x: np.ndarray) -> list:
    """Nested lists of a float array with NaN written as ``null`` (strict JSON)."""
    return [_nan_to_none(r) if np.ndim(r) else (None if math.isnan(r) else float(r)) for r in x]


def optimize_and_score(
    method: Any,
    model: Any,
    property_model: PropertyModel,
    key: jax.Array,
    *,
    num_starts: int = 100,
    steps: int = 5000,
    lr: float = 1e-3,
    num_saved: int = 10,
    ld_steps: int | None = None,
    start: str = "data",
    split: str = "test",
    out_dir: str | Path | None = None,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Optimise latents of a CDVAE model, decode the snapshots and score SR5/SR10/SR15.

    Args:
      method: a :class:`PropertyOptimizer` (a CDVAE method with a crystal task).
      model: its model, trained with ``predict_property=True``.
      property_model: the property model that scores the decoded crystals.
      key: PRNG key (start latents and decoding).
      num_starts, steps, lr, num_saved: starts, Adam steps, rate and saved snapshots
        (CDVAE: 100, 5,000, 1e-3, 10).
      ld_steps: Langevin steps per noise level when decoding (default: the config's).
      start: ``"data"`` (the first ``num_starts`` crystals of ``split``, CDVAE's default)
        or ``"random"`` (``z ~ N(0, I)``).
      split: the split the starting crystals come from.
      out_dir: write ``optimized.cif`` (every snapshot's crystals, snapshot after
        snapshot) and ``optimize.json`` (the returned record) there.
      n_jobs: worker processes for the CrystalNN fingerprints of the validity check
        (default: one per CPU, at most 8, from 256 crystals on; else none).

    Returns:
      A record: ``metrics`` (SR5, SR10, SR15, ``validity``, ``validity_final``),
      ``thresholds`` (ours from the training split, and CDVAE's), the settings, the
      saved iterations, the predicted property of each snapshot's crystals (``null``
      where invalid), their validity, the head's property of the latents, ``wall_s``.
    """
    t0 = time.perf_counter()
    res = method.optimize_property(
        model, key, num=num_starts, steps=steps, lr=lr, start=start, split=split,
        num_saved=num_saved, ld_steps=ld_steps,
    )  # fmt: skip
    train_prop = method.task.train_arrays()["property"]
    thresholds = property_percentiles(train_prop)
    if n_jobs is None:
        n_jobs = min(os.cpu_count() or 1, 8) if num_starts * len(res["structures"]) >= 256 else 1
    metrics, props, valid = optimization_metrics(
        res["structures"], property_model.predict, thresholds, n_jobs=n_jobs
    )
    dataset = method.config.dataset
    settings = dict(num_starts=num_starts, steps=steps, lr=lr, num_saved=num_saved)
    settings.update(ld_steps=ld_steps, start=start, split=split)
    record = {
        "metrics": metrics,
        "thresholds": {
            "percentiles": list(SR_PERCENTILES),
            "values": [float(t) for t in thresholds],
            "from": f"{dataset} {method.task.train_split} ({np.isfinite(train_prop).sum()} crystals)",
            "reference": list(REFERENCE_PERCENTILES.get(dataset, ())) or None,
        },
        "settings": settings,
        "iterations": [int(i) for i in res["iterations"]],
        "property_model": property_model.record.get("test", {}),
        "predicted_property": _nan_to_none(props),
        "valid": valid.astype(int).tolist(),
        "head_property": _nan_to_none(np.asarray(res["property"], np.float64)),
        "wall_s": time.perf_counter() - t0,
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        method.write_samples([s for snap in res["structures"] for s in snap], out / "optimized.cif")
        (out / "optimize.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
