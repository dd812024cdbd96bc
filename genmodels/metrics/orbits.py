"""Per-node graphlet orbit counts for graphlets of 2-4 nodes (ORCA's 15 node orbits).

GraphRNN and GDSS compute their orbit MMD from the output of ORCA (Hocevar & Demsar,
"A combinatorial approach to graphlet counting", Bioinformatics 2014) run as
``orca node 4``: for every node, how many *induced* connected subgraphs of 2-4 nodes touch
it, split by the node's orbit (its automorphism class inside the graphlet). This module
computes the same 15 numbers with matrix algebra instead of calling the C++ binary.

Orbit table (ORCA / Przulj 2007 numbering, ``deg`` = degree inside the graphlet):

====  ===========================  ===========================================
orbit graphlet (nodes, edges)      the node's position
====  ===========================  ===========================================
0     edge (2, 1)                  either end (orbit 0 = degree)
1     path P3 (3, 2)               end (deg 1)
2     path P3                      middle (deg 2)
3     triangle (3, 3)              any node
4     path P4 (4, 3)               end (deg 1)
5     path P4                      inner (deg 2)
6     star K1,3 (4, 3)             leaf (deg 1)
7     star K1,3                    centre (deg 3)
8     cycle C4 (4, 4)              any node
9     paw: triangle + pendant (4,4) the pendant (deg 1)
10    paw                          triangle node of deg 2
11    paw                          triangle node of deg 3 (holds the pendant)
12    diamond: K4 minus edge (4,5) deg-2 node (an end of the missing edge)
13    diamond                      deg-3 node
14    K4 (4, 6)                    any node
====  ===========================  ===========================================

Method. Orbits 0-3 have closed forms in the adjacency matrix. For the 4-node orbits we
first count *non-induced* rooted copies S[o] of each graphlet (subgraphs, not necessarily
induced, with the node at orbit o), which are simple products of A, A^2 and degrees, and
then undo the overlaps: an induced graphlet of orbit o' contains ``_INCLUSION[o, o']``
spanning copies of graphlet o rooted at the same node, so S = M @ I with M upper
triangular and unit diagonal (ORCA likewise solves a triangular system of orbit
equations; ours is set up from non-induced counts instead). Cost is a few sparse matrix
products plus a loop over nodes on their dense neighbourhood blocks, about
O(sum_x deg(x)^3); a 100-node graph takes ~10 ms.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from scipy import sparse

NUM_ORBITS = 15

# _INCLUSION[i, j] (orbits 4+i, 4+j): number of spanning subgraphs isomorphic to the
# graphlet of orbit 4+i, rooted at that orbit, inside the graphlet of orbit 4+j seen from
# a node of orbit 4+j. Worked out by listing the spanning trees / one- and two-edge
# deletions of each graphlet (e.g. K4 has 12 spanning P4 paths, each node is an end of 6);
# tests/metrics/test_orbits.py recomputes it by brute force.
# fmt: off
_INCLUSION = np.array([
    #  4  5  6  7  8  9 10 11 12 13 14   <- induced orbit
    [1, 0, 0, 0, 2, 2, 1, 0, 4, 2, 6],  # 4  P4 end
    [0, 1, 0, 0, 2, 0, 1, 2, 2, 4, 6],  # 5  P4 inner
    [0, 0, 1, 0, 0, 1, 1, 0, 2, 1, 3],  # 6  star leaf
    [0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1],  # 7  star centre
    [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 3],  # 8  C4
    [0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 3],  # 9  paw pendant
    [0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 6],  # 10 paw triangle deg 2
    [0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 3],  # 11 paw triangle deg 3
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3],  # 12 diamond deg 2
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3],  # 13 diamond deg 3
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # 14 K4
], dtype=np.float64)
# fmt: on


def _comb2(x: np.ndarray) -> np.ndarray:
    return x * (x - 1.0) / 2.0


def _adjacency(graph: nx.Graph | np.ndarray) -> np.ndarray:
    """Symmetric 0/1 float64 adjacency with an empty diagonal (self loops ignored)."""
    if isinstance(graph, nx.Graph):
        a = nx.to_numpy_array(graph, weight=None, dtype=np.float64)
    else:
        a = np.asarray(graph, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"adjacency must be a square matrix, got shape {a.shape}")
    a = ((a + a.T) > 0).astype(np.float64)
    np.fill_diagonal(a, 0.0)
    return a


def orbit_counts(graph: nx.Graph | np.ndarray) -> np.ndarray:
    """Per-node counts of ORCA's 15 node orbits (graphlets of 2-4 nodes, induced).

    Equivalent to the node-orbit table written by ``orca node 4`` (Hocevar & Demsar
    2014), which GraphRNN/GDSS use for the orbit MMD. The orbit numbering is in the
    module docstring. Directed or multi-edges are merged into simple undirected edges
    and self loops are ignored.

    Args:
      graph: a networkx graph (rows follow ``graph.nodes()`` order) or a square
        adjacency matrix [n, n].

    Returns:
      int64 array [n, 15]; entry [x, o] is the number of induced graphlets in which node
      x sits at orbit o.
    """
    dense = _adjacency(graph)  # [n, n]
    n = dense.shape[0]
    out = np.zeros((n, NUM_ORBITS), dtype=np.int64)
    if n == 0:
        return out
    # Sparse products cost O(sum of deg^2) instead of O(n^3); graphs here are sparse.
    a = sparse.csr_array(dense)

    deg = dense.sum(1)  # [n]
    common = a @ a  # [n, n] sparse, common neighbours of every pair (diagonal = deg)
    tri_edge = a.multiply(common).tocsr()  # [n, n] triangles through each edge
    tri_edge2 = tri_edge.multiply(tri_edge).sum(1)  # [n]
    tri = tri_edge.sum(1) / 2.0  # [n] triangles at each node
    nbr_deg = a @ deg  # [n] = row sums of common

    counts = np.zeros((n, NUM_ORBITS), dtype=np.float64)
    counts[:, 0] = deg
    # Walks x-a-z (z != x) minus those closing a triangle (each triangle seen twice).
    counts[:, 1] = nbr_deg - deg - 2.0 * tri
    counts[:, 2] = _comb2(deg) - tri  # pairs of non-adjacent neighbours
    counts[:, 3] = tri

    # Non-induced rooted copies of each 4-node graphlet (index o - 4).
    nbr_deg1 = nbr_deg - deg  # [n] sum of (deg - 1) over neighbours
    s = np.zeros((n, 11), dtype=np.float64)
    s[:, 0] = a @ nbr_deg1 - deg * (deg - 1.0) - 2.0 * tri  # x-a-b-c
    s[:, 1] = (deg - 1.0) * nbr_deg1 - 2.0 * tri  # a-x-b-c
    s[:, 2] = a @ _comb2(deg - 1.0)  # x is a leaf of a star centred at a neighbour
    s[:, 3] = deg * (deg - 1.0) * (deg - 2.0) / 6.0  # x is a star centre
    # 4-cycles: sum over b != x of C(common[x, b], 2), the diagonal (deg) taken out.
    s[:, 4] = 0.5 * (common.multiply(common).sum(1) - deg**2 - (nbr_deg - deg))
    s[:, 5] = a @ tri - 2.0 * tri  # x ~ a, a in a triangle not containing x
    s[:, 6] = tri_edge @ (deg - 2.0)  # x in triangle x-a-b, pendant on a
    s[:, 7] = tri * (deg - 2.0)  # x in a triangle, pendant on x
    # Diamond, x of degree 2: an edge a-b inside N(x) plus another common neighbour of a, b.
    extra = (tri_edge - a).tocsr()  # [n, n] common neighbours of a-b besides x
    s[:, 8] = 0.5 * (a @ extra).multiply(a).sum(1)
    s[:, 9] = 0.5 * (tri_edge2 - 2.0 * tri)  # x-a edge with two common neighbours
    # K4 at x = triangles inside N(x); neighbourhoods are small, so work on dense blocks.
    indptr, indices = a.indptr, a.indices
    for x in range(n):
        nbrs = indices[indptr[x] : indptr[x + 1]]
        if nbrs.size >= 3:
            sub = dense[np.ix_(nbrs, nbrs)]
            s[x, 10] = ((sub @ sub) * sub).sum() / 6.0

    counts[:, 4:] = np.linalg.solve(_INCLUSION, s.T).T
    np.rint(counts, out=counts)
    out[:] = counts.astype(np.int64)
    return out
