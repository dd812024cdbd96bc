"""Smoke test of benchmarks/boss.py in its --quick mode with fresh (init) models.

Checks that the benchmark runs on MNIST, writes the JSON (the same object main returns)
and the PNG, and that what it reports is well formed: one row per K with the three
samplers, finite classifier FIDs, valid BOSS grids of K steps, the DP's predicted cost
ratio in (0, 1] where the grids were computed. Quality is never asserted (untrained
models). Marked slow (several XLA compiles of the flow UNet):
``pytest -m slow tests/benchmarks/test_boss_bench.py``.
"""

import json
import math

import numpy as np
import pytest


@pytest.mark.slow
def test_quick_mnist_init(bench, tmp_path):
    pytest.importorskip("matplotlib")
    from genmodels.datasets.registry import data_dir
    from genmodels.metrics import images as M

    if not (M.ASSETS / M.CLASSIFIER_DATASETS["mnist"]).is_file():
        pytest.skip("the MNIST classifier is not shipped")
    if not any((data_dir() / "images").glob("**/*mnist*")):
        pytest.skip("MNIST is not in $GENMODELS_DATA_DIR")
    mod = bench("boss")
    out = tmp_path / "res" / "boss.json"
    result = mod.main(
        ["--quick", "--flow-checkpoint", "init", "--boss-checkpoint", "init", "--out", str(out)]
    )

    assert json.loads(out.read_text()) == result
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"benchmark", "meta", "rows", "reference"} <= set(result)
    meta = result["meta"]
    assert meta["flow"]["grids"]["source"] == "computed"
    assert meta["boss"]["grids"]["source"] == "flow grids"
    assert meta["straightened_k"] == 6  # boss_mnist's K
    rows = result["rows"]
    assert [r["k"] for r in rows] == list(mod.QUICK_KS)
    for r in rows:
        k = r["k"]
        assert r["nfe"] == k
        g = np.asarray(r["grid"])
        assert g.shape == (k + 1,) and g[0] == 1.0 and g[-1] == 0.0 and np.all(np.diff(g) < 0)
        ratio = r["dp_cost_ratio"]  # None when the uniform path costs 0 (a zero field)
        assert ratio is None or 0.0 <= ratio <= 1.0 + 1e-6
        for name in mod.ROWS:
            assert math.isfinite(r[name]["fid_classifier"]) and r[name]["fid_classifier"] >= 0
            assert r[name]["sample_s"] > 0
    ref = result["reference"]
    assert ref["steps"] == 12 and math.isfinite(ref["fid_classifier"])
