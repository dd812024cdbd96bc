"""NSPDK MMD: the Neighborhood Subgraph Pairwise Distance Kernel between graph sets.

Costa and De Grave, *Fast Neighborhood Subgraph Pairwise Distance Kernel*, ICML 2010: a
graph is the bag of pairs of rooted neighbourhood subgraphs of radius ``r`` whose roots
are ``d`` apart, for ``r <= R`` and ``d <= D``; each (r, d) block of the feature vector is
normalized to unit length and the total is normalized again, so k(G, G) = 1.

GDSS (``evaluation/mmd.py::compute_nspdk_mmd``, ``evaluation/stats.py::nspdk_stats``)
evaluates it through EDeN's ``vectorize(graphs, complexity=4, discrete=True)`` with a
linear kernel on the feature vectors and reports the biased MMD²
``mean K(X, X) + mean K(Y, Y) - 2 mean K(X, Y)`` between the test graphs and the
generated graphs (node label: atom symbol; edge label: bond order, see
:func:`genmodels.metrics.molecules.mols_to_nx`). For a linear kernel this is exactly
``|| mean phi(X) - mean phi(Y) ||²``, which is what :func:`nspdk_mmd` computes, in time
linear in the number of graphs.

Feature extraction follows EDeN's discrete vectorizer (our own code):

- Edges become vertices carrying the edge label, linked to both endpoints, so distances
  double: the settings ``complexity=4`` mean radii r = 0..4 and distances d = 0..4 in
  bonds, i.e. 0, 2, ..., 8 in the expanded graph, and each root explores 8 levels.
- The rooted neighbourhood of radius r is identified (as EDeN does, instead of the paper's
  exact subgraph invariant) by the sorted multiset of ``(label, degree)`` of the expanded
  vertices at each distance 0..2r from the root, hashed level by level.
- For every ordered pair of atoms (v, u) at distance d and every radius r for which both
  have a level at depth 2r, two features are counted: the unordered pair of neighbourhood
  ids with (r, d), and the "half" feature of u's neighbourhood alone with (r, d).
- Block-wise then global L2 normalization; node/edge weights are not used (GDSS's graphs
  have none).

Deviation: EDeN hashes labels with Python's per-process salted string hash and folds
features into ``2**nbits + 1`` buckets (``nbits=16`` by default, GDSS keeps it), so its
value carries a random hash-collision component that changes with ``PYTHONHASHSEED``.
Here hashing is deterministic (labels through CRC32, tuples of ints through Python's
unsalted integer-tuple hash), intermediate neighbourhood ids keep 64 bits, and ``nbits``
folds only the final feature ids as EDeN does (``nbits=None`` keeps them unfolded, i.e.
the collision-free kernel). A feature id shared by two (r, d) blocks after folding keeps
the value of the later block, as EDeN's dictionary merge does.
"""

from __future__ import annotations

import zlib
from collections import defaultdict, deque
from collections.abc import Hashable, Iterable, Sequence

import networkx as nx
import numpy as np
from tqdm.auto import tqdm

__all__ = ["nspdk_features", "nspdk_mean_embedding", "nspdk_mmd"]

_MASK64 = (1 << 64) - 1


def _label_id(label: Hashable) -> int:
    # deterministic across processes, unlike hash(str)
    return zlib.crc32(repr(label).encode())


def _hash(t: tuple) -> int:
    # tuples of ints hash identically in every process (no string salting)
    return hash(t) & _MASK64


def _graph_features(
    g: nx.Graph, radius: int, distance: int, nbits: int | None, node_key: str, edge_key: str
) -> dict[int, float]:
    nodes = list(g.nodes())
    index = {v: k for k, v in enumerate(nodes)}
    n = len(nodes)
    # expanded graph: atoms 0..n-1, then one vertex per edge (self loops skipped as EDeN)
    labels = [_label_id(g.nodes[v].get(node_key)) for v in nodes]
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b, data in g.edges(data=True):
        if a == b:
            continue
        w = len(labels)
        labels.append(_label_id(data.get(edge_key)))
        adj.append([index[a], index[b]])
        adj[index[a]].append(w)
        adj[index[b]].append(w)
    vlabel = [_hash((lab, len(nb))) for lab, nb in zip(labels, adj)]
    max_depth = 2 * max(radius, distance)

    neigh: list[list[int]] = []  # per atom: id of its neighbourhood of depth 0, 1, 2, ...
    at_dist: list[dict[int, list[int]]] = []  # per atom: atoms at each even depth
    for root in range(n):
        dist = {root: 0}
        levels: list[list[int]] = [[root]]
        q = deque([root])
        while q:
            x = q.popleft()
            dx = dist[x] + 1
            if dx > max_depth:
                continue
            for y in adj[x]:
                if y not in dist:
                    dist[y] = dx
                    if dx == len(levels):
                        levels.append([])
                    levels[dx].append(y)
                    q.append(y)
        ids, run = [], 0
        for k, lev in enumerate(levels):
            run = _hash((run, k, _hash(tuple(sorted(vlabel[y] for y in lev)))))
            ids.append(run)
        neigh.append(ids)
        at_dist.append({k: lev for k, lev in enumerate(levels) if k % 2 == 0})

    blocks: dict[tuple[int, int], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    radii = range(0, 2 * radius + 1, 2)
    for v in range(n):
        hv = neigh[v]
        for d in range(0, 2 * distance + 1, 2):
            for u in at_dist[v].get(d, ()):
                hu = neigh[u]
                for r in radii:
                    if r >= len(hv) or r >= len(hu):
                        break
                    a, b = (hv[r], hu[r]) if hv[r] < hu[r] else (hu[r], hv[r])
                    blk = blocks[(r, d)]
                    blk[_hash((a, b, r, d))] += 1.0
                    blk[_hash((hu[r], r, d, -1))] += 1.0  # the "half" (context) feature
    out: dict[int, float] = {}
    mask = None if nbits is None else (1 << nbits) - 1
    for key in sorted(blocks):
        blk = blocks[key]
        if mask is not None:
            # EDeN folds the ids before counting, so colliding counts add up pre-normalization
            folded: dict[int, float] = defaultdict(float)
            for f, c in blk.items():
                folded[(f & mask) + 1] += c
            blk = folded
        norm = float(np.sqrt(sum(c * c for c in blk.values())))
        out.update({f: c / norm for f, c in blk.items()})
    total = float(np.sqrt(sum(c * c for c in out.values())))
    return {f: c / total for f, c in out.items()} if total > 0 else out


def nspdk_features(
    graphs: Iterable[nx.Graph],
    radius: int = 4,
    distance: int = 4,
    nbits: int | None = 16,
    node_key: str = "label",
    edge_key: str = "label",
    progress: str | None = None,
) -> list[dict[int, float]]:
    """Unit-norm sparse NSPDK feature vectors of labelled graphs (EDeN ``vectorize``).

    Args:
      graphs: undirected graphs with at least one node; node attribute ``node_key`` and
        edge attribute ``edge_key`` are the discrete labels (missing ones count as
        ``None``).
      radius: largest neighbourhood radius R (GDSS: EDeN ``complexity=4``, so 4).
      distance: largest root distance D (4 in GDSS).
      nbits: fold feature ids into ``2**nbits + 1`` buckets (EDeN default 16, kept by
        GDSS); ``None`` keeps exact ids.
      node_key, edge_key: attribute names of the labels.
      progress: description of a tqdm bar on stderr (``None``: no bar).

    Returns:
      One ``{feature id: value}`` dict per graph, of unit Euclidean norm.

    Raises:
      ValueError: a graph with no node (EDeN raises too; GDSS drops empty generated graphs
        before calling it).
    """
    out = []
    for k, g in enumerate(tqdm(graphs, desc=progress, unit="graph", disable=progress is None)):
        if g.number_of_nodes() == 0:
            raise ValueError(f"graph {k} has no node; drop empty graphs first")
        out.append(_graph_features(g, radius, distance, nbits, node_key, edge_key))
    return out


def nspdk_mean_embedding(graphs: Iterable[nx.Graph], **kwargs) -> dict[int, float]:
    """Mean NSPDK feature vector of a set of graphs (keyword arguments as :func:`nspdk_features`).

    Precompute it once for a fixed reference set (e.g. a test split) and pass it to
    :func:`nspdk_mmd`.

    Raises:
      ValueError: no graph, or an empty graph.
    """
    feats = nspdk_features(graphs, **kwargs)
    if not feats:
        raise ValueError("no graphs")
    acc: dict[int, float] = defaultdict(float)
    for f in feats:
        for key, val in f.items():
            acc[key] += val
    return {key: val / len(feats) for key, val in acc.items()}


def nspdk_mmd(
    ref: Sequence[nx.Graph] | dict[int, float],
    gen: Sequence[nx.Graph] | dict[int, float],
    **kwargs,
) -> float:
    """Biased MMD² with the linear NSPDK kernel (GDSS ``compute_nspdk_mmd``).

    ``mean K(X, X) + mean K(Y, Y) - 2 mean K(X, Y) = || mean phi(X) - mean phi(Y) ||²``
    for the linear kernel on unit-norm feature vectors; it lies in [0, 4] and is 0 for
    identical sets.

    Args:
      ref: reference graphs (GDSS: the test molecules) or their
        :func:`nspdk_mean_embedding`.
      gen: generated graphs (empty graphs are dropped, as GDSS does) or their mean
        embedding.
      **kwargs: feature settings (see :func:`nspdk_features`); must match any
        precomputed embedding.

    Returns:
      The MMD² as a float.

    Raises:
      ValueError: a set with no non-empty graph.
    """

    def emb(x):
        if isinstance(x, dict):
            return x
        graphs = [g for g in x if g.number_of_nodes() > 0]
        return nspdk_mean_embedding(graphs, **kwargs)

    mx, my = emb(ref), emb(gen)
    keys = mx.keys() | my.keys()
    return float(sum((mx.get(k, 0.0) - my.get(k, 0.0)) ** 2 for k in keys))
