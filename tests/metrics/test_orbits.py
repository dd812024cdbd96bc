"""Tests for the 4-node graphlet orbit counter (ORCA numbering)."""

import itertools

import networkx as nx
import numpy as np
import pytest
from networkx.algorithms.isomorphism import GraphMatcher

from genmodels.metrics.orbits import _INCLUSION, NUM_ORBITS, orbit_counts


def _labelled(edges, orbits):
    """A reference graphlet whose node i carries the ORCA orbit orbits[i]."""
    g = nx.Graph()
    g.add_nodes_from((i, {"orbit": o}) for i, o in enumerate(orbits))
    g.add_edges_from(edges)
    return g


# Reference graphlets with each node's orbit written by hand from Hocevar & Demsar 2014.
REFERENCE = [
    _labelled([(0, 1)], [0, 0]),
    _labelled([(0, 1), (1, 2)], [1, 2, 1]),
    _labelled([(0, 1), (1, 2), (0, 2)], [3, 3, 3]),
    _labelled([(0, 1), (1, 2), (2, 3)], [4, 5, 5, 4]),
    _labelled([(0, 1), (0, 2), (0, 3)], [7, 6, 6, 6]),
    _labelled([(0, 1), (1, 2), (2, 3), (3, 0)], [8, 8, 8, 8]),
    _labelled([(0, 1), (1, 2), (0, 2), (0, 3)], [11, 10, 10, 9]),
    _labelled([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)], [13, 13, 12, 12]),
    _labelled(list(itertools.combinations(range(4), 2)), [14, 14, 14, 14]),
]


def _orbits_of(sub: nx.Graph) -> dict:
    """Orbit of every node of a small connected graph, by isomorphism to a reference."""
    for ref in REFERENCE:
        gm = GraphMatcher(sub, ref)
        if gm.is_isomorphic():
            return {v: ref.nodes[gm.mapping[v]]["orbit"] for v in sub}
    raise AssertionError("not a connected graphlet on 2-4 nodes")


def brute_force(g: nx.Graph) -> np.ndarray:
    """Count orbits by classifying every connected induced subgraph on 2, 3, 4 nodes."""
    idx = {v: i for i, v in enumerate(g)}
    out = np.zeros((g.number_of_nodes(), NUM_ORBITS), dtype=np.int64)
    for k in (2, 3, 4):
        for nodes in itertools.combinations(g, k):
            sub = g.subgraph(nodes)
            if nx.is_connected(sub):
                for v, o in _orbits_of(sub).items():
                    out[idx[v], o] += 1
    return out


def _row(**nonzero):
    r = np.zeros(NUM_ORBITS, dtype=np.int64)
    for k, v in nonzero.items():
        r[int(k[1:])] = v
    return r


# Expected rows counted by hand; keys o<k> are orbit numbers.
HAND = {
    "P3": (nx.path_graph(3), [_row(o0=1, o1=1), _row(o0=2, o2=1), _row(o0=1, o1=1)]),
    "P4": (
        nx.path_graph(4),
        [
            _row(o0=1, o1=1, o4=1),
            _row(o0=2, o1=1, o2=1, o5=1),
            _row(o0=2, o1=1, o2=1, o5=1),
            _row(o0=1, o1=1, o4=1),
        ],
    ),
    "star": (nx.star_graph(3), [_row(o0=3, o2=3, o7=1)] + [_row(o0=1, o1=2, o6=1)] * 3),
    "C4": (nx.cycle_graph(4), [_row(o0=2, o1=2, o2=1, o8=1)] * 4),
    "K4": (nx.complete_graph(4), [_row(o0=3, o3=3, o14=1)] * 4),
    # Triangle 0-1-2 with the pendant 3 on node 0.
    "paw": (
        nx.Graph([(0, 1), (1, 2), (0, 2), (0, 3)]),
        [
            _row(o0=3, o2=2, o3=1, o11=1),
            _row(o0=2, o1=1, o3=1, o10=1),
            _row(o0=2, o1=1, o3=1, o10=1),
            _row(o0=1, o1=2, o9=1),
        ],
    ),
    # K4 minus the edge 2-3.
    "diamond": (
        nx.Graph([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]),
        [_row(o0=3, o2=1, o3=2, o13=1)] * 2 + [_row(o0=2, o1=2, o3=1, o12=1)] * 2,
    ),
}


@pytest.mark.parametrize("name", list(HAND))
def test_hand_counted(name):
    g, rows = HAND[name]
    got = orbit_counts(g)
    np.testing.assert_array_equal(got, np.stack([rows[i] for i in range(len(rows))]))


def test_reference_graphlets_self_consistent():
    # The brute-force oracle itself reproduces the hand table on the graphlets.
    for name, (g, rows) in HAND.items():
        np.testing.assert_array_equal(brute_force(g), np.stack(rows), err_msg=name)


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(9, 14))
    p = [0.15, 0.3, 0.5, 0.7, 0.9][seed]
    g = nx.gnp_random_graph(n, p, seed=seed)
    g.add_node(n)  # an isolated node keeps a zero row
    np.testing.assert_array_equal(orbit_counts(g), brute_force(g))


def test_permutation_invariant():
    g = nx.gnp_random_graph(30, 0.2, seed=3)
    perm = np.random.default_rng(0).permutation(30)
    h = nx.relabel_nodes(g, dict(enumerate(perm)))
    h = nx.Graph(sorted(h.edges()))  # fresh node order
    h.add_nodes_from(range(30))
    got_g = orbit_counts(g)
    got_h = orbit_counts(h)
    order = {v: i for i, v in enumerate(h)}
    np.testing.assert_array_equal(got_g, got_h[[order[perm[i]] for i in range(30)]])


def test_adjacency_input_and_self_loops():
    g = nx.gnp_random_graph(15, 0.4, seed=1)
    a = nx.to_numpy_array(g)
    a_loops = a + np.eye(15)
    np.testing.assert_array_equal(orbit_counts(a), orbit_counts(g))
    np.testing.assert_array_equal(orbit_counts(a_loops), orbit_counts(g))
    assert orbit_counts(nx.Graph()).shape == (0, NUM_ORBITS)


def test_inclusion_table():
    # Recount, by enumerating the edge subsets of each 4-node graphlet, how many spanning
    # copies of graphlet o contain a node of orbit o' at orbit o.
    expected = np.zeros((11, 11))
    for ref in REFERENCE[3:]:
        edges = list(ref.edges())
        for root in ref:
            counts = np.zeros(11)
            for k in range(3, len(edges) + 1):
                for subset in itertools.combinations(edges, k):
                    sub = nx.Graph(list(subset))
                    if sub.number_of_nodes() == 4 and nx.is_connected(sub):
                        counts[_orbits_of(sub)[root] - 4] += 1
            expected[:, ref.nodes[root]["orbit"] - 4] = counts
    np.testing.assert_array_equal(_INCLUSION, expected)


def test_large_graph_consistency():
    # Identities any correct count obeys on a larger graph: walks x-a-z split into induced
    # paths and (twice-counted) triangles, and each graphlet's total over all nodes is
    # shared among its orbits in fixed proportions (e.g. a star has 3 leaves, 1 centre).
    g = nx.gnp_random_graph(120, 0.08, seed=7)
    c = orbit_counts(g)
    deg = c[:, 0]
    a = nx.to_numpy_array(g)
    # Paths + triangles seen from an end: sum over neighbours of (deg - 1).
    np.testing.assert_array_equal(c[:, 1] + 2 * c[:, 3], a @ (deg - 1))
    tot = c.sum(0)
    assert tot[4] == tot[5] and tot[6] == 3 * tot[7] and tot[8] % 4 == 0
    assert tot[9] * 2 == tot[10] and tot[9] == tot[11] and tot[12] == tot[13]
    assert tot[14] % 4 == 0
