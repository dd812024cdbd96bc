"""CDVAE's property metrics from the command line: ``genmodels evaluate`` reports
``prop_wdist`` with the shipped perov_5 property model, and ``genmodels optimize`` runs the
latent property optimisation of a tiny random CDVAE with a property head and scores
SR5/SR10/SR15 as a hand computation does; its errors are one line."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from scipy.stats import wasserstein_distance

from genmodels.cli import main
from genmodels.datasets.crystals import load_crystals
from genmodels.domains.crystals import read_cif, write_cif
from genmodels.metrics import property_model as pm
from genmodels.metrics.crystals import validity_flags
from genmodels.nets.property import PropertyNetConfig
from genmodels.recipes import load_recipe
from genmodels.train.checkpoint import config_hash, config_json
from genmodels.train.export import export_model

DATA = Path(os.environ.get("GENMODELS_DATA_DIR", "data")) / "crystals" / "perov_5"
needs_data = pytest.mark.skipif(
    not (DATA / "val.csv").exists() or not (DATA / "test.csv").exists(),
    reason="perov_5 val.csv / test.csv not available",
)
TINY = dict(
    train_limit=8, eval_limit=8, latent_dim=8, hidden_dim=16, enc_hidden=16, enc_blocks=1,
    dec_hidden=16, dec_blocks=1, max_neighbors=8, num_noise_level=2, n_step_each=1,
    sample_batch=4, predict_property=True,
)  # fmt: skip


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow  # fingerprints of 20 samples and 64 reference crystals
@needs_data
def test_evaluate_reports_diversity_and_prop_wdist(tmp_path, capsys):
    samples = load_crystals("perov_5", "test").arrays.select(range(20)).to_structures()
    write_cif(samples, tmp_path / "c.cif")
    argv = ["evaluate", "cdvae_perov5", "--samples", str(tmp_path / "c.cif")]
    assert main([*argv, "--config.eval-limit", "64"]) == 0
    got = _last_json(capsys)
    assert {"comp_div", "struct_div", "prop_wdist"} <= set(got)
    # by hand: the shipped model on the valid samples and on the 64 reference crystals
    model = pm.shipped_property_model("perov_5")
    back = read_cif(tmp_path / "c.cif", keep_failed=True)
    valid = [s for s, ok in zip(back, validity_flags(back)["valid"]) if ok]
    ref = pm.padded_arrays(load_crystals("perov_5", "test", limit=64).arrays)
    want = wasserstein_distance(model.predict(valid), model.predict_arrays(ref))
    assert got["prop_wdist"] == pytest.approx(want, rel=1e-6)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An exported random CDVAE with a property head and a random property model."""
    cfg, _ = load_recipe("cdvae_perov5")
    cfg = dataclasses.replace(cfg, **TINY)
    model = cfg.build().init_model(jax.random.PRNGKey(0))
    root = tmp_path_factory.mktemp("optimize")
    meta = {"recipe": "cdvae_perov5", "config": config_json(cfg), "step": 0}
    export_model(model, root / "run", meta=dict(meta, config_hash=config_hash(meta["config"])),
                 params="raw")  # fmt: skip
    net_cfg = PropertyNetConfig(hidden=8, num_blocks=1, max_neighbors=6, head_hidden=8)
    # a wide scale spreads the random predictions across the perov_5 SR thresholds
    prop = pm.PropertyModel(net_cfg.make(rngs=nnx.Rngs(1)), net_cfg, 0.8, 100.0, {})
    return root / "run", pm.save_property_model(prop, root / "property_model")


@pytest.mark.slow  # compiles the tiny CDVAE's Adam loop and Langevin decoder
@needs_data
def test_optimize_scores_sr_as_a_hand_computation(tiny_run, tmp_path, capsys):
    run, pm_dir = tiny_run
    out = tmp_path / "opt"
    argv = ["optimize", "cdvae_perov5", "--checkpoint", str(run), "--num-starts", "4"]
    argv += ["--steps", "6", "--saved", "3", "--lr", "0.05", "--ld-steps", "1"]
    assert main([*argv, "--property-model", str(pm_dir), "--out", str(out)]) == 0
    printed = _last_json(capsys)
    rec = json.loads((out / "optimize.json").read_text())
    assert printed == rec["metrics"]
    assert set(printed) == {"SR5", "SR10", "SR15", "validity", "validity_final"}
    assert rec["iterations"] == [0, 3, 5] and rec["settings"]["num_starts"] == 4
    # by hand from the written crystals: validity, the property model's predictions of the
    # valid ones, the best per start over the saved steps, and the training percentiles
    crystals = read_cif(out / "optimized.cif", keep_failed=True)
    valid = validity_flags(crystals)["valid"]
    np.testing.assert_array_equal(valid.reshape(3, 4), np.asarray(rec["valid"], bool))
    props = np.full(12, np.inf)
    props[valid] = pm.load_property_model(pm_dir).predict([c for c, v in zip(crystals, valid) if v])
    saved = [np.inf if v is None else v for row in rec["predicted_property"] for v in row]
    np.testing.assert_allclose(props, saved, rtol=1e-4)
    train = load_crystals("perov_5", "val", limit=8).properties
    thr = np.percentile(train, [5, 10, 15])
    assert rec["thresholds"]["values"] == pytest.approx(list(thr))
    best = props.reshape(3, 4).min(0)
    for p, t in zip((5, 10, 15), thr):
        assert rec["metrics"][f"SR{p}"] == pytest.approx(np.mean(best <= t))
    assert rec["metrics"]["validity"] == pytest.approx(valid.mean())
    assert np.asarray(rec["head_property"]).shape == (3, 4)


@needs_data
def test_optimize_errors_are_one_line(tiny_run, tmp_path, capsys):
    def err(argv, code):
        assert main(argv) == code
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    # the shipped model was trained without the property head
    assert "--predict-property" in err(["optimize", "cdvae_perov5"], 2)
    assert "property optimisation" in err(["optimize", "toy"], 2)
    assert "--saved <= --steps" in err(
        ["optimize", "cdvae_perov5", "--saved", "9", "--steps", "3"], 2
    )
    run, _ = tiny_run
    argv = ["optimize", "cdvae_perov5", "--checkpoint", str(run)]
    assert "lacks" in err([*argv, "--property-model", str(tmp_path / "none")], 1)
    assert "no checkpoint folder" in err(["optimize", "cdvae_perov5", "--checkpoint", "/nope"], 1)
