"""A user's own generic graphs (``--dataset PATH``): graph6, sparse6, GraphML and
edge-list folders read back exactly, malformed items skipped and counted, the split, the
cache, and the task built from a path."""

import math
import warnings

import networkx as nx
import numpy as np
import pytest

from genmodels.datasets.graphs import load_user_graphs, read_user_graphs
from genmodels.datasets.user import UserData
from genmodels.errors import DataError, MissingFileError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))


def planted(num=12, seed=0):
    """Graphs not drawn from the benchmarks: trees, Watts-Strogatz, grids (8-30 nodes)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num):
        n = int(rng.integers(8, 31))
        s = int(rng.integers(1 << 30))
        if i % 3 == 0:
            g = nx.random_labeled_tree(n, seed=s)
        elif i % 3 == 1:
            g = nx.watts_strogatz_graph(n, 4, 0.3, seed=s)
        else:
            g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(2 + i % 3, 4 + i % 2))
        out.append(g)
    return out


def edge_set(g):
    return {tuple(sorted(e)) for e in g.edges}


def assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert sorted(a.nodes) == list(range(b.number_of_nodes()))
        assert edge_set(a) == edge_set(b)


def write_lines(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_graph6_round_trip_is_exact(tmp_path):
    graphs = planted() + [nx.empty_graph(3)]  # isolated nodes are kept
    lines = [nx.to_graph6_bytes(g, header=i == 0).strip() for i, g in enumerate(graphs)]
    path = write_lines(tmp_path / "g.g6", lines[:5] + [b""] + lines[5:])  # blank line ignored
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(read_user_graphs(path), graphs)


def test_sparse6_round_trip_is_exact(tmp_path):
    graphs = planted(seed=1)
    lines = [nx.to_sparse6_bytes(g, header=i % 2 == 0).strip() for i, g in enumerate(graphs)]
    assert_same(read_user_graphs(write_lines(tmp_path / "g.s6", lines)), graphs)


def test_edge_list_folder_round_trip_is_exact(tmp_path):
    """One graph a file, files in name order; plain, weighted and networkx-style lines,
    comments, blank lines and shuffled edges; nodes numbered in numeric order."""
    graphs = planted(seed=2)
    folder = tmp_path / "edges"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, g in enumerate(graphs):
        edges = list(g.edges)
        rng.shuffle(edges)
        if i % 3 == 0:
            body = [f"{u} {v}" for u, v in edges]
        elif i % 3 == 1:
            body = [f"{v}\t{u}  {rng.random():.3f}  # weighted" for u, v in edges]
        else:
            body = [f"{u} {v} {{'weight': 1.0}}" for u, v in edges]
        text = "# a comment line\n\n" + "\n".join(body) + "\n"
        where = folder / "sub" if i >= 10 else folder
        (where / f"g{i:02d}.txt").write_text(text)
    (folder / ".hidden").write_text("not a graph\n")  # hidden files are ignored
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(read_user_graphs(folder), graphs)


def test_graphml_round_trip_is_exact(tmp_path):
    g = planted(1, seed=3)[0]
    one = tmp_path / "one.graphml"
    nx.write_graphml(g, one)
    assert_same(read_user_graphs(one), [g])
    # several <graph> elements in one file, read in document order; a directed one
    # becomes undirected
    graphs = planted(3, seed=4)
    blocks = []
    for k, h in enumerate(graphs):
        nodes = "".join(f'<node id="n{u}"/>' for u in h.nodes)
        edges = "".join(f'<edge source="n{u}" target="n{v}"/>' for u, v in h.edges)
        kind = "directed" if k == 1 else "undirected"
        blocks.append(f'<graph id="G{k}" edgedefault="{kind}">{nodes}{edges}</graph>')
    many = tmp_path / "many.graphml"
    many.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">' + "".join(blocks) + "</graphml>"
    )
    assert_same(read_user_graphs(many), graphs)


def test_malformed_lines_are_skipped_and_named(tmp_path):
    graphs = planted(20, seed=5)
    lines = [nx.to_graph6_bytes(g, header=False).strip() for g in graphs]
    # planted: line 3 garbage, line 8 an empty graph, line 12 truncated, line 15 binary
    lines.insert(2, b"not a graph at all")
    lines.insert(7, b"?")
    lines.insert(11, lines[11][:-2])
    lines.insert(14, b"\xff\xfe\x00")
    path = write_lines(tmp_path / "bad.g6", lines)
    with pytest.warns(UserWarning) as rec:
        got = read_user_graphs(path)
    assert_same(got, graphs)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert str(path) in msg and "skipped 4 of 24 graphs" in msg
    for line in (3, 8, 12, 15):
        assert f"line {line}:" in msg
    assert "no nodes" in msg


def test_bad_files_of_a_folder_are_skipped_and_named(tmp_path):
    graphs = planted(4, seed=6)
    for i, g in enumerate(graphs):
        (tmp_path / f"g{i}.edges").write_text("".join(f"{u} {v}\n" for u, v in g.edges))
    (tmp_path / "g1a.edges").write_text("0 1\n1 2 x y\n")  # line 2 malformed
    (tmp_path / "g2a.edges").write_text("# only a comment\n")  # no nodes
    (tmp_path / "g3a.edges").write_bytes(b"\xff\xfe\x00\x01")  # binary
    with pytest.warns(UserWarning, match="skipped 3 of 7 graphs") as rec:
        got = read_user_graphs(tmp_path)
    assert_same(got, graphs)
    msg = str(rec[0].message)
    assert "g1a.edges: line 2" in msg and "g2a.edges: no nodes" in msg and "g3a.edges" in msg


def test_no_good_graph_is_a_one_line_data_error(tmp_path):
    path = write_lines(tmp_path / "junk.g6", [b"hello", b"world", b"?"])
    with pytest.raises(DataError) as e:
        read_user_graphs(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "none of its 3 graphs" in msg
    assert "line 1" in msg
    (tmp_path / "empty.g6").write_bytes(b"")
    with pytest.raises(DataError, match="no graph"):
        read_user_graphs(tmp_path / "empty.g6")
    with pytest.raises(MissingFileError):
        read_user_graphs(tmp_path / "missing.g6")


def test_split_is_deterministic_and_follows_the_options(tmp_path):
    graphs = planted(30, seed=7)
    path = write_lines(
        tmp_path / "g.g6", [nx.to_graph6_bytes(g, header=False).strip() for g in graphs]
    )
    train, test = load_user_graphs(path)
    assert len(test) == math.ceil(30 * 0.1) and len(train) == 30 - len(test)
    keys = [nx.to_graph6_bytes(g) for g in graphs]
    got = [nx.to_graph6_bytes(g) for g in train + test]
    assert sorted(got) == sorted(keys)  # a partition of the file
    again = load_user_graphs(path)
    assert [edge_set(g) for g in again[1]] == [edge_set(g) for g in test]
    other = load_user_graphs(path, UserData(test_fraction=0.5, split_seed=3))
    assert len(other[1]) == 15
    assert [edge_set(g) for g in other[1]] != [edge_set(g) for g in test[:15]]
    # files taken as given
    test_file = write_lines(tmp_path / "t.g6", [nx.to_graph6_bytes(graphs[0], header=False)])
    train2, test2 = load_user_graphs(path, UserData(test_file=str(test_file)))
    assert len(train2) == 30 and len(test2) == 1 and edge_set(test2[0]) == edge_set(graphs[0])
    train3, test3 = load_user_graphs(path, UserData(train_file=str(test_file)))
    assert len(train3) == 1 and len(test3) == 30


def test_parsed_graphs_are_cached_by_checksum(tmp_path):
    graphs = planted(5, seed=8)
    path = write_lines(
        tmp_path / "g.g6", [nx.to_graph6_bytes(g, header=False).strip() for g in graphs]
    )
    read_user_graphs(path)
    cached = list((tmp_path / "cache").rglob("user-graphs-*.npz"))
    assert len(cached) == 1
    assert_same(read_user_graphs(path), graphs)  # read back from the cache
    write_lines(path, [nx.to_graph6_bytes(g, header=False).strip() for g in graphs[:2]])
    assert_same(read_user_graphs(path), graphs[:2])  # new content, new entry
    assert len(list((tmp_path / "cache").rglob("user-graphs-*.npz"))) == 2


def test_task_from_a_path_derives_its_size_and_clips_degrees(tmp_path):
    from genmodels.models.tasks.graphs import GraphTask

    graphs = planted(19, seed=9) + [nx.star_graph(14)]  # a degree of 14 > F - 1
    assert max(g.number_of_nodes() for g in graphs) == 30
    path = write_lines(
        tmp_path / "g.g6", [nx.to_graph6_bytes(g, header=False).strip() for g in graphs]
    )
    test_file = write_lines(tmp_path / "t.g6", [nx.to_graph6_bytes(graphs[0], header=False)])
    task = GraphTask(str(path), 999, 10, UserData(test_file=str(test_file)))
    train, test = task.splits
    assert len(train) == 20 and len(test) == 1
    assert task.max_nodes == task.dims[0] == task.domain.max_nodes == 30
    arrays = task.train_arrays()
    assert arrays["x"].shape == (20, 30, 10) and arrays["adj"].shape == (20, 30, 30)
    deg = arrays["adj"].sum(-1).astype(int)
    assert deg.max() == 14
    np.testing.assert_array_equal(arrays["x"].argmax(-1), np.minimum(deg, 9))
    np.testing.assert_array_equal(arrays["x"].sum(-1), arrays["node_mask"])
    assert task.default_num_samples() == 1


def test_a_path_of_another_kind_or_a_single_graph_is_refused(tmp_path):
    from genmodels.datasets.graphs import graph_splits

    (tmp_path / "mols.csv").write_text("smiles\nCCO\n")
    with pytest.raises(DataError, match="holds molecules; graph recipes read graph6"):
        graph_splits(str(tmp_path / "mols.csv"))
    one = write_lines(tmp_path / "one.g6", [nx.to_graph6_bytes(nx.path_graph(4), header=False)])
    with pytest.raises(DataError, match="1 good graph; a split needs 2"):
        graph_splits(str(one))
    with pytest.raises(MissingFileError):
        graph_splits(str(tmp_path / "missing.g6"))
