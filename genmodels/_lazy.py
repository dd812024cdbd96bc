"""Lazy re-exports, so ``import genmodels.domains`` does not import rdkit, pymatgen and
matminer until one of their names is used."""

from __future__ import annotations

import importlib


def lazy_modules(package: str, modules: dict[str, str]):
    """``(__all__, __getattr__, __dir__)`` from submodule -> its public names
    (space-separated), the inverse layout of :func:`lazy_exports`'s table."""
    table = {name: mod for mod, names in modules.items() for name in names.split()}
    return (sorted(table), *lazy_exports(package, table))


def lazy_exports(package: str, table: dict[str, str]):
    """``(__getattr__, __dir__)`` for a package whose public names live in submodules.

    Args:
      package: the package's ``__name__``.
      table: public name -> submodule (relative to the package).
    """

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{table[name]}")
        return getattr(module, name)

    def __dir__():
        return sorted(table)

    return __getattr__, __dir__
