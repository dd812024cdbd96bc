"""A wheel built from the repository ships every recipe and pretrained model, and an
install of it finds them from any folder (no checkout needed)."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

from genmodels import recipes

ROOT = Path(__file__).resolve().parents[1]
# not part of a checkout: version control, build outputs, virtual environments, local data
NOT_CHECKED_OUT = (".git", "build", "dist", "data", "runs", "samples", "*.egg-info", "*venv*")
CACHES = ("__pycache__", "*.pyc", ".*")


def _source_files(folder: Path) -> set[str]:
    """Files under ``folder`` (relative, posix) that are not caches or hidden files."""
    out = set()
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and not any(fnmatch(part, pat) for part in rel.parts for pat in CACHES):
            out.add(rel.as_posix())
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the checkout with caches planted in ``recipes/``."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"

    def skip(folder, names):
        top = Path(folder) == ROOT
        return [n for n in names if top and any(fnmatch(n, p) for p in NOT_CHECKED_OUT)]

    shutil.copytree(ROOT, src, ignore=skip)
    for cache in (src / "recipes/__pycache__", src / "recipes/pretrained/gdss_qm9/__pycache__"):
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "junk.cpython-311.pyc").write_bytes(b"\0")
    (src / "recipes/pretrained/.DS_Store").write_bytes(b"\0")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-q", "-w", str(tmp / "dist"), str(src)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("genmodels-*.whl")
    return whl


def test_the_wheel_holds_every_recipe_and_pretrained_file_and_nothing_else(wheel, monkeypatch):
    monkeypatch.setattr(recipes, "_explicit_dirs", [])
    monkeypatch.delenv("GENMODELS_RECIPES_DIR", raising=False)
    names = zipfile.ZipFile(wheel).namelist()
    packed = {
        n.removeprefix("genmodels/_recipes/") for n in names if n.startswith("genmodels/_recipes/")
    }
    assert {f"{name}.py" for name in recipes.list_recipes()} <= packed
    assert packed == _source_files(ROOT / "recipes")  # bases, pretrained/** and nothing more
    pretrained = {f for f in packed if f.startswith("pretrained/")}
    assert len(pretrained) > 100 and any(f.endswith("/metrics.json") for f in pretrained)
    with zipfile.ZipFile(wheel) as z:  # byte for byte
        for f in sorted(packed):
            assert z.read(f"genmodels/_recipes/{f}") == (ROOT / "recipes" / f).read_bytes(), f
    # only the package and its metadata: no tests, benchmarks or a second recipes/ copy
    assert {n.split("/")[0] for n in names} == {"genmodels", "genmodels-0.1.0.dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/." in n]
    assert (
        "genmodels/recipes.py" in names and "genmodels/metrics/assets/fid_reference.json" in names
    )


def _run_elsewhere(wheel: Path, tmp_path: Path, script: str) -> tuple[Path, dict]:
    """Unpack ``wheel`` into ``tmp_path/site`` and run ``script`` (which prints one JSON
    line) with only that copy of genmodels importable, from a folder whose ``recipes/``
    holds a decoy recipe the package must not read."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "recipes").mkdir(parents=True)
    (elsewhere / "recipes" / "decoy.py").write_text('"""Decoy."""\n')
    env = {k: v for k, v in os.environ.items() if k != "GENMODELS_RECIPES_DIR"}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(got["package"]).parent == site / "genmodels"  # not the checkout's copy
    return site / "genmodels" / "_recipes", got


def test_an_unpacked_wheel_lists_its_recipes_from_any_folder(wheel, tmp_path):
    packaged, got = _run_elsewhere(
        wheel,
        tmp_path,
        """
import json, genmodels
from genmodels.recipes import list_recipes
print(json.dumps({
    "package": genmodels.__file__,
    "recipes": {n: [str(i.path), i.source, str(i.pretrained_dir), i.has_pretrained]
                for n, i in list_recipes().items()},
}))
""",
    )
    assert set(got["recipes"]) == {p.stem for p in (ROOT / "recipes").glob("[!_]*.py")}
    shipped = {p.parent.name for p in (ROOT / "recipes/pretrained").glob("*/checkpoints")}
    for name, (path, source, pretrained_dir, has_pretrained) in got["recipes"].items():
        assert source == "package" and Path(path).parent == packaged, name
        assert Path(pretrained_dir) == packaged / "pretrained" / name
        assert has_pretrained == (name in shipped), name
    assert len(shipped) >= 10


@pytest.mark.slow
def test_an_unpacked_wheel_loads_a_pretrained_model_from_any_folder(wheel, tmp_path):
    packaged, got = _run_elsewhere(
        wheel,
        tmp_path,
        """
import json, genmodels
from genmodels.models.run import load_pretrained, resolve_checkpoint
from genmodels.recipes import load_recipe
_, _, _, meta = load_pretrained("gdss_community_small")  # restores the packaged checkpoint
print(json.dumps({
    "package": genmodels.__file__,
    "step": meta.get("step"),
    "folder": str(resolve_checkpoint(load_recipe("gdss_community_small")[1], "pretrained")),
}))
""",
    )
    assert Path(got["folder"]) == packaged / "pretrained" / "gdss_community_small"
    assert got["step"]
