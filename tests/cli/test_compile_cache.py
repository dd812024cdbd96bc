"""The command line keeps XLA's persistent compilation cache in the cache folder: a second
start loads the programs the first compiled, with the same results."""

import json
import os
import subprocess
import sys

MAIN = "import sys; from genmodels.cli import main; sys.exit(main(sys.argv[1:]))"


def _train(tmp_path, name: str, **env) -> float:
    env = {**os.environ, "GENMODELS_CACHE_DIR": str(tmp_path / "cache"), **env}
    env.pop("JAX_COMPILATION_CACHE_DIR")  # the tests' shared cache (conftest.py)
    work = tmp_path / name
    args = ["train", "toy", "--workdir", str(work), "--train.steps", "2", "--train.log-every", "1"]
    r = subprocess.run([sys.executable, "-c", MAIN, *args], env=env, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return json.loads((work / "metrics.jsonl").read_text().splitlines()[-1])["loss"]


def test_a_second_start_compiles_nothing_new_and_gives_the_same_result(tmp_path):
    cache = tmp_path / "cache" / "xla"
    first = _train(tmp_path, "a")
    entries = sorted(p.name for p in cache.iterdir())
    assert entries  # the training step, its initialisers, ...
    assert _train(tmp_path, "b") == first
    assert sorted(p.name for p in cache.iterdir()) == entries  # every program was a hit
