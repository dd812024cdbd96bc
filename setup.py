"""Packaging: ``recipes/`` ships inside the package as ``genmodels/_recipes/``.

Everything else is declared in ``pyproject.toml``. ``recipes/`` (recipe files, their
``_*.py`` bases and the ``pretrained/<name>/`` models) stays at the repository root, where
the README, benchmarks and tests refer to it; a regular install or a wheel gets a copy at
``genmodels/_recipes/``, which :func:`genmodels.recipes.recipe_dirs` searches. An editable
install reads the repository's ``recipes/`` directly (nothing is copied).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RECIPES = Path(__file__).resolve().parent / "recipes"


class BuildPyWithRecipes(build_py):
    """``build_py`` that also copies ``recipes/`` to ``genmodels/_recipes`` (no caches)."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        dest = Path(self.build_lib) / "genmodels" / "_recipes"
        shutil.rmtree(dest, ignore_errors=True)
        skip = shutil.ignore_patterns("__pycache__", "*.py[co]", ".*")
        shutil.copytree(RECIPES, dest, ignore=skip)


setup(cmdclass={"build_py": BuildPyWithRecipes})
