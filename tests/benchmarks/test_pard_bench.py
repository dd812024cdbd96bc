"""Smoke test of benchmarks/pard.py (--quick, fresh model): it runs on QM9, writes the JSON
it returns, and what it reports holds by construction (one block at max_hops 0, blocks
growing with the hops, NFE = steps x the most blocks drawn). Speed is never asserted.
The run is marked slow (about a minute of XLA compiles):
``pytest -m slow tests/benchmarks/test_pard_bench.py``."""

import json

import pytest


@pytest.mark.parametrize(
    "argv, msg",
    [(["--batch", "0"], "positive"), (["--repeats", "-1"], "positive")],
)
def test_bad_arguments(bench, argv, msg, capsys):
    with pytest.raises(SystemExit):
        bench("pard").parse_args(argv)
    assert msg in capsys.readouterr().err


def test_defaults(bench):
    a = bench("pard").parse_args([])
    assert a.recipe == "pard_qm9" and a.checkpoint == "pretrained" and not a.quick


@pytest.mark.slow
def test_quick_run_writes_consistent_json(bench, tmp_path):
    out = tmp_path / "pard.json"
    res = bench("pard").main(["--quick", "--checkpoint", "init", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    blocks = res["blocks"]
    assert [r["max_hops"] for r in blocks] == [0, 1, 2, 3, 4]
    assert blocks[0]["mean_blocks"] == 1.0
    means = [r["mean_blocks"] for r in blocks]
    assert all(a <= b + 1e-9 for a, b in zip(means, means[1:]))
    s = res["sample"]
    assert s["nfe"] == 4 * s["blocks_max"] and s["batch"] == 8
    assert res["train"]["grad_s"] > 0 and s["net_call_s"] > 0
