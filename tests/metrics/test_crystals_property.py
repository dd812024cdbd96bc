"""Property metrics of CDVAE: prop_wdist (mock predictor vs scipy), success rates by hand,
the property model (save/load, prediction, training through the generic engine, the
shipped-model lookup) and the scoring of a latent optimisation on a fake method."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flax import nnx
from pymatgen.core import Lattice, Structure
from scipy.stats import wasserstein_distance

from genmodels.domains.crystals import CrystalArrays, read_cif
from genmodels.metrics import property_model as pm
from genmodels.metrics.crystals import (
    REFERENCE_PERCENTILES,
    generation_metrics,
    optimization_metrics,
    property_percentiles,
    success_rates,
)
from genmodels.nets.property import PropertyNetConfig
from genmodels.train.config import TrainConfig

DATA = Path(os.environ.get("GENMODELS_DATA_DIR", "data")) / "crystals" / "perov_5" / "val.csv"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="perov_5 val.csv not available")
TINY_NET = PropertyNetConfig(hidden=8, num_blocks=1, max_neighbors=6, head_hidden=8, head_layers=1)


def _perovskite(a: float, b: str = "Ti") -> Structure:
    pos = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Structure(Lattice.cubic(a), ["Sr", b, "O", "O", "O"], pos)


def _clash() -> Structure:  # two atoms 0.3 A apart: structurally invalid
    return Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.06, 0, 0]])


def _lattice_a(structures) -> np.ndarray:
    """A stand-in property model: the first lattice length."""
    return np.array([s.lattice.a for s in structures], np.float64)


def test_prop_wdist_is_scipys_wasserstein_of_the_valid_crystals_predictions():
    preds = [_perovskite(3.9), _clash(), _perovskite(4.1, "Zr"), None, _perovskite(4.4)]
    test = [_perovskite(3.95), _perovskite(4.0, "Zr"), _perovskite(4.2)]
    test_props = np.array([1.0, -2.0, 0.5])
    seen = []

    def fn(structures):
        seen.append(len(structures))
        return _lattice_a(structures)

    out = generation_metrics(preds, test, "perov_5", property_fn=fn, test_properties=test_props)
    valid = [preds[i] for i in (0, 2, 4)]  # the clash and the failed decode are left out
    assert out["num_valid"] == 3 and seen == [3]
    want = wasserstein_distance(_lattice_a(valid), test_props)
    assert out["prop_wdist"] == pytest.approx(want, rel=1e-12)
    # without precomputed test predictions the same function predicts the test crystals
    out = generation_metrics(preds, test, "perov_5", property_fn=fn)
    assert out["prop_wdist"] == pytest.approx(
        wasserstein_distance(_lattice_a(valid), _lattice_a(test)), rel=1e-12
    )
    assert "prop_wdist" not in generation_metrics(preds, test, "perov_5", progress=False)


def test_success_rates_by_hand():
    props = np.array([[0.9, 0.3, 2.0, 5.0], [0.2, 0.8, 0.65, np.nan], [0.5, 0.1, 0.7, 0.0]])
    valid = np.array([[1, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 0]], bool)
    thr = (0.44, 0.61, 0.74)
    # best valid per start: 0.5, 0.3, 0.65, none
    got = success_rates(props, valid, thr)
    assert got == {"SR5": 0.25, "SR10": 0.5, "SR15": 0.75}
    assert success_rates(props, np.zeros_like(valid), thr) == {"SR5": 0, "SR10": 0, "SR15": 0}


def test_percentile_thresholds_follow_the_reference_definition():
    x = np.r_[np.arange(101.0), np.nan]
    np.testing.assert_allclose(property_percentiles(x), [5.0, 10.0, 15.0])
    assert set(REFERENCE_PERCENTILES) == {"perov_5", "carbon_24", "mp_20"}
    assert REFERENCE_PERCENTILES["perov_5"][0] == pytest.approx(0.43924842)


def test_optimization_metrics_predict_only_valid_crystals():
    steps = [[_perovskite(3.9), _clash()], [None, _perovskite(4.3)], [_perovskite(4.0), None]]
    calls = []

    def fn(structures):
        calls.append(len(structures))
        return _lattice_a(structures)

    metrics, props, valid = optimization_metrics(steps, fn, (3.95, 4.2, 4.35))
    assert calls == [3]
    np.testing.assert_array_equal(valid, [[1, 0], [0, 1], [1, 0]])
    np.testing.assert_allclose(props[valid], [3.9, 4.3, 4.0])
    assert np.isnan(props[~valid]).all()
    # best: start 0 -> 3.9, start 1 -> 4.3
    assert (metrics["SR5"], metrics["SR10"], metrics["SR15"]) == (0.5, 0.5, 1.0)
    assert metrics["validity"] == 0.5 and metrics["validity_final"] == 0.5


# ------------------------------------------------------------------ the property model


def _random_model(mean=1.5, std=0.5) -> pm.PropertyModel:
    return pm.PropertyModel(TINY_NET.make(rngs=nnx.Rngs(3)), TINY_NET, mean, std, {"x": 1})


def test_property_model_round_trip_and_prediction(tmp_path):
    model = _random_model()
    crystals = [_perovskite(3.9), None, _perovskite(4.2, "Zr"), _clash()]
    y = model.predict(crystals, batch_size=2)  # batches padded to 2 rows
    assert y.shape == (4,) and np.isnan(y[1]) and np.isfinite(y[[0, 2, 3]]).all()
    again = pm.load_property_model(pm.save_property_model(model, tmp_path / "m"))
    assert again.config == TINY_NET and (again.mean, again.std) == (1.5, 0.5)
    assert again.record == {"x": 1}
    np.testing.assert_allclose(again.predict(crystals, batch_size=2), y, rtol=1e-6)
    # the prediction is the network's standardized output, unscaled
    raw = pm.PropertyModel(model.net, TINY_NET, 0.0, 1.0).predict(crystals, batch_size=2)
    np.testing.assert_allclose(y, raw * 0.5 + 1.5, rtol=1e-6)
    # a wrong-sized weights file is named
    record = json.loads((tmp_path / "m" / pm.RECORD).read_text())
    record["config"]["hidden"] = 16
    (tmp_path / "m" / pm.RECORD).write_text(json.dumps(record))
    with pytest.raises(pm.DataError, match="weights.npz"):
        pm.load_property_model(tmp_path / "m")
    with pytest.raises(pm.MissingFileError, match="lacks"):
        pm.load_property_model(tmp_path / "nothing")


def test_no_shipped_model_warns_once_and_leaves_prop_wdist_out():
    pm.shipped_property_model.cache_clear()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert pm.property_inputs("/some/user/crystals", CrystalArrays.from_structures([])) == {}
        assert pm.property_inputs("/some/user/crystals", CrystalArrays.from_structures([])) == {}
    msgs = [str(x.message) for x in w if "property model" in str(x.message)]
    assert len(msgs) == 1 and "prop_wdist is left out" in msgs[0]


@needs_data
def test_train_property_model_runs_the_generic_engine(tmp_path):
    cfg = TrainConfig(steps=3, batch_size=4, ema_decay=0.0, log_every=1, progress=False)
    model = pm.train_property_model(
        "perov_5", split="val", config=TINY_NET, train_cfg=cfg, limit=12, workdir=tmp_path / "run"
    )
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3] and "mae_std" in logged[0]
    assert model.record["train_split"] == "val" and model.record["steps"] == 3
    props = pm.load_crystals("perov_5", "val", limit=12).properties
    assert model.mean == pytest.approx(props.mean()) and model.std > 0
    mae = pm.property_mae(model, "perov_5", "val", limit=12)
    assert mae["num"] == 12 and mae["mae"] > 0 and mae["mae_mean_baseline"] > 0


def test_shipped_perov5_property_model_beats_the_mean():
    folder = pm.shipped_property_model_dir("perov_5")
    assert folder is not None and folder.parts[-3:] == (
        "pretrained",
        "cdvae_perov5",
        "property_model",
    )
    assert (folder / pm.WEIGHTS).stat().st_size < 3e6
    model = pm.load_property_model(folder)
    test = model.record["test"]
    assert model.record["property"] == "heat_ref" and test["num"] == 3785
    assert test["mae"] < 0.5 * test["mae_mean_baseline"]


# ------------------------------------------------------------------ optimisation scoring


def test_optimize_and_score_on_a_fake_method(tmp_path):
    from genmodels.optimization import PropertyOptimizer, optimize_and_score

    snaps = [[_perovskite(3.9), _clash(), None], [_perovskite(4.5), _perovskite(4.0), None]]

    class Fake:
        config = SimpleNamespace(dataset="perov_5")
        task = SimpleNamespace(
            train_arrays=lambda: {"property": np.linspace(3.0, 5.0, 201)}, train_split="val"
        )

        def optimize_property(self, model, key, **kw):
            self.kw = kw
            return {"iterations": np.array([0, 4]), "property": np.zeros((2, 3)),
                    "structures": snaps}  # fmt: skip

        def write_samples(self, samples, path):
            from genmodels.domains.crystals import write_cif

            write_cif(samples, path)

    fake = Fake()
    assert isinstance(fake, PropertyOptimizer)
    model = SimpleNamespace(predict=_lattice_a, record={"test": {"mae": 0.1}})
    rec = optimize_and_score(fake, None, model, None, num_starts=3, steps=5, out_dir=tmp_path)
    assert fake.kw["num"] == 3 and fake.kw["num_saved"] == 10
    thr = np.percentile(np.linspace(3.0, 5.0, 201), [5, 10, 15])  # 3.1, 3.2, 3.3
    assert rec["thresholds"]["values"] == pytest.approx(list(thr))
    assert rec["thresholds"]["reference"] == pytest.approx(list(REFERENCE_PERCENTILES["perov_5"]))
    # best valid: start 0 -> 3.9, start 1 -> 4.0, start 2 -> none: all above 3.3
    assert rec["metrics"]["SR15"] == 0.0 and rec["valid"] == [[1, 0, 0], [1, 1, 0]]
    assert rec["predicted_property"] == [[3.9, None, None], [4.5, 4.0, None]]
    on_disk = json.loads((tmp_path / "optimize.json").read_text())
    assert on_disk["metrics"] == rec["metrics"]
    with pytest.warns(UserWarning, match="failed sample"):  # the two empty blocks
        back = read_cif(tmp_path / "optimized.cif", keep_failed=True)
    assert len(back) == 6 and back[2] is None and back[5] is None
