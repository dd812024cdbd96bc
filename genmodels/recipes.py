"""Finding and loading recipes (``<name>.py`` files) and their pretrained checkpoints.

A recipe is a Python file with a module docstring (its one-line description) and a
function ``config()`` returning a frozen config dataclass with a ``build()`` method.
Loading a recipe runs its file, so only folders the user names are searched, in order:

1. folders given to :func:`use_recipes_dir` (the command line's ``--recipes-dir DIR``);
2. ``$GENMODELS_RECIPES_DIR`` (one folder, or several joined by ``os.pathsep``);
3. the packaged recipes: ``genmodels/_recipes`` in a regular install or a wheel (a copy
   of the repository's ``recipes/``, made by ``setup.py``), else the repository's
   ``recipes/`` (an editable install).

The ``recipes/`` folder of the current directory is not searched unless named. Each
:class:`RecipeInfo` says which of the three its file came from (:attr:`RecipeInfo.source`).
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

from genmodels.errors import UsageError

#: :attr:`RecipeInfo.source` of each kind of recipe folder
SOURCES = ("--recipes-dir", "GENMODELS_RECIPES_DIR", "package")

# folders given to use_recipes_dir, searched first
_explicit_dirs: list[Path] = []


class RecipeError(LookupError):
    """Unknown recipe or a recipe file that does not define ``config()``."""


def use_recipes_dir(path: str | Path) -> None:
    """Search ``path`` for recipes before ``$GENMODELS_RECIPES_DIR`` and the packaged ones.

    The command line calls it for ``--recipes-dir DIR``; folders added by several calls
    are searched in the order of the calls.

    Args:
      path: a folder of recipe files.

    Raises:
      UsageError: ``path`` is not an existing folder.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise UsageError(f"recipes folder {path} does not exist; pass a folder of recipe files")
    if path.resolve() not in _explicit_dirs:
        _explicit_dirs.append(path.resolve())


def clear_recipes_dirs() -> None:
    """Forget the folders given to :func:`use_recipes_dir` (one command line's worth, when
    ``genmodels.cli.main`` runs several times in one process)."""
    _explicit_dirs.clear()


def packaged_recipes_dir() -> Path | None:
    """The recipes that ship with genmodels: ``genmodels/_recipes`` of a regular install,
    or the repository's ``recipes/`` (next to ``pyproject.toml``) of an editable one."""
    here = Path(__file__).resolve().parent
    if (here / "_recipes").is_dir():
        return here / "_recipes"
    root = here.parent
    if (root / "pyproject.toml").is_file() and (root / "recipes").is_dir():
        return root / "recipes"
    return None


def recipe_sources() -> list[tuple[Path, str]]:
    """``(folder, source)`` of each existing recipe folder, in priority order.

    Returns:
      Resolved folders, each once, with its source (one of :data:`SOURCES`).
    """
    dirs = [(d, SOURCES[0]) for d in _explicit_dirs]
    env = os.environ.get("GENMODELS_RECIPES_DIR", "")
    dirs += [(Path(e).expanduser(), SOURCES[1]) for e in env.split(os.pathsep) if e]
    if (packaged := packaged_recipes_dir()) is not None:
        dirs.append((packaged, SOURCES[2]))
    seen, out = set(), []
    for d, source in dirs:
        r = d.resolve()
        if r.is_dir() and r not in seen:
            seen.add(r)
            out.append((r, source))
    return out


def recipe_dirs() -> list[Path]:
    """Folders searched for recipes, in priority order (existing ones only)."""
    return [d for d, _ in recipe_sources()]


@dataclass(frozen=True)
class RecipeInfo:
    """One recipe file.

    Attributes:
      name: the file's stem.
      path: the recipe file.
      description: first line of its docstring.
      source: where it was found: ``"--recipes-dir"``, ``"GENMODELS_RECIPES_DIR"`` or
        ``"package"`` (see :data:`SOURCES`).
    """

    name: str
    path: Path
    description: str
    source: str = "package"

    @property
    def pretrained_dir(self) -> Path:
        return self.path.parent / "pretrained" / self.name

    @property
    def has_pretrained(self) -> bool:
        return (self.pretrained_dir / "checkpoints").is_dir()


def list_recipes() -> dict[str, RecipeInfo]:
    """All recipes by name (the first folder that defines a name wins)."""
    out: dict[str, RecipeInfo] = {}
    for d, source in recipe_sources():
        for p in sorted(d.glob("*.py")):
            if p.name.startswith("_") or p.stem in out:
                continue
            out[p.stem] = RecipeInfo(p.stem, p, _docline(p), source)
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
        local = Path("recipes") / f"{name}.py"
        hint = (
            f"; {local} is not searched unless named: pass --recipes-dir recipes"
            if local.is_file()
            else ""
        )
        raise RecipeError(f"unknown recipe {name!r}{hint}; valid recipes: {valid}")
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
