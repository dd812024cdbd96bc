"""Recipes and their shared bases (``recipes/_*.py``), and loading a recipe's model."""

import sys
from pathlib import Path

import jax
import pytest

from genmodels.models.run import (
    HasArtefacts,
    InitFromWorkdir,
    UsesCheckpointDir,
    load_pretrained,
    load_recipe_model,
    resolve_checkpoint,
)
from genmodels.recipes import list_recipes, load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _state_leaves(model):
    from flax import nnx

    return jax.tree_util.tree_leaves(nnx.state(model))


def test_bases_are_not_recipes_and_every_recipe_loads():
    names = list_recipes()
    assert names and not any(n.startswith("_") for n in names)
    path = list(sys.path)
    for name, info in names.items():
        cfg, _ = load_recipe(name)
        assert info.description and hasattr(cfg, "build"), name
    # the recipe folders leave sys.path, the bases sys.modules
    assert sys.path == path
    assert not {p.stem for p in RECIPES.glob("_*.py")} & set(sys.modules)


def test_a_copied_recipe_finds_the_shipped_base(tmp_path, monkeypatch):
    (tmp_path / "my_gdss.py").write_text((RECIPES / "gdss_qm9.py").read_text())
    monkeypatch.setenv("GENMODELS_RECIPES_DIR", str(tmp_path))
    mine, _ = load_recipe("my_gdss")
    shipped, _ = load_recipe("gdss_qm9")
    assert mine == shipped


def test_a_base_in_the_recipe_folder_wins_and_does_not_leak(tmp_path, monkeypatch):
    base = (RECIPES / "_gdss.py").read_text()
    (tmp_path / "_gdss.py").write_text(base.replace("ema_decay=0.999", "ema_decay=0.5"))
    (tmp_path / "my_gdss.py").write_text((RECIPES / "gdss_qm9.py").read_text())
    monkeypatch.setenv("GENMODELS_RECIPES_DIR", str(tmp_path))
    assert load_recipe("my_gdss")[0].train.ema_decay == 0.5
    assert load_recipe("gdss_qm9")[0].train.ema_decay == 0.999


def test_pretrained_needs_a_shipped_model():
    _, info = load_recipe("toy")
    with pytest.raises(FileNotFoundError, match="ships no pretrained model"):
        resolve_checkpoint(info, "pretrained")
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        load_pretrained("toy", "no/such/run")


def test_load_pretrained_init_and_overrides():
    cfg, method, model, meta = load_pretrained("toy", "init", overrides={"hidden": 16})
    assert cfg.hidden == 16 and meta == {} and method.config == cfg
    assert all(jax.numpy.isfinite(x).all() for x in _state_leaves(model))


def test_load_pretrained_matches_load_recipe_model():
    name = "gdss_community_small"
    cfg, info = load_recipe(name)
    got_cfg, _, got, meta = load_pretrained(name)
    _, want, _ = load_recipe_model(cfg, info.pretrained_dir)
    assert got_cfg == cfg and meta
    for a, b in zip(_state_leaves(got), _state_leaves(want), strict=True):
        assert (a == b).all()


def test_capability_protocols():
    class Plain:
        pass

    class Boss:
        artefacts = ("boss_grids.json",)
        checkpoint_dir = None

        def init_train_model(self, key, workdir):
            return None

    assert not isinstance(Plain(), InitFromWorkdir | UsesCheckpointDir | HasArtefacts)
    for proto in (InitFromWorkdir, UsesCheckpointDir, HasArtefacts):
        assert isinstance(Boss(), proto)
