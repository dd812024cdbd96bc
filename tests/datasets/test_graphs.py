"""GDSS generic-graph loaders: counts and node ranges of SOURCES.md, the GDSS split, errors."""

import os
import pickle
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import genmodels.datasets.graphs as graph_data
from genmodels.datasets.graphs import load_graphs, train_test_split
from genmodels.datasets.registry import DatasetError
from genmodels.domains.graphs import GraphDomain

_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# From $GENMODELS_DATA_DIR/graphs/SOURCES.md: count, min/max nodes, mean nodes (1 decimal);
# GDSS config/*.yaml: max_node_num, max_feat_num; test size = int(0.2 * count).
CASES = {
    "community_small": (100, 12, 20, 15.3, 20, 10, 20),
    "ego_small": (200, 4, 17, 6.4, 18, 17, 40),
    "grid": (100, 110, 361, 216.4, 361, 5, 20),
    "ENZYMES": (587, 10, 125, 33.0, 125, 10, 117),
}


@pytest.fixture
def data_env(monkeypatch):
    if not os.environ.get("GENMODELS_DATA_DIR"):
        monkeypatch.setenv("GENMODELS_DATA_DIR", str(_SHARED))
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")


@pytest.mark.parametrize("name", list(CASES))
def test_load_counts_nodes_and_split(name, data_env):
    count, lo, hi, mean, max_nodes, max_feat, n_test = CASES[name]
    graphs = load_graphs(name)
    assert len(graphs) == count
    sizes = np.array([g.number_of_nodes() for g in graphs])
    assert sizes.min() == lo and sizes.max() == hi
    assert round(float(sizes.mean()), 1) == mean
    for g in graphs:
        assert type(g) is nx.Graph
        assert list(g.nodes) == list(range(g.number_of_nodes()))  # relabelled 0..n-1
        assert nx.number_of_isolates(g) == 0 and nx.number_of_selfloops(g) == 0

    train, test = train_test_split(graphs)
    assert (len(train), len(test)) == (count - n_test, n_test)
    assert all(a is b for a, b in zip(test, graphs[:n_test]))  # test = head of the list
    assert all(a is b for a, b in zip(train, graphs[n_test:]))

    # the GDSS sizes fit every graph, and encode -> decode is exact on the real data
    dom = GraphDomain(max_nodes=max_nodes, max_feat_num=max_feat)
    sub = graphs[:: max(1, count // 25)]
    state, ctx = dom.encode(sub)
    x = np.asarray(state["x"])
    np.testing.assert_array_equal(x.sum(-1), np.asarray(ctx["node_mask"]))  # one-hot rows
    for g, h in zip(sub, dom.decode(state, ctx)):
        assert {frozenset(e) for e in g.edges()} == {frozenset(e) for e in h.edges()}
        assert h.number_of_nodes() == g.number_of_nodes()


def test_relabel_keeps_order_and_attributes(data_env):
    """ENZYMES keeps node labels in the stored order; ego_small Citeseer ids become 0..n-1."""
    from genmodels.datasets.registry import fetch

    with open(fetch("ENZYMES", "graphs/ENZYMES.pkl"), "rb") as f:
        raw = pickle.load(f)
    loaded = load_graphs("ENZYMES")
    for r, g in zip(raw[:20], loaded[:20]):
        assert [d["label"] for _, d in r.nodes(data=True)] == [
            d["label"] for _, d in g.nodes(data=True)
        ]
        assert g.graph["label"] == r.graph["label"]
        index = {v: i for i, v in enumerate(r.nodes)}
        assert {frozenset((index[a], index[b])) for a, b in r.edges()} == {
            frozenset(e) for e in g.edges()
        }
    ego = load_graphs("ego_small")
    assert all(max(g.nodes) == g.number_of_nodes() - 1 for g in ego)


def test_split_arguments():
    assert train_test_split(list(range(10)), 0.25) == (list(range(2, 10)), [0, 1])
    assert train_test_split([1, 2, 3], 0.0) == ([1, 2, 3], [])
    with pytest.raises(ValueError, match="empty"):
        train_test_split([])
    with pytest.raises(ValueError, match="test_frac"):
        train_test_split([1], 1.0)


def test_unknown_name(data_env):
    with pytest.raises(DatasetError, match="unknown graph dataset"):
        load_graphs("planar")


def test_missing_and_corrupt_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    with pytest.raises(DatasetError, match="missing"):
        load_graphs("community_small")
    (tmp_path / "graphs").mkdir()
    # a perfectly readable pickle with the wrong checksum: rejected before unpickling
    # (otherwise the error would be about an empty graph list)
    (tmp_path / "graphs" / "community_small.pkl").write_bytes(pickle.dumps([]))
    with pytest.raises(DatasetError, match="corrupt"):
        load_graphs("community_small")


@pytest.mark.parametrize(
    "payload, match",
    [
        ([], "empty graph list"),
        ({"a": 1}, "not a list"),
        ([nx.Graph()], "no nodes"),
        ([3], "not a graph"),
    ],
)
def test_bad_contents(payload, match, tmp_path, monkeypatch):
    """Contents checks, with the checksum step replaced by a file we wrote ourselves."""
    p = tmp_path / "g.pkl"
    p.write_bytes(pickle.dumps(payload))
    monkeypatch.setattr(graph_data, "fetch", lambda name, path: p)
    with pytest.raises(DatasetError, match=match):
        load_graphs("grid")
