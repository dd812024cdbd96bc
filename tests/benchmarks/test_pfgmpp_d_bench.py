"""Tests of benchmarks/pfgmpp_d.py (PFGM++ on MNIST across D at equal sampling budget).

The argument parsing is checked fast (nothing sampled or loaded). The smoke test runs
the --quick mode with two fresh (init) models, D = 128 and D = inf (EDM), and checks that
the JSON (the same object main returns) and the PNG are written and well formed: rows in
D order with EDM last, the Heun NFE 2 K - 1 reported by the sampler, finite classifier
FIDs, the meta block. Quality is never asserted (untrained models). Marked slow (two XLA
compiles of the UNet sampler): ``pytest -m slow tests/benchmarks/test_pfgmpp_d_bench.py``.
"""

import json
import math
from pathlib import Path

import pytest


def test_parse_models(bench):
    mod = bench("pfgmpp_d")
    a = mod.parse_args(
        ["--model", "2048=runs/x", "--model", "inf=init", "--model", "128=pretrained"]
    )
    assert a.model == [(2048.0, "runs/x"), (math.inf, "init"), (128.0, "pretrained")]
    assert (a.num, a.batch, a.steps, a.sampler, a.recipe) == (
        2000,
        500,
        18,
        "heun",
        "pfgmpp_mnist",
    )
    q = mod.parse_args(["--quick", "--model", "Infinity=init", "--model", "1e2=init"])
    assert q.model == [(math.inf, "init"), (100.0, "init")]
    assert (
        (q.num, q.batch, q.steps)
        == (mod.QUICK_NUM, mod.QUICK_BATCH, mod.QUICK_STEPS)
        == (
            32,
            16,
            3,
        )
    )
    assert [mod.label(d) for d in (64.0, 128.0, 2048.0, 0.5, math.inf)] == [
        "64",
        "128",
        "2048",
        "0.5",
        "inf (EDM)",
    ]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("abc", "D=CHECKPOINT"),
        ("128", "D=CHECKPOINT"),
        ("128=", "D=CHECKPOINT"),
        ("=init", "D=CHECKPOINT"),
        ("x=pretrained", "D must be a number"),
        ("nan=init", "positive"),
        ("0=init", "positive"),
        ("-64=init", "positive"),
    ],
)
def test_bad_model_specs(bench, spec, message, capsys):
    mod = bench("pfgmpp_d")
    with pytest.raises(SystemExit) as e:
        mod.parse_args([f"--model={spec}"])  # "-64=init" would read as an option
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    with pytest.raises(Exception, match=message):
        mod.parse_model(spec)


def test_parse_errors(bench, capsys):
    mod = bench("pfgmpp_d")
    with pytest.raises(SystemExit):
        mod.parse_args([])  # --model is required
    assert "--model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mod.parse_args(["--model", "128=init", "--model", "128.0=runs/x"])
    assert "D given more than once: 128" in capsys.readouterr().err


def test_stored_d(bench):
    mod = bench("pfgmpp_d")
    # the training loop's config JSON: float inf goes through json as Infinity
    meta = json.loads(json.dumps({"config": {"D": math.inf}, "step": 750}))
    assert mod.stored_d(meta) == math.inf
    assert mod.stored_d({"config": {"D": "inf"}}) == math.inf
    assert mod.stored_d({"config": {"D": 128.0}}) == 128.0
    assert mod.stored_d({"config": {}}) is None and mod.stored_d({}) is None


@pytest.mark.slow
def test_quick_mnist_init(bench, tmp_path):
    pytest.importorskip("matplotlib")
    from genmodels.datasets.registry import data_dir
    from genmodels.metrics import images as M

    if not (M.ASSETS / M.CLASSIFIER_DATASETS["mnist"]).is_file():
        pytest.skip("the MNIST classifier is not shipped")
    if not any((data_dir() / "images").glob("**/*mnist*")):
        pytest.skip("MNIST is not in $GENMODELS_DATA_DIR")
    mod = bench("pfgmpp_d")
    out = tmp_path / "res" / "pfgmpp_d.json"
    # given in the wrong order: the rows come sorted by D, EDM last
    result = mod.main(
        [
            "--quick",
            "--model",
            "inf=init",
            "--model",
            "128=init",
            "--out",
            str(out),
            "--save-samples",
            str(tmp_path / "samples"),
        ]
    )

    assert json.loads(out.read_text()) == result
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"benchmark", "meta", "rows", "target"} <= set(result)
    meta = result["meta"]
    assert {"device", "platform", "jax", "args", "dataset", "models", "total_s"} <= set(meta)
    assert meta["dataset"] == "mnist"
    assert meta["args"]["num"] == 32 and meta["args"]["steps"] == 3
    assert [m["D"] for m in meta["models"]] == [128.0, math.inf]
    assert all(m["checkpoint"] == "init" and m["folder"] is None for m in meta["models"])
    assert meta["training_budget"]["equal"] is None  # no trained model
    rows = result["rows"]
    assert [r["D"] for r in rows] == [128.0, math.inf]
    assert [r["label"] for r in rows] == ["128", "inf (EDM)"]
    for r in rows:
        assert r["nfe"] == 2 * 3 - 1
        assert r["num"] == 32 and r["sampler"] == "heun"
        assert math.isfinite(r["fid_classifier"]) and r["fid_classifier"] >= 0
        assert "fid" not in r  # no --inception
        assert r["sample_s"] > 0 and r["s_per_image"] > 0  # two rounds of 16
        assert Path(r["samples"]).is_file()
    assert [Path(r["samples"]).name for r in rows] == ["D128.npz", "Dinf.npz"]
    (t,) = result["target"]
    assert t["metric"] == "fid_classifier" and t["best_finite_D"] == 128.0
    assert t["edm"] == rows[1]["fid_classifier"]
