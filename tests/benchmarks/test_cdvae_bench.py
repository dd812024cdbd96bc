"""Smoke test of benchmarks/cdvae.py --quick (slow: three XLA compilations of CDVAE).

Run with ``pytest -m slow tests/benchmarks/test_cdvae_bench.py``. Speed is never asserted.
"""

import json
import os

import pytest

needs_data = pytest.mark.skipif(
    not os.environ.get("GENMODELS_DATA_DIR"), reason="GENMODELS_DATA_DIR (perov_5) not set"
)


@pytest.mark.slow
@needs_data
def test_quick_run_writes_results(bench, tmp_path):
    mod = bench("cdvae")
    out = tmp_path / "cdvae.json"
    assert mod.main(["--quick", "--checkpoint", "init", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    (row,) = got["sampling"]
    assert row["decoder_calls"] == 50 and row["full_schedule_calls"] == 5000
    assert 1 <= row["padded_atoms"] <= 20
    assert row["sample_s"] > 0 and row["decoder_alone_s"] > 0
    assert got["training"]["iters"] == 2 and got["training"]["finite_loss"]
