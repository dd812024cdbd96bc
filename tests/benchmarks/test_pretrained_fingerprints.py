"""A refactor keeps results: every shipped pretrained model samples exactly the files
recorded from the code that made its ``metrics.json`` (benchmarks/pretrained_fingerprints.py).

Slow (about 5 minutes on 2 cores): ``python -m pytest -m slow tests/benchmarks``. It runs
the script in a subprocess on one device, as the record was made (several simulated
devices shard the batch, which may change float rounding).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_pretrained_model_reproduces_its_recorded_samples():
    record = json.loads((ROOT / "benchmarks/results/pretrained_fingerprints.json").read_text())
    shipped = sorted(p.name for p in (ROOT / "recipes/pretrained").iterdir() if p.is_dir())
    assert sorted(record) == shipped
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/pretrained_fingerprints.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert len(lines) == len(shipped) and all(line.split()[1] == "same" for line in lines)
