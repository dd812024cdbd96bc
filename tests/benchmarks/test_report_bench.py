"""benchmarks/report.py: the table from a hand-made result, argument checks, and one real
recipe timed end to end (mdm_perov5, the cheapest to compile: about 30 s). Speed is never
asserted; what is checked holds by construction (NFE of the first-hitting sampler = atoms
per crystal, ratios positive, the files written agree)."""

import json

import pytest


def _row(**kw):
    row = {
        "recipe": "toy",
        "method": "M",
        "domain": "D",
        "sampler": "euler",
        "steps": 4,
        "nfe": 4,
        "sample_batch": 16,
        "samples_per_s": 8.0,
        "sample_per_nfe_over_net": 1.25,
        "sample_compile_s": 3.0,
    }
    return row | kw


def test_markdown_rows_with_and_without_training(bench):
    report = bench("report")
    result = {
        "meta": {"quick": True, "device": "cpu", "devices": 1, "jax": "x"},
        "rows": [
            _row(),
            _row(
                recipe="trained",
                train_steps_per_s=2.0,
                train_batch=32,
                train_step_over_net=3.5,
                train_compile_s=9.0,
            ),
            {"recipe": "broken", "method": "M", "domain": "D", "error": "ValueError: x"},
        ],
    }
    lines = report.markdown(result).splitlines()
    body = [ln for ln in lines if ln.startswith("| M |")]
    assert len(body) == 3
    assert "| 8.00 | 1.25 | 3.0 | - | - | - |" in body[0]
    assert "| 2.00 (32) | 3.50 | 9.0 |" in body[1]
    assert "ValueError: x" in body[2]


def test_only_rejects_unknown_recipes(bench):
    with pytest.raises(SystemExit, match="not in the report"):
        bench("report").main(["--only", "no_such_recipe", "--quick"])


def test_every_spec_is_a_recipe(bench):
    from genmodels.recipes import list_recipes

    known = set(list_recipes())
    missing = [s.recipe for s in bench("report").SPECS if s.recipe not in known]
    assert not missing, f"report rows without a recipe: {missing}"


@pytest.mark.slow
def test_quick_run_of_one_recipe(bench, tmp_path):
    out = tmp_path / "results.json"
    rc = bench("report").main(
        ["--quick", "--only", "mdm_perov5", "--workers", "1", "--out", str(out)]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert row["recipe"] == "mdm_perov5" and "error" not in row
    assert row["nfe"] == 5  # perov5: 5 atoms, one first-hitting step per token
    assert row["sample_per_nfe_over_net"] > 0 and row["net_s"] > 0
    assert "train_steps_per_s" not in row  # --quick times sampling only
    assert "mdm_perov5" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 0
