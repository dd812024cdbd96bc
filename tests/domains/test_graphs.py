"""GraphDomain: encode/decode round trips, constrain, degree features, node counts, graph6."""

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from genmodels.core.masks import graph_masks
from genmodels.domains.graphs import (
    GraphDomain,
    quantize_adj,
    read_graph6,
    symmetrize_upper,
    write_graph6,
)


def _edge_set(g):
    return {frozenset(e) for e in g.edges()}


def _relabelled(g):
    return nx.convert_node_labels_to_integers(g, ordering="default")


def _test_graphs():
    """Graphs without isolated nodes, with odd node labels and sizes 2..9."""
    rng = np.random.default_rng(0)
    graphs = [nx.path_graph(2), nx.complete_graph(5), nx.star_graph(6)]
    for n in (4, 7, 9):
        g = nx.random_labeled_tree(n, seed=int(rng.integers(1 << 30)))
        for _ in range(n):  # a few extra edges
            i, j = rng.integers(n, size=2)
            if i != j:
                g.add_edge(int(i), int(j))
        # arbitrary labels in a scrambled order
        perm = rng.permutation(n)
        g = nx.relabel_nodes(g, {v: f"v{100 + perm[v]}" for v in g.nodes})
        graphs.append(g)
    return graphs


def test_degree_one_hot_hand_case():
    g = nx.Graph([(0, 1), (1, 2), (1, 3)])  # degrees 1, 3, 1, 1
    dom = GraphDomain(max_nodes=6, max_feat_num=5)
    state, ctx = dom.encode([g])
    x = np.asarray(state["x"][0])
    expected = np.zeros((6, 5), np.float32)
    for i, d in enumerate([1, 3, 1, 1]):
        expected[i, d] = 1.0
    np.testing.assert_array_equal(x, expected)
    adj = np.zeros((6, 6), np.float32)
    for i, j in [(0, 1), (1, 2), (1, 3)]:
        adj[i, j] = adj[j, i] = 1.0
    np.testing.assert_array_equal(np.asarray(state["adj"][0]), adj)
    np.testing.assert_array_equal(np.asarray(ctx["node_mask"][0]), [1, 1, 1, 1, 0, 0])
    ref = graph_masks(ctx["node_mask"])
    for k in ("x", "adj"):
        np.testing.assert_array_equal(np.asarray(ctx["masks"][k]), np.asarray(ref[k]))
    assert state["x"].dtype == jnp.float32 and state["adj"].dtype == jnp.float32


def test_encode_errors():
    dom = GraphDomain(max_nodes=4, max_feat_num=3)
    with pytest.raises(ValueError, match="max_feat_num"):
        dom.encode([nx.star_graph(3)])  # centre has degree 3
    with pytest.raises(ValueError, match="max_nodes"):
        dom.encode([nx.path_graph(5)])
    with pytest.raises(ValueError, match="no nodes"):
        dom.encode([nx.Graph()])
    with pytest.raises(ValueError, match="empty"):
        dom.encode([])


def test_encode_decode_round_trip_with_padding():
    graphs = _test_graphs()
    dom = GraphDomain(max_nodes=12, max_feat_num=8)
    state, ctx = dom.encode(graphs)
    assert state["x"].shape == (len(graphs), 12, 8) and state["adj"].shape == (len(graphs), 12, 12)
    out = dom.decode(state, ctx)
    assert len(out) == len(graphs)
    for g, h in zip(graphs, out):
        assert set(h.nodes) == set(range(g.number_of_nodes()))
        assert _edge_set(h) == _edge_set(_relabelled(g))  # same edges in the same node order
        assert nx.is_isomorphic(g, h)
    # padding is exactly zero
    m = np.asarray(ctx["node_mask"]).astype(bool)
    assert np.all(np.asarray(state["x"])[~m] == 0)
    a = np.asarray(state["adj"])
    assert np.all(a[~m] == 0) and np.all(a.transpose(0, 2, 1)[~m] == 0)


def test_decode_threshold_isolates_and_padding():
    dom = GraphDomain(max_nodes=5, max_feat_num=4)
    adj = np.zeros((3, 5, 5), np.float32)
    # graph 0: 0-1 at exactly the threshold, 1-2 just below, 3 has a self loop only
    adj[0, 0, 1] = adj[0, 1, 0] = 0.5
    adj[0, 1, 2] = adj[0, 2, 1] = 0.4999
    adj[0, 3, 3] = 0.9
    # graph 1: an edge into a padded node (node 4) that the mask must remove
    adj[1, 0, 4] = adj[1, 4, 0] = 1.0
    adj[1, 1, 2] = adj[1, 2, 1] = 0.8
    # graph 2: nothing above threshold
    adj[2] = 0.3
    node_mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], jnp.float32)
    ctx = {"node_mask": node_mask, "masks": graph_masks(node_mask)}
    state = {"x": jnp.zeros((3, 5, 4)), "adj": jnp.asarray(adj)}
    g0, g1, g2 = dom.decode(state, ctx)
    assert _edge_set(g0) == {frozenset((0, 1))} and g0.number_of_nodes() == 2
    assert _edge_set(g1) == {frozenset((0, 1))} and g1.number_of_nodes() == 2  # nodes 1, 2
    assert g2.number_of_nodes() == 1 and g2.number_of_edges() == 0  # GDSS: one node
    empty = GraphDomain(5, 4, empty_as_single_node=False).decode(state, ctx)[2]
    assert empty.number_of_nodes() == 0
    # without ctx the edge into node 4 is kept: nodes 0, 1, 2, 4 -> 0, 1, 2, 3
    assert _edge_set(dom.decode(state, None)[1]) == {frozenset((0, 3)), frozenset((1, 2))}


def test_quantize_adj_numpy_and_jax():
    a = np.array([[-1.0, 0.49999, 0.5], [2.0, np.nan, 0.0]], np.float32)
    expected = np.array([[0, 0, 1], [1, 1, 0]], np.float32)  # GDSS: only `< thr` -> 0
    q = quantize_adj(a)
    assert isinstance(q, np.ndarray)
    np.testing.assert_array_equal(q, expected)
    qj = quantize_adj(jnp.asarray(a))
    assert isinstance(qj, jax.Array) and qj.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(qj), expected)
    np.testing.assert_array_equal(quantize_adj(a, thr=0.0), [[0, 1, 1], [1, 1, 1]])


def test_constrain_symmetric_zero_diagonal_zero_padding():
    dom = GraphDomain(max_nodes=7, max_feat_num=3)
    rng = np.random.default_rng(0)
    node_mask = jnp.array([[1] * 7, [1] * 4 + [0] * 3, [1, 1] + [0] * 5], jnp.float32)
    ctx = {"node_mask": node_mask, "masks": graph_masks(node_mask)}
    state = {
        "x": jnp.asarray(rng.normal(size=(3, 7, 3)), jnp.float32),
        "adj": jnp.asarray(rng.normal(size=(3, 7, 7)), jnp.float32),
    }
    constrain = jax.jit(dom.constrain)
    out = constrain(state, ctx)
    adj = np.asarray(out["adj"])
    x = np.asarray(out["x"])
    np.testing.assert_array_equal(adj, adj.transpose(0, 2, 1))
    assert np.all(np.diagonal(adj, axis1=1, axis2=2) == 0)
    m = np.asarray(node_mask).astype(bool)
    assert np.all(x[~m] == 0) and np.all(adj[~m] == 0) and np.all(adj.transpose(0, 2, 1)[~m] == 0)
    # real entries: the strict upper triangle of the input, unchanged; x unchanged
    pair = m[:, :, None] & m[:, None, :]
    upper = np.triu(np.ones((7, 7), bool), 1)[None] & pair
    np.testing.assert_array_equal(adj[upper], np.asarray(state["adj"])[upper])
    np.testing.assert_array_equal(x[m], np.asarray(state["x"])[m])
    # a projection: applying it twice changes nothing
    again = constrain(out, ctx)
    np.testing.assert_array_equal(np.asarray(again["adj"]), adj)


def test_symmetrize_upper_is_gdss_symmetric_noise():
    """triu-mirror(A + z) = A + triu(z,1) + triu(z,1)^T for symmetric zero-diagonal A."""
    rng = np.random.default_rng(1)
    a = np.triu(rng.normal(size=(2, 6, 6)), 1).astype(np.float32)
    a = a + a.transpose(0, 2, 1)
    z = rng.normal(size=(2, 6, 6)).astype(np.float32)
    zu = np.triu(z, 1)
    got = np.asarray(jax.jit(symmetrize_upper)(jnp.asarray(a + z)))
    np.testing.assert_allclose(got, a + zu + zu.transpose(0, 2, 1), atol=1e-6)


def test_node_count_sampler_matches_training_counts():
    train = [nx.path_graph(3)] + [nx.path_graph(5)] * 3  # counts: 3 w.p. 1/4, 5 w.p. 3/4
    dom = GraphDomain(max_nodes=6, max_feat_num=3)
    sample = jax.jit(dom.node_count_sampler(train), static_argnums=1)
    ctx = sample(jax.random.key(2), 4000)
    m = np.asarray(ctx["node_mask"])
    assert m.shape == (4000, 6)
    counts = m.sum(1).astype(int)
    # prefix masks only
    np.testing.assert_array_equal(m, (np.arange(6)[None] < counts[:, None]).astype(np.float32))
    assert set(np.unique(counts)) == {3, 5}
    # binomial sd = sqrt(.25 * .75 / 4000) ~ 0.007; 0.03 is > 4 sd
    assert abs(np.mean(counts == 3) - 0.25) < 0.03
    np.testing.assert_array_equal(
        np.asarray(ctx["masks"]["adj"]), np.asarray(graph_masks(ctx["node_mask"])["adj"])
    )
    with pytest.raises(ValueError):
        dom.node_count_sampler([])
    with pytest.raises(ValueError):
        dom.node_count_sampler([nx.path_graph(7)])


def test_graph6_round_trip(tmp_path):
    graphs = _test_graphs()
    items = graphs[:3] + [None, nx.Graph()] + graphs[3:]
    path = write_graph6(items, tmp_path / "s.g6")
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == len(items) + 1 and lines[-1] == b""  # one line each, newline-ended
    assert lines[3] == b"" and lines[4] == b"?"
    back = read_graph6(path)
    assert len(back) == len(items)
    for g, h in zip(items, back):
        if g is None:
            assert h is None
            continue
        assert set(h.nodes) == set(range(g.number_of_nodes()))
        assert _edge_set(h) == _edge_set(_relabelled(g))
    # a header line is accepted
    (tmp_path / "h.g6").write_bytes(b">>graph6<<" + lines[0] + b"\n")
    assert _edge_set(read_graph6(tmp_path / "h.g6")[0]) == {frozenset((0, 1))}


def test_graph6_errors(tmp_path):
    g = nx.path_graph(3)
    g.add_edge(1, 1)
    with pytest.raises(ValueError, match="self loop"):
        write_graph6([g], tmp_path / "a.g6")
    with pytest.raises(ValueError, match="undirected"):
        write_graph6([nx.DiGraph([(0, 1)])], tmp_path / "b.g6")
    (tmp_path / "bad.g6").write_bytes(b"Bw\n~~~~\n")
    with pytest.raises(ValueError, match=":2:"):
        read_graph6(tmp_path / "bad.g6")
