"""PARD's degree-based partial order: splitting a graph's nodes into ordered blocks.

PARD (Zhao, Ding and Akoglu, "Pard: Permutation-Invariant Autoregressive Diffusion for
Graph Generation", NeurIPS 2024; code at github.com/LingxiaoShawn/Pard,
``pard/parallel/transform.py``) generates a graph block by block, where the blocks come from
a partial order of the nodes that depends only on the graph structure (so it is invariant to
relabelling the nodes). This module computes that partition on the host with numpy.

Definition. Let ``n`` be the graph's node count (fixed for the whole procedure) and ``A`` the
0/1 adjacency of the graph that is still left (an edge of any bond type counts; self-loops are
ignored). The *weighted degree* ``w`` of the nodes for ``max_hops = H`` is built from
``c = 1`` (a vector of ones) by repeating ``H`` times::

    c <- c + A c          # c after h steps counts walks of length h with self-loops
    w <- w * n + c        # w starts at 0

so hop 1 carries the largest weight, hop 2 settles most of its ties, and so on. (The mixing
is exactly this arithmetic, as in the reference; since the later counts can reach ``n`` or
more they may spill into the earlier digits, so it is not strictly a lexicographic order.)
With ``H = 0`` every node has ``w = 1``.

The blocks are then *peeled*: on the remaining graph (removed nodes excluded, edges that touch
them deleted) compute ``w``, take all remaining nodes whose ``w`` is minimal as the next block,
remove them, and repeat until no node is left. For each block we record its size and the plain
1-hop degree, inside the remaining graph at the time of removal, of its lowest-index node
(with ``H >= 1`` the nodes of a block share it in practice). Finally the order is reversed:
block 0 is the last one peeled (the densest core) and generation proceeds with blocks
0, 1, 2, ...; the size and degree lists are reversed with it. ``H = 0`` gives a single block,
i.e. plain one-shot diffusion over all nodes.

Integers: ``c`` after ``h`` hops is at most ``n**h`` and ``w`` at most ``H * n**H``. While
these bounds allow (for instance ``n <= 400`` with ``H <= 4``) the walk counts go through
float32 or float64 matrix products, exact for non-negative integers below 2**24 or 2**53,
and ``w`` is int64; beyond them the computation falls back to int64 counts or to exact Python
integers (object arrays, slow).
"""

from __future__ import annotations

import numpy as np

__all__ = ["block_arrays", "block_partition", "partition_batch"]

_INT64_MAX = np.iinfo(np.int64).max


def _dtypes(n: int, max_hops: int):
    """Dtypes of the walk counts ``c`` (matmuls) and of the weights ``w``.

    ``c <= n**max_hops`` (and a degree ``<= n``), ``w <= max_hops * n**max_hops``. Floats are
    exact for non-negative integer sums below 2**24 (float32) or 2**53 (float64); the fastest
    exact choice is taken, down to Python integers (object arrays) for huge bounds.
    """
    c_max = max(n, 1) ** max(max_hops, 1)
    fits_w = max_hops * c_max < _INT64_MAX // 2
    if not fits_w:
        return object, object
    if c_max < 2**24:
        return np.float32, np.int64
    return (np.float64 if c_max < 2**53 else np.int64), np.int64


def _check_hops(max_hops: int) -> int:
    if int(max_hops) != max_hops or max_hops < 0:
        raise ValueError(f"max_hops must be a non-negative integer, got {max_hops!r}")
    return int(max_hops)


def _edges(adj: np.ndarray, node_mask: np.ndarray) -> np.ndarray:
    """Boolean adjacency: symmetric, no diagonal, only between real nodes.

    Args:
      adj: [..., N, N] any dtype, nonzero = edge (either direction).
      node_mask: [..., N] bool.

    Returns:
      [..., N, N] bool.
    """
    a = adj != 0
    a |= np.swapaxes(a, -1, -2)
    n = a.shape[-1]
    a &= ~np.eye(n, dtype=bool)
    a &= node_mask[..., :, None] & node_mask[..., None, :]
    return a


def _weighted_degree(a, remain, n_nodes, max_hops: int, dtypes):
    """Weighted degree ``w`` and 1-hop degree of every node in the remaining graphs.

    Args:
      a: [M, N, N] 0/1 adjacency of the full graphs, in the count dtype.
      remain: [M, N] bool nodes still present; the remaining graph is ``a`` restricted to them.
      n_nodes: [M] int64 node count ``n`` of each graph (the original one).
      max_hops: number of hops ``H``.
      dtypes: (count dtype, weight dtype) from :func:`_dtypes`.

    Returns:
      ``(w, deg)``: [M, N] weights in the weight dtype and [M, N] int64 degrees (both
      meaningful on remaining nodes only).
    """
    count, weight = dtypes
    m, n = remain.shape
    r = remain.astype(count)  # [M, N]

    def step(c):  # A_rem c = r * (A (r * c)), A_rem = adjacency among the remaining nodes
        return r * np.matmul(a, (r * c)[..., None])[..., 0]

    if max_hops == 0:
        return np.ones((m, n), weight), step(np.ones((m, n), count)).astype(np.int64)
    base = n_nodes.astype(weight)[:, None]  # [M, 1]
    c = np.ones((m, n), count)  # [M, N]
    w = np.zeros((m, n), weight)  # [M, N]
    deg = None
    for _ in range(max_hops):
        c = c + step(c)
        if deg is None:
            deg = (c - 1).astype(np.int64)  # after one hop c = 1 + degree
        w = w * base + c.astype(weight)
    return w, deg


def _peel(edges: np.ndarray, node_mask: np.ndarray, max_hops: int):
    """Peel a batch of graphs all at once.

    Args:
      edges: [M, N, N] bool symmetric adjacency without diagonal (see :func:`_edges`).
      node_mask: [M, N] bool real nodes.
      max_hops: number of hops ``H``.

    Returns:
      ``(peel_id, sizes, degrees, num_blocks)``: [M, N] int64 1-based peeling round of each
      node (0 on padding); [M, R] int64 size and 1-hop degree of the block removed in each
      round (R = the most rounds needed, 0 after a graph's last block); [M] int64 rounds.
    """
    m, n = node_mask.shape
    n_nodes = node_mask.sum(-1).astype(np.int64)  # [M]
    dtypes = _dtypes(int(n_nodes.max(initial=0)), max_hops)
    peel_id = np.zeros((m, n), np.int64)  # [M, N]
    sizes, degrees = [], []  # one [M] array per round
    # Work on the graphs that still have nodes left. The adjacency is never edited: removed
    # nodes are masked out through `remain`; the arrays are compacted once half the graphs
    # they hold are finished.
    idx = np.flatnonzero(n_nodes > 0)  # [M_a]
    if idx.size < m:
        edges, node_mask = edges[idx], node_mask[idx]
    a, remain = edges.astype(dtypes[0]), node_mask.copy()  # [M_a, N, N], [M_a, N]
    rnd = 0
    while idx.size:
        live = remain.any(-1)  # [M_a]
        n_live = int(live.sum())
        if n_live == 0:
            break
        if 2 * n_live < live.size:
            idx, a, remain = idx[live], a[live], remain[live]
        rnd += 1
        w, deg = _weighted_degree(a, remain, n_nodes[idx], max_hops, dtypes)  # [M_a, N]
        big = w.max() + 1  # above every weight, so removed nodes never reach the minimum
        w = np.where(remain, w, big)
        block = remain & (w == w.min(-1, keepdims=True))  # [M_a, N] (empty if finished)
        first = block.argmax(-1)  # [M_a] lowest-index node of the block
        size_r = np.zeros(m, np.int64)
        deg_r = np.zeros(m, np.int64)
        size_r[idx] = block.sum(-1)
        deg_r[idx] = np.where(size_r[idx] > 0, deg[np.arange(idx.size), first], 0)
        sizes.append(size_r)
        degrees.append(deg_r)
        rows, cols = np.nonzero(block)
        peel_id[idx[rows], cols] = rnd
        remain &= ~block
    num_blocks = peel_id.max(-1, initial=0)  # [M]
    if sizes:
        sizes_arr, degrees_arr = np.stack(sizes, -1), np.stack(degrees, -1)  # [M, R]
    else:
        sizes_arr = degrees_arr = np.zeros((m, 0), np.int64)
    return peel_id, sizes_arr, degrees_arr, num_blocks


def _reverse(peel_id, sizes, degrees, num_blocks, node_mask):
    """Turn peeling rounds into generation order (block 0 = last peeled).

    Returns:
      ``(block_id [M, N], block_size [M, B], block_degree [M, B])`` int64; block_id is -1 on
      padding and the per-block arrays are 0-padded after a graph's last block.
    """
    m, r = sizes.shape
    block_id = np.where(node_mask, num_blocks[:, None] - peel_id, -1)  # [M, N]
    j = np.arange(r)[None, :]  # [1, R]
    src = num_blocks[:, None] - 1 - j  # [M, R] round that becomes block j
    valid = src >= 0
    src = np.clip(src, 0, max(r - 1, 0))
    rows = np.arange(m)[:, None]
    block_size = np.where(valid, sizes[rows, src], 0) if r else sizes
    block_degree = np.where(valid, degrees[rows, src], 0) if r else degrees
    return block_id, block_size, block_degree


def block_partition(adj: np.ndarray, max_hops: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PARD's block partition of one graph (see the module docstring).

    Args:
      adj: [n, n] adjacency of any dtype; a nonzero entry ``adj[i, j]`` or ``adj[j, i]`` is an
        (undirected) edge of any type; the diagonal is ignored.
      max_hops: hops ``H >= 0`` of the weighted degree; 0 gives a single block.

    Returns:
      ``(block_id, block_size, block_degree)``: [n] int64 block of each node (0 = generated
      first, the last one peeled); [nb] int64 block sizes (summing to n); [nb] int64 1-hop
      degree of each block's (lowest-index) node inside the graph that remained when the block
      was peeled. An empty graph gives three empty arrays.
    """
    adj = np.asarray(adj)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adj must be square [n, n], got shape {adj.shape}")
    max_hops = _check_hops(max_hops)
    n = adj.shape[0]
    mask = np.ones((1, n), bool)
    peel_id, sizes, degrees, num_blocks = _peel(_edges(adj[None], mask), mask, max_hops)
    block_id, block_size, block_degree = _reverse(peel_id, sizes, degrees, num_blocks, mask)
    nb = int(num_blocks[0])
    return block_id[0], block_size[0, :nb], block_degree[0, :nb]


def partition_batch(adj: np.ndarray, node_mask: np.ndarray, max_hops: int) -> dict[str, np.ndarray]:
    """PARD's block partition of a batch of padded graphs, vectorized over the batch.

    Peels all graphs together (one numpy round per block, at most N rounds), with the same
    result as :func:`block_partition` applied graph by graph to the real nodes.

    Args:
      adj: [M, N, N] adjacency of any dtype (nonzero = edge in either direction; diagonal and
        entries touching padded nodes are ignored).
      node_mask: [M, N] bool, True on real nodes. Real nodes need not come first.
      max_hops: hops ``H >= 0`` of the weighted degree; 0 gives one block per graph.

    Returns:
      A dict of int32 arrays (B = the most blocks of any graph in the batch):

      - ``block_id``: [M, N] block of each node (0 = generated first), -1 on padding.
      - ``block_size``: [M, B] nodes per block, 0 after a graph's last block.
      - ``block_degree``: [M, B] 1-hop degree of each block's lowest-index node (with
        ``max_hops >= 1`` all its nodes share it) in the graph that remained when the block
        was peeled, 0 after the last block.
      - ``num_blocks``: [M] blocks per graph (0 for a graph without nodes).
      - ``perm``: [M, N] node order that sorts the real nodes by block (ties by index),
        padding nodes last (by index), so ``adj[m][perm[m]][:, perm[m]]`` is in generation
        order.
    """
    adj = np.asarray(adj)
    node_mask = np.asarray(node_mask, dtype=bool)
    if adj.ndim != 3 or adj.shape[1] != adj.shape[2]:
        raise ValueError(f"adj must be [M, N, N], got shape {adj.shape}")
    if node_mask.shape != adj.shape[:2]:
        raise ValueError(f"node_mask must be {adj.shape[:2]}, got {node_mask.shape}")
    max_hops = _check_hops(max_hops)
    n = adj.shape[1]
    peel_id, sizes, degrees, num_blocks = _peel(_edges(adj, node_mask), node_mask, max_hops)
    block_id, block_size, block_degree = _reverse(peel_id, sizes, degrees, num_blocks, node_mask)
    key = np.where(node_mask, block_id, n + 1)  # padding after every block
    perm = np.argsort(key, axis=-1, kind="stable")  # [M, N]
    return {
        "block_id": block_id.astype(np.int32),
        "block_size": block_size.astype(np.int32),
        "block_degree": block_degree.astype(np.int32),
        "num_blocks": num_blocks.astype(np.int32),
        "perm": perm.astype(np.int32),
    }


def block_arrays(
    types: np.ndarray, bonds: np.ndarray, max_hops: int
) -> tuple[dict[str, np.ndarray], dict]:
    """Sort graphs into PARD's generation order and attach their blocks.

    Args:
      types: [M, N] node classes (-1 on padding).
      bonds: [M, N, N] edge classes (0 = none).
      max_hops: hops of the weighted degree.

    Returns:
      ``(arrays, stats)``: ``types``, ``bonds`` (permuted), ``block_id`` [M, N] (-1 on
      padding), ``block_size`` and ``block_degree`` [M, B]; ``stats`` with
      ``max_blocks``, ``max_size``, ``max_degree``, ``mean_blocks`` and ``first``
      (the (size, degree) pairs of the first blocks, with their frequencies).
    """
    node_mask = types >= 0
    part = partition_batch(bonds > 0, node_mask, max_hops)
    perm = part["perm"]
    rows = np.arange(len(types))[:, None]
    t2 = types[rows, perm]
    b2 = bonds[rows[:, :, None], perm[:, :, None], perm[:, None, :]]
    bid = part["block_id"]
    bid_sorted = bid[rows, perm]
    arrays = {
        "types": t2.astype(np.int32),
        "bonds": b2.astype(np.int32),
        "block_id": bid_sorted.astype(np.int32),
        "block_size": part["block_size"].astype(np.int32),
        "block_degree": part["block_degree"].astype(np.int32),
    }
    first = np.stack([part["block_size"][:, 0], part["block_degree"][:, 0]], 1)
    pairs, counts = np.unique(first, axis=0, return_counts=True)
    stats = {
        "max_blocks": int(part["num_blocks"].max()),
        "max_size": int(part["block_size"].max()),
        "max_degree": int(part["block_degree"].max()),
        "mean_blocks": float(part["num_blocks"].mean()),
        "first": (pairs.astype(np.int32), (counts / counts.sum()).astype(np.float32)),
    }
    return arrays, stats
