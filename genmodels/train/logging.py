"""Metric logging: one JSON object per line, optionally TensorBoard scalars."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path


class MetricsLogger:
    """Append metrics to ``workdir/metrics.jsonl`` (and TensorBoard when asked).

    Args:
      workdir: run folder (``None``: log nowhere).
      tensorboard: also write TensorBoard event files under ``workdir/tb``.
    """

    def __init__(self, workdir: str | Path | None, tensorboard: bool = False):
        self.path = None if workdir is None else Path(workdir) / "metrics.jsonl"
        self._tb = None
        if tensorboard and workdir is not None:
            try:
                from tensorboardX import SummaryWriter  # optional dependency

                self._tb = SummaryWriter(str(Path(workdir) / "tb"))
            except ImportError:
                warnings.warn(
                    "tensorboard=True but tensorboardX is not installed; JSONL only", stacklevel=2
                )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": int(step)}
        for k, v in metrics.items():
            v = float(v)
            row[k] = v if math.isfinite(v) else str(v)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, float(v), step)

    def drop_after(self, step: int) -> int:
        """Remove the rows of steps after ``step`` (and a cut last line) from the log, so
        that a run resumed from checkpoint ``step`` logs each step once. The file is
        rewritten atomically (a temporary file, then ``os.replace``).

        Returns:
          The number of lines removed.
        """
        if self.path is None or not self.path.exists():
            return 0
        lines = self.path.read_text().splitlines(keepends=True)
        keep = [line for line in lines if _row_step(line) <= step]
        if len(keep) < len(lines):
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(keep))
            os.replace(tmp, self.path)
        return len(lines) - len(keep)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _row_step(line: str) -> float:
    """The step of a log line; infinite for a line cut by a kill (it is dropped)."""
    try:
        return int(json.loads(line)["step"]) if line.endswith("\n") else math.inf
    except (ValueError, KeyError, TypeError):
        return math.inf


def read_metrics(workdir: str | Path) -> list[dict]:
    """All rows of ``workdir/metrics.jsonl``."""
    p = Path(workdir) / "metrics.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
