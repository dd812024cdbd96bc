"""Recipe-level training and loading (genmodels.models.run): checkpoints know their recipe."""

import dataclasses

import pytest

from genmodels.datasets.registry import DatasetError
from genmodels.errors import CheckpointError
from genmodels.models.run import export_recipe, load_recipe_model, train_recipe
from genmodels.recipes import load_recipe
from genmodels.train import Checkpointer
from genmodels.train.checkpoint import config_hash, config_json


def _toy(**changes):
    cfg, _ = load_recipe("toy")
    train = dataclasses.replace(
        cfg.train, steps=2, batch_size=16, ckpt_every=1, log_every=1, async_checkpointing=False
    )
    return dataclasses.replace(cfg, **{"hidden": 16, "depth": 1, "train": train, **changes})


def _meta(folder):
    ckpt = Checkpointer(folder / "checkpoints", read_only=True)
    try:
        return ckpt.read_meta()
    finally:
        ckpt.close()


def test_checkpoints_record_their_recipe_and_loading_checks_it(tmp_path):
    cfg = _toy()
    run, exp = tmp_path / "run", tmp_path / "exp"
    train_recipe(cfg, run, recipe="toy", progress=False)
    h = config_hash(config_json(cfg))
    assert (_meta(run)["recipe"], _meta(run)["config_hash"]) == ("toy", h)
    # the same recipe with other sampling options (another hash) loads
    resample = _toy(sample_steps=5)
    assert config_hash(config_json(resample)) != h
    load_recipe_model(resample, run, recipe="toy")
    export_recipe(cfg, run, exp, recipe="toy")
    assert (_meta(exp)["recipe"], _meta(exp)["config_hash"]) == ("toy", h)
    # another architecture of the same recipe: both hashes, "architecture differs"
    wide = _toy(hidden=32)
    with pytest.raises(CheckpointError) as err:
        load_recipe_model(wide, exp, recipe="toy")
    msg = str(err.value)
    assert f"checkpoint {exp} (recipe toy (config {h}))" in msg
    assert f"recipe toy (config {config_hash(config_json(wide))})" in msg
    assert "architecture differs" in msg and "\n" not in msg
    # another recipe's run folder, for sampling and for resuming
    with pytest.raises(CheckpointError, match=f"by recipe toy \\(config {h}\\), not recipe toy2"):
        load_recipe_model(cfg, run, recipe="toy2")
    with pytest.raises(CheckpointError, match="pass a checkpoint of toy2"):
        train_recipe(cfg, run, recipe="toy2", progress=False)


def test_a_shipped_model_of_another_config_class_is_named():
    """The shipped pretrained models store no recipe name: the config classes differ."""
    _, info = load_recipe("gdss_community_small")
    with pytest.raises(CheckpointError) as err:
        load_recipe_model(_toy(), info.pretrained_dir, recipe="toy")
    msg = str(err.value)
    assert f"checkpoint {info.pretrained_dir} was written by config class GDSSConfig" in msg
    assert "not recipe toy" in msg and "pass a checkpoint of toy" in msg


def test_train_recipe_reads_the_data_before_building_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    cfg, _ = load_recipe("gdss_community_small")

    def built(*args, **kwargs):
        raise AssertionError("the model was built before the data was read")

    monkeypatch.setattr(type(cfg.build()), "init_model", built)
    with pytest.raises(DatasetError, match="community_small.pkl is missing"):
        train_recipe(cfg, tmp_path / "run", recipe="gdss_community_small", progress=False)
