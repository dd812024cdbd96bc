"""Cheap checks of the notebooks (executing them is ``pytest -m slow``): every code cell
compiles, every ``genmodels`` import resolves, every recipe they load exists and every
results file they read is in the repository."""

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

from genmodels.recipes import list_recipes

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def code(nb: Path) -> str:
    cells = json.loads(nb.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_compile_and_their_names_exist(nb):
    tree = ast.parse(code(nb), filename=str(nb))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("genmodels"):
            mod = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(mod, alias.name), f"{nb.name}: {node.module}.{alias.name}"
    recipes = set(list_recipes())
    for name in re.findall(r'load_recipe\("(\w+)"\)', code(nb)):
        assert name in recipes, f"{nb.name}: recipe {name!r}"
    for name in re.findall(r'"(\w+\.json)"', code(nb)):
        if name != "metrics.json":
            assert (nb.parent.parent / "benchmarks" / "results" / name).is_file(), name


def test_every_notebook_is_checked():
    assert {p.stem for p in NOTEBOOKS} == {"molecules", "graphs", "images", "crystals"}
