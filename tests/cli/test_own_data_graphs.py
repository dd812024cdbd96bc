"""``genmodels train / sample / evaluate RECIPE --dataset FILE.g6``: a user's graph6 file
(trees, Watts-Strogatz graphs and ladders, not from the benchmarks) with two malformed
lines, a tiny network for 2 steps, 4 samples, and the MMD suite against the file's own
test split. Masked diffusion runs in the default suite; GDSS (the same path with a
bigger compile) under ``-m slow``."""

import json

import networkx as nx
import numpy as np
import pytest

from genmodels.cli import main
from genmodels.datasets.user import split_indices
from genmodels.domains.graphs import read_graph6
from genmodels.metrics.graphs import graph_mmd

GDSS_TINY = "--net.depth 1 --net.nhid 8 --net.num-layers 2 --net.adim 8 --net.c-hid 2"
MDM_TINY = "--net.dx 8 --net.de 4 --net.heads 2 --net.layers 1 --net.ffn-x 8 --net.ffn-e 4"
RECIPES = [
    pytest.param("mdm_community_small", MDM_TINY.split(), [], id="mdm"),
    # GDSS compiles ~100 initialisers and its training step: ~40 s on 2 cores
    pytest.param(
        "gdss_community_small",
        [*GDSS_TINY.split(), "--net.num-linears", "1"],
        ["--steps", "2", "--sampler", "euler"],
        id="gdss",
        marks=pytest.mark.slow,
    ),
]


@pytest.fixture()
def g6(tmp_path, monkeypatch):
    """24 graphs of 5-13 nodes; line 4 is garbage and line 9 an empty graph."""
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    graphs = []
    for i in range(24):
        n = 5 + i % 9
        if i % 3 == 0:
            g = nx.random_labeled_tree(n, seed=i)
        elif i % 3 == 1:
            g = nx.watts_strogatz_graph(n, 4, 0.3, seed=i)
        else:
            g = nx.ladder_graph(n // 2)
        graphs.append(g)
    lines = [nx.to_graph6_bytes(g, header=False).strip() for g in graphs]
    lines.insert(3, b"this is not graph6")
    lines.insert(8, b"?")
    path = tmp_path / "mine.g6"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, graphs


@pytest.mark.parametrize("recipe, tiny, sampling", RECIPES)
def test_train_sample_evaluate_on_a_graph6_file(recipe, tiny, sampling, g6, tmp_path, capsys):
    path, graphs = g6
    work, out = tmp_path / "run", tmp_path / "s.g6"
    args = ["train", recipe, "--dataset", str(path), "--test-fraction", "0.25"]
    args += ["--workdir", str(work), "--train.steps", "2", "--train.batch-size", "8"]
    with pytest.warns(UserWarning, match=r"skipped 2 of 26 graphs") as rec:
        assert main([*args, "--train.progress", "False", *tiny]) == 0
    msg = next(str(w.message) for w in rec if "skipped" in str(w.message))
    assert str(path) in msg and "line 4:" in msg and "line 9: no nodes" in msg
    assert (work / "checkpoints" / "2").is_dir()
    path.unlink()  # the run folder keeps its own copy (run/data/mine.g6)

    # sample and evaluate take the file and its split from the checkpoint
    args = ["sample", recipe, "--checkpoint", str(work), "--num", "4", "--out", str(out)]
    assert main([*args, *sampling, *(a.replace("--", "--config.", 1) for a in tiny)]) == 0
    samples = read_graph6(out)
    n_max = max(g.number_of_nodes() for g in graphs)
    assert len(samples) == 4 and all(g.number_of_nodes() <= n_max for g in samples)
    capsys.readouterr()
    args = ["evaluate", recipe, "--samples", str(out), "--checkpoint", str(work)]
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    # the reference is the file's own test split: 6 of its 24 good graphs
    test = [graphs[i] for i in split_indices(24, 0.25, 0)[1]]
    assert metrics["num_reference"] == len(test) == 6 and metrics["num_samples"] == 4
    want = graph_mmd(test, samples, metrics=("degree", "clustering", "orbit", "spectral"))
    for k, v in want.items():
        assert metrics[k] == pytest.approx(float(v), rel=1e-6, abs=1e-9), k
    assert np.isfinite(list(want.values())).all()


def test_a_file_without_a_good_graph_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "bad.g6"
    bad.write_text("hello\nworld\n")
    args = ["train", "gdss_community_small", "--dataset", str(bad)]
    assert main([*args, "--workdir", str(tmp_path / "w"), "--train.steps", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(bad) in err and "none of its 2 graphs" in err and "line 1" in err
