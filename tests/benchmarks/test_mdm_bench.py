"""Smoke test of benchmarks/mdm.py in its --quick mode with a fresh (init) model.

Checks that the benchmark runs on QM9, writes the JSON (the same object main returns) and
the PNG, and that what it reports holds by construction: FHS makes exactly one network
call per real token of the largest molecule of the batch (so at most the token positions
N + N (N - 1) / 2), the cached ancestral sampler at most T calls, histograms are
normalized and entropies finite, non-negative and at most log K. Speed and sample
quality are never asserted (an untrained model; see DESIGN.md). Marked slow (about a
minute of XLA compiles): ``pytest -m slow tests/benchmarks/test_mdm_bench.py``.
"""

import json
import math

import pytest

_ROW_KEYS = {
    "sampler",
    "steps",
    "precision",
    "draw",
    "batch",
    "nfe",
    "nfe_runs",
    "max_tokens_runs",
    "sample_s",
    "sample_runs_s",
    "first_call_s",
    "compile_s",
    "samples_per_s",
    "s_per_nfe",
    "quality",
}
_QUALITY_KEYS = {
    "num_samples",
    "token_tv",
    "token_tv_se",
    "token_entropy",
    "token_entropy_se",
    "token_hist",
    "validity_wo_correction",
    "validity_wo_correction_se",
    "uniqueness_wo_correction",
    "validity",
    "bond_tv",
    "bond_entropy",
    "bond_entropy_se",
}


def _check_row(r: dict, capacity: int, batch: int, repeats: int) -> None:
    assert set(r) == _ROW_KEYS
    assert r["batch"] == batch
    assert len(r["nfe_runs"]) == len(r["max_tokens_runs"]) == repeats + 1
    assert len(r["sample_runs_s"]) == repeats
    assert r["sample_s"] > 0 and r["first_call_s"] > 0 and r["compile_s"] >= 0
    for nfe, tokens in zip(r["nfe_runs"], r["max_tokens_runs"]):
        assert 1 <= tokens <= capacity
        if r["sampler"] == "fhs":
            assert nfe == tokens  # one token per call, L_max calls
        else:
            assert 1 <= nfe <= r["steps"]
    assert r["nfe"] == pytest.approx(sum(r["nfe_runs"]) / len(r["nfe_runs"]))
    q = r["quality"]
    assert set(q) == _QUALITY_KEYS
    assert q["num_samples"] == batch * (repeats + 1)
    assert sum(q["token_hist"]) == pytest.approx(1.0)
    for k, kmax in (("token_entropy", len(q["token_hist"])), ("bond_entropy", 4)):
        assert math.isfinite(q[k]) and 0.0 <= q[k] <= math.log(kmax) + 1e-9, k
        assert math.isfinite(q[k + "_se"]) and q[k + "_se"] >= 0.0, k
    for k in (
        "token_tv",
        "bond_tv",
        "validity",
        "validity_wo_correction",
        "uniqueness_wo_correction",
    ):
        assert 0.0 <= q[k] <= 1.0, k


@pytest.mark.slow
def test_quick_qm9_init(bench, tmp_path):
    pytest.importorskip("rdkit")
    pytest.importorskip("matplotlib")
    from genmodels.datasets.registry import data_dir

    if not (data_dir() / "graphs" / "DIG" / "qm9.csv").exists():
        pytest.skip("QM9 is not in $GENMODELS_DATA_DIR")
    mod = bench("mdm")
    out = tmp_path / "res" / "mdm.json"
    result = mod.main(["--quick", "--checkpoint", "init", "--out", str(out)])

    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"benchmark", "meta", "reference", "samplers", "match", "precision"} <= set(result)
    meta = result["meta"]
    assert {"device", "jax", "args", "recipe", "checkpoint", "kind"} <= set(meta)
    assert meta["kind"] == "molecules" and meta["recipe"] == "mdm_qm9"
    capacity, batch = meta["token_capacity"], meta["batch"]
    assert capacity == 9 + 9 * 8 // 2 and batch == mod.QUICK_BATCH
    repeats = meta["args"]["repeats"]

    ref = result["reference"]
    assert sum(ref["atom_hist"]) == pytest.approx(1.0)
    assert 0.0 < ref["token_entropy"] <= math.log(4)

    rows = result["samplers"]
    assert [(r["sampler"], r["steps"]) for r in rows] == [("fhs", None)] + [
        ("ancestral", t) for t in mod.QUICK_STEPS
    ]
    assert all(r["precision"] == "float64" for r in rows)
    for r in rows:
        _check_row(r, capacity, batch, repeats)

    m = result["match"]
    assert [p["steps"] for p in m["per_steps"]] == mod.QUICK_STEPS
    assert m["matched_steps"] in [None, *mod.QUICK_STEPS]
    if m["matched_steps"] is not None:
        assert m["speedup_time"] > 0 and m["nfe_ratio"] > 0

    prec = result["precision"]
    assert [(r["sampler"], r["steps"], r["draw"], r["precision"]) for r in prec] == [
        ("ancestral", max(mod.QUICK_STEPS), d, p)
        for d in ("split", "joint")
        for p in ("float64", "float32")
    ]
    for r in prec:
        _check_row(r, capacity, batch, repeats)
    known = result["known_distribution"]
    joint = known["joint"]
    assert joint["unmask"] == 0.2 and 0.0 < joint["float32_law_tail_fraction"] < known["tail_mass"]
    for p in ("float64", "float32"):
        assert 0.0 < joint[p]["unmask_fraction"] < 1.0 and 0.0 <= joint[p]["tail_fraction"] < 1.0

    # --only-precision merges into the result: part 1 kept, the same rows reused (no
    # sampling), part 3 kept with --no-known
    again = mod.main(
        ["--quick", "--checkpoint", "init", "--out", str(out), "--only-precision", "--no-known"]
    )
    first = json.loads(json.dumps(result))
    for k in ("samplers", "match", "precision", "known_distribution"):
        assert again[k] == first[k], k
    assert len(again["meta"]["reused"]) == 3  # part 1 holds split float64
    assert again["meta"]["part1"]["command"] == result["meta"]["command"]
