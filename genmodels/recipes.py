"""Finding and loading recipes (``recipes/<name>.py``) and their pretrained checkpoints.

A recipe is a Python file with a module docstring (its one-line description) and a
function ``config()`` returning a frozen config dataclass with a ``build()`` method.
Recipes are looked up in ``$GENMODELS_RECIPES_DIR``, then ``./recipes``, then the
``recipes/`` folder next to the installed package (an editable install of the repo).
Files starting with ``_`` are shared bases, not recipes: a recipe imports them by plain
name (``from _gdss import gdss``), looked up in the recipe's own folder first, then in the
other recipe folders.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class RecipeError(LookupError):
    """Unknown recipe or a recipe file that does not define ``config()``."""


def recipe_dirs() -> list[Path]:
    """Folders searched for recipes, in priority order (existing ones only)."""
    dirs = []
    if env := os.environ.get("GENMODELS_RECIPES_DIR"):
        dirs.append(Path(env))
    dirs.append(Path.cwd() / "recipes")
    dirs.append(Path(__file__).resolve().parents[1] / "recipes")
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r.is_dir() and r not in seen:
            seen.add(r)
            out.append(r)
    return out


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    path: Path
    description: str

    @property
    def pretrained_dir(self) -> Path:
        return self.path.parent / "pretrained" / self.name

    @property
    def has_pretrained(self) -> bool:
        return (self.pretrained_dir / "checkpoints").is_dir()


def list_recipes() -> dict[str, RecipeInfo]:
    """All recipes by name (the first folder that defines a name wins)."""
    out: dict[str, RecipeInfo] = {}
    for d in recipe_dirs():
        for p in sorted(d.glob("*.py")):
            if p.name.startswith("_") or p.stem in out:
                continue
            out[p.stem] = RecipeInfo(p.stem, p, _docline(p))
    return out


def _docline(path: Path) -> str:
    import ast

    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except SyntaxError as e:
        return f"(syntax error: {e})"
    return doc.strip().splitlines()[0] if doc.strip() else ""


def load_recipe(name: str) -> tuple[Any, RecipeInfo]:
    """The config of recipe ``name`` and its info.

    Raises:
      RecipeError: unknown name (the message lists the valid ones) or a bad recipe file.
    """
    recipes = list_recipes()
    if name not in recipes:
        valid = ", ".join(sorted(recipes)) or "(none found)"
        raise RecipeError(f"unknown recipe {name!r}; valid recipes: {valid}")
    info = recipes[name]
    spec = importlib.util.spec_from_file_location(f"genmodels_recipe_{name}", info.path)
    module = importlib.util.module_from_spec(spec)
    # bases (``_*.py``) import by plain name from the recipe folders while the recipe runs;
    # they leave sys.modules after, so a base of another folder is never shadowed by a stale one
    folders = [info.path.parent, *(d for d in recipe_dirs() if d != info.path.parent)]
    bases = {p.stem for d in folders for p in d.glob("_*.py")} - set(sys.modules)
    sys.path[:0] = [str(d) for d in folders]
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, "config"):
            raise RecipeError(f"recipe file {info.path} defines no config() function")
        cfg = module.config()
    finally:
        del sys.path[: len(folders)]
        for b in bases:
            sys.modules.pop(b, None)
    if not hasattr(cfg, "build"):
        raise RecipeError(f"config() of {info.path} returned {type(cfg).__name__} without build()")
    return cfg, info
