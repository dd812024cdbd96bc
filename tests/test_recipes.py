"""Where recipes come from: named folders, ``$GENMODELS_RECIPES_DIR`` and the package;
never the current folder's ``recipes/`` unless it is named."""

import os
from pathlib import Path

import pytest

from genmodels import recipes
from genmodels.errors import UsageError
from genmodels.recipes import (
    RecipeError,
    clear_recipes_dirs,
    list_recipes,
    load_recipe,
    packaged_recipes_dir,
    use_recipes_dir,
)

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes"

# a recipe whose import leaves a marker file: proof that it was (not) executed
EVIL = '''"""Looks like a recipe."""
from pathlib import Path

Path({marker!r}).write_text("ran")


def config():
    return None
'''


@pytest.fixture
def clean(monkeypatch, tmp_path):
    """No named folders, no environment variable, cwd = an empty tmp folder."""
    monkeypatch.setattr(recipes, "_explicit_dirs", [])
    monkeypatch.delenv("GENMODELS_RECIPES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _evil_folder(root: Path, name: str = "evil") -> tuple[Path, Path]:
    folder = root / "recipes"
    folder.mkdir(exist_ok=True)
    marker = root / f"{name}.ran"
    (folder / f"{name}.py").write_text(EVIL.format(marker=str(marker)))
    return folder, marker


def test_the_current_folders_recipes_are_not_searched(clean):
    _, marker = _evil_folder(clean)
    found = list_recipes()
    assert "evil" not in found and "gdss_qm9" in found
    assert {info.source for info in found.values()} == {"package"}
    with pytest.raises(RecipeError, match=r"recipes/evil\.py is not searched.*--recipes-dir"):
        load_recipe("evil")
    assert not marker.exists()


def test_the_environment_variable_adds_folders(clean, monkeypatch):
    folder, _ = _evil_folder(clean)
    other = clean / "other"
    other.mkdir()
    (other / "mine.py").write_text('"""Mine."""\n')
    (other / "evil.py").write_text('"""Shadowed by the first folder."""\n')
    monkeypatch.setenv("GENMODELS_RECIPES_DIR", os.pathsep.join([str(folder), str(other)]))
    found = list_recipes()
    assert found["evil"].source == "GENMODELS_RECIPES_DIR"
    assert found["evil"].path == folder.resolve() / "evil.py"  # the first folder wins
    assert found["mine"].source == "GENMODELS_RECIPES_DIR"
    assert found["gdss_qm9"].source == "package"


def test_a_named_folder_comes_first(clean, monkeypatch):
    folder, _ = _evil_folder(clean)
    env = clean / "env"
    env.mkdir()
    (env / "evil.py").write_text('"""From the environment."""\n')
    (env / "gdss_qm9.py").write_text('"""A local gdss_qm9 shadows the packaged one."""\n')
    monkeypatch.setenv("GENMODELS_RECIPES_DIR", str(env))
    use_recipes_dir(folder)
    use_recipes_dir(folder)  # once only
    assert recipes.recipe_dirs()[:2] == [folder.resolve(), env.resolve()]
    found = list_recipes()
    assert (found["evil"].source, found["evil"].path.parent) == ("--recipes-dir", folder.resolve())
    assert found["gdss_qm9"].source == "GENMODELS_RECIPES_DIR"
    with pytest.raises(UsageError, match="no_such_dir does not exist"):
        use_recipes_dir(clean / "no_such_dir")
    clear_recipes_dirs()
    assert list_recipes()["evil"].source == "GENMODELS_RECIPES_DIR"


def test_packaged_recipes_of_an_editable_install_are_the_repositorys(clean):
    # this checkout has no genmodels/_recipes (only a built wheel does): the repo's recipes/
    assert not (Path(recipes.__file__).parent / "_recipes").exists()
    assert packaged_recipes_dir() == REPO_RECIPES
    found = list_recipes()
    assert {p.stem for p in REPO_RECIPES.glob("[!_]*.py")} == set(found)
    assert all(i.path.parent == REPO_RECIPES and i.source == "package" for i in found.values())
    assert found["gdss_qm9"].pretrained_dir == REPO_RECIPES / "pretrained" / "gdss_qm9"
