"""Generic (unattributed) graphs as dense padded arrays: the GDSS domain adapter.

A batch of ``networkx`` graphs becomes the state ``{"x": [B, N, F], "adj": [B, N, N]}``
and the context ``{"node_mask": [B, N], "masks": graph_masks(node_mask)}`` with
``N = max_nodes`` padding (Jo, Lee, Hwang, *Score-based Generative Modeling of Graphs
via the System of SDEs*, ICML 2022; reference code harryjo97/GDSS ``utils/graph_utils.py``):

- node features are the one-hot node degree with ``max_feat_num`` classes (GDSS
  ``init_features(init='deg')``; the GDSS configs use ``max_feat_num`` 10 for
  community_small, 17 for ego_small, 10 for ENZYMES and 5 for grid);
- generated adjacencies are quantized at 0.5, then self loops and isolated nodes are
  dropped (GDSS ``quantize`` + ``adjs_to_graphs``);
- node counts for sampling are drawn from the training graphs (GDSS ``init_flags``).

Node order is the graph's own iteration order (``G.nodes``), as GDSS's
``graphs_to_tensor`` uses it.

One deliberate difference: GDSS derives node flags from non-zero adjacency rows, so an
isolated node of a *training* graph counts as padding there, while here every node of
the graph is a real node (mask 1, degree-0 one-hot). None of the four GDSS datasets has
an isolated node, so the two agree on them.

Sample files: :func:`write_graph6` / :func:`read_graph6`, one graph a line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from genmodels.core.masks import apply_masks, get_mask, graph_masks
from genmodels.core.pairs import dense_to_pairs, pairs_to_dense
from genmodels.core.types import Array, Context, State
from genmodels.domains.files import read_text
from genmodels.errors import DataError

__all__ = [
    "GraphDomain",
    "corrupt_graph",
    "degree_one_hot",
    "dense_to_pairs",
    "graphs_to_adjacency",
    "node_masks_from_counts",
    "pairs_to_dense",
    "quantize_adj",
    "read_graph6",
    "symmetric_noise",
    "symmetrize_upper",
    "write_graph6",
]


def quantize_adj(adj, thr: float = 0.5):
    """Threshold a (generated) adjacency to {0, 1}, as GDSS ``quantize``.

    Entries ``< thr`` become 0, every other entry becomes 1. This keeps GDSS's exact rule,
    so a non-finite entry (NaN from a diverged sample) becomes an edge, as it does there.

    Args:
      adj: [..., N, N] numpy or JAX array.
      thr: threshold (GDSS uses 0.5).

    Returns:
      An array of the same type, shape and dtype with entries in {0, 1}.
    """
    if isinstance(adj, jax.Array):
        return jnp.where(adj < thr, 0.0, 1.0).astype(adj.dtype)
    adj = np.asarray(adj)
    return np.where(adj < thr, 0, 1).astype(adj.dtype)


def symmetrize_upper(adj: Array) -> Array:
    """Mirror the strict upper triangle onto the lower one; the diagonal becomes 0.

    Taking the upper triangle of ``adj + z`` for a symmetric ``adj`` and i.i.d. Gaussian
    ``z`` gives ``adj + triu(z, 1) + triu(z, 1)^T``: exactly GDSS's symmetric noise
    (``gen_noise(sym=True)``), so samplers can draw plain i.i.d. noise for ``adj`` and
    leave the symmetry to this hook.

    Args:
      adj: [..., N, N].

    Returns:
      [..., N, N] symmetric with a zero diagonal.
    """
    upper = jnp.triu(adj, k=1)  # [..., N, N]
    return upper + jnp.swapaxes(upper, -1, -2)


def graphs_to_adjacency(graphs: Sequence[nx.Graph], max_nodes: int) -> np.ndarray:
    """Dense zero-padded 0/1 adjacency matrices in each graph's node order.

    Args:
      graphs: undirected simple graphs with 1..max_nodes nodes (self loops are ignored,
        edge weights are ignored).
      max_nodes: padded size N.

    Returns:
      [B, N, N] float32 numpy array, symmetric with a zero diagonal.

    Raises:
      ValueError: an empty list, a graph with no nodes or more than ``max_nodes`` nodes,
        or a directed graph.
    """
    if len(graphs) == 0:
        raise ValueError("no graphs to encode (empty list)")
    out = np.zeros((len(graphs), max_nodes, max_nodes), np.float32)
    for i, g in enumerate(graphs):
        if not isinstance(g, nx.Graph):
            raise ValueError(f"graph {i} is a {type(g).__name__}, not a networkx.Graph")
        if g.is_directed():
            raise ValueError(f"graph {i} is directed; GDSS graphs are undirected")
        n = g.number_of_nodes()
        if n == 0:
            raise ValueError(f"graph {i} has no nodes")
        if n > max_nodes:
            raise ValueError(f"graph {i} has {n} nodes, more than max_nodes={max_nodes}")
        a = nx.to_numpy_array(g, nodelist=list(g.nodes), dtype=np.float32, weight=None)
        a = (a != 0).astype(np.float32)
        np.fill_diagonal(a, 0.0)
        out[i, :n, :n] = a
    return out


def degree_one_hot(
    adj: np.ndarray, node_mask: np.ndarray, num_classes: int, clip: bool = False
) -> np.ndarray:
    """One-hot node degrees, zero on padding (GDSS ``init_features('deg')``).

    Args:
      adj: [B, N, N] 0/1 adjacency.
      node_mask: [B, N] with 1 on real nodes.
      num_classes: number of one-hot classes (GDSS ``max_feat_num``); degrees must be
        below it unless ``clip``.
      clip: degrees ``>= num_classes - 1`` share the last class (a user's graphs, whose
        degrees the recipe's ``max_feat_num`` need not cover).

    Returns:
      [B, N, num_classes] float32.

    Raises:
      ValueError: a degree >= ``num_classes`` without ``clip`` (GDSS raises
        "max_feat_num mismatch").
    """
    deg = np.rint(adj.sum(-1)).astype(np.int64)  # [B, N]
    if clip:
        deg = np.minimum(deg, num_classes - 1)
    if deg.size and deg.max() >= num_classes:
        raise ValueError(
            f"a node has degree {deg.max()} but max_feat_num={num_classes}: the degree "
            "one-hot needs max_feat_num > max degree"
        )
    onehot = np.eye(num_classes, dtype=np.float32)[deg]  # [B, N, F]
    return onehot * node_mask[..., None].astype(np.float32)


def node_masks_from_counts(counts: Array, max_nodes: int) -> Array:
    """Node masks whose first ``counts[b]`` entries are 1.

    Args:
      counts: [B] integer node counts.
      max_nodes: padded size N.

    Returns:
      [B, N] float32.
    """
    return (jnp.arange(max_nodes)[None, :] < jnp.asarray(counts)[:, None]).astype(jnp.float32)


@dataclass(frozen=True)
class GraphDomain:
    """Adapter between ``networkx`` graphs and the padded dense GDSS state.

    Args:
      max_nodes: padded node count N (GDSS ``max_node_num``: community_small 20,
        ego_small 18, ENZYMES 125, grid 361).
      max_feat_num: degree one-hot classes F (GDSS ``max_feat_num``: 10, 17, 10, 5).
      empty_as_single_node: ``decode`` returns a one-node graph where every node was
        dropped, as GDSS ``adjs_to_graphs`` does (so metrics see the same graphs as the
        reference); ``False`` returns an empty graph instead.
      clip_degree: degrees ``>= max_feat_num - 1`` share the last feature class (a
        user's graphs); ``False``: such a degree is an error, as in GDSS.
    """

    max_nodes: int
    max_feat_num: int
    empty_as_single_node: bool = True
    clip_degree: bool = False

    def encode(self, graphs: Sequence[nx.Graph]) -> tuple[State, dict]:
        """Pad a list of graphs into a batch.

        Args:
          graphs: B undirected graphs with 1..max_nodes nodes and degrees below
            ``max_feat_num``.

        Returns:
          ``(state, ctx)``: state ``{"x": [B, N, F], "adj": [B, N, N]}`` float32 (degree
          one-hot features, symmetric 0/1 adjacency, zero diagonal, zero padding); ctx
          ``{"node_mask": [B, N], "masks": graph_masks(node_mask)}``.

        Raises:
          ValueError: empty list, empty graph, too many nodes, or too large a degree.
        """
        adj = graphs_to_adjacency(graphs, self.max_nodes)  # [B, N, N]
        counts = np.array([g.number_of_nodes() for g in graphs])
        node_mask = (np.arange(self.max_nodes)[None, :] < counts[:, None]).astype(np.float32)
        x = degree_one_hot(adj, node_mask, self.max_feat_num, self.clip_degree)  # [B, N, F]
        node_mask_j = jnp.asarray(node_mask)
        state = {"x": jnp.asarray(x), "adj": jnp.asarray(adj)}
        return state, {"node_mask": node_mask_j, "masks": graph_masks(node_mask_j)}

    def decode(self, state: State, ctx: Context | None = None) -> list[nx.Graph]:
        """Turn a (generated) batch back into graphs, as GDSS ``quantize`` + ``adjs_to_graphs``.

        The adjacency is masked by ``ctx`` (padding dropped), thresholded at 0.5, and self
        loops and isolated nodes are removed. The remaining nodes are relabelled 0..k-1 in
        their original order. Node features are not used (GDSS ignores them for generic
        graphs).

        Args:
          state: ``{"adj": [B, N, N], ...}``.
          ctx: context with ``masks``/``node_mask`` or ``None`` (no padding).

        Returns:
          B ``networkx.Graph`` objects; a graph with no edge left is a single node (or
          empty when ``empty_as_single_node=False``).
        """
        adj = state["adj"]
        if ctx is not None and get_mask(ctx, "adj") is not None:
            adj = apply_masks({"adj": adj}, ctx)["adj"]
        elif ctx is not None and ctx.get("node_mask") is not None:
            adj = apply_masks({"adj": adj}, {"masks": graph_masks(ctx["node_mask"])})["adj"]
        adj = quantize_adj(np.asarray(adj, dtype=np.float32))  # [B, N, N]
        graphs = []
        for a in adj:
            g = nx.from_numpy_array(a)
            g.remove_edges_from(list(nx.selfloop_edges(g)))
            g.remove_nodes_from(list(nx.isolates(g)))
            g = nx.convert_node_labels_to_integers(g)
            for _, _, d in g.edges(data=True):
                d.clear()  # from_numpy_array stores the 1.0 as a 'weight'
            if g.number_of_nodes() == 0 and self.empty_as_single_node:
                g.add_node(0)
            graphs.append(g)
        return graphs

    def constrain(self, state: State, ctx: Context) -> State:
        """Project onto valid padded graph states; jit-compatible.

        ``adj`` keeps its strict upper triangle, mirrored (symmetric, zero diagonal; see
        :func:`symmetrize_upper` for why this equals GDSS's symmetric noise), then every
        leaf with a mask in ``ctx["masks"]`` is zeroed on padding. Other leaves pass through.

        Args:
          state: ``{"x": [B, N, F], "adj": [B, N, N]}``.
          ctx: context, normally with ``masks`` from :meth:`encode` or the node-count sampler.

        Returns:
          The constrained state (same keys, shapes, dtypes).
        """
        out = dict(state)
        if "adj" in out:
            out["adj"] = symmetrize_upper(out["adj"])
        return apply_masks(out, ctx)

    def node_count_sampler(
        self, train_graphs: Iterable[nx.Graph]
    ) -> Callable[[Array, int], dict[str, Array]]:
        """A sampler of contexts whose node counts follow the training graphs (GDSS ``init_flags``).

        GDSS draws training graphs uniformly with replacement and uses their node flags;
        drawing a node count uniformly from the list of training node counts is the same
        distribution.

        Args:
          train_graphs: the training graphs (each with 1..max_nodes nodes).

        Returns:
          ``sample(key, batch_size) -> {"node_mask": [B, N], "masks": ...}``; pure and
          jit-compatible with ``batch_size`` static.

        Raises:
          ValueError: no graphs, an empty graph, or a graph larger than ``max_nodes``.
        """
        counts = [g.number_of_nodes() for g in train_graphs]
        return count_sampler(counts, self.max_nodes)


def count_sampler(counts: Iterable[int], max_nodes: int) -> Callable[[Array, int], dict]:
    """``sample(key, batch_size) -> {"node_mask": [B, N], "masks": ...}`` drawing each
    node count uniformly from ``counts`` (GDSS ``init_flags``: a uniform training graph's
    flags); pure and jit-compatible with ``batch_size`` static.

    Raises:
      ValueError: no counts, or a count outside ``1..max_nodes``.
    """
    c = np.asarray(list(counts), dtype=np.int32)
    if c.size == 0:
        raise ValueError("node_count_sampler needs at least one training example")
    if c.min() < 1 or c.max() > max_nodes:
        raise ValueError(f"training sizes span {c.min()}..{c.max()}, outside 1..{max_nodes}")

    def sample(key: Array, batch_size: int) -> dict[str, Array]:
        # the counts stay a host array in this closure: a jnp array made while the first
        # caller is being traced would be that trace's value, leaked into the next
        idx = jax.random.randint(key, (batch_size,), 0, c.shape[0])
        node_mask = node_masks_from_counts(jnp.asarray(c)[idx], max_nodes)  # [B, N]
        return {"node_mask": node_mask, "masks": graph_masks(node_mask)}

    return sample


def write_graph6(graphs: Iterable[nx.Graph | None], path: str | Path) -> Path:
    """Write graphs to a graph6 file, one graph a line, without the ``>>graph6<<`` header.

    Nodes are written in each graph's iteration order (graph6 stores structure only: node
    labels and attributes are lost). ``None`` (a sample that failed) is written as an
    empty line; a graph with zero nodes is written as ``?``, the graph6 code of the empty
    graph.

    Args:
      graphs: undirected simple graphs, or ``None`` for failures.
      path: output file.

    Returns:
      ``path`` as a ``Path``.

    Raises:
      ValueError: a directed graph, a multigraph or a graph with self loops (graph6
        cannot store them, and dropping them silently would change the sample).
    """
    lines = []
    for i, g in enumerate(graphs):
        if g is None:
            lines.append(b"")
            continue
        if g.is_directed() or g.is_multigraph():
            raise ValueError(f"graph {i}: graph6 stores undirected simple graphs only")
        if nx.number_of_selfloops(g):
            raise ValueError(f"graph {i} has self loops, which graph6 cannot store")
        lines.append(nx.to_graph6_bytes(g, header=False).strip())
    path = Path(path)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def read_graph6(path: str | Path) -> list[nx.Graph | None]:
    """Read a file written by :func:`write_graph6` (or any one-graph-a-line graph6 file).

    Args:
      path: graph6 file; an optional ``>>graph6<<`` header on a line is accepted.

    Returns:
      One entry a line: a ``networkx.Graph`` with nodes 0..n-1, or ``None`` for an empty
      line (a failed sample). A trailing newline does not add an entry.

    Raises:
      MissingFileError: no such file.
      DataError: an empty or binary file, or a line that is not valid graph6 (the message
        gives the first bad line's number and text).
    """
    text = read_text(path, "one graph6 string a line")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    out: list[nx.Graph | None] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            out.append(None)
            continue
        try:
            out.append(nx.from_graph6_bytes(line.encode()))
        except (nx.NetworkXError, ValueError, IndexError) as e:
            hint = "; is it a sample file of this recipe?" if all(g is None for g in out) else ""
            raise DataError(
                f"{path}:{lineno}: not a graph6 line ({line[:40]!r}: {e}); "
                f"expected one graph6 string a line{hint}"
            ) from None
    return out


def symmetric_noise(key: Array, shape: tuple[int, ...]) -> Array:
    """Symmetric standard normal noise with a zero diagonal (GDSS ``gen_noise(sym=True)``).

    Args:
      key: PRNG key.
      shape: ``(..., N, N)``.

    Returns:
      ``z + z^T`` with ``z`` the strict upper triangle of a standard normal draw.
    """
    z = jnp.triu(jax.random.normal(key, shape), 1)
    return z + jnp.swapaxes(z, -1, -2)


def corrupt_graph(processes, key: Array, x0: State, t: Array, ctx: Context):
    """Each leaf's forward kernel at the shared noise levels ``t`` [B], on real entries.

    ``x`` is corrupted under its node mask; ``adj`` under the mask of the strict upper
    triangle of real node pairs, then mirrored, so its noise is symmetric with a zero
    diagonal (GDSS ``gen_noise(sym=True)``) and the kernel's dimension is the number of
    free entries ``n (n - 1) / 2``. ``aux`` arrays shaped like ``adj`` (noise, a flow's
    target ``eps - x_0``) are mirrored the same way.

    Args:
      processes: ``{"x": process, "adj": process}`` (``corrupt(key, x0, t, mask)``).
      key: PRNG key.
      x0: ``{"x": [B, N, F], "adj": [B, N, N]}`` clean state (symmetric ``adj``).
      t: [B] noise levels (PFGM++ sigma or flow time).
      ctx: ``{"masks": graph_masks(node_mask), ...}``.

    Returns:
      ``(xt, aux)``: the corrupted state (padding zero) and each leaf's ``aux``.
    """
    masks = ctx["masks"]
    kx, ka = jax.random.split(key)
    xt_x, aux_x = processes["x"].corrupt(kx, x0["x"], t, mask=masks["x"])
    upper = jnp.triu(masks["adj"], 1)  # [B, N, N]
    xt_a, aux_a = processes["adj"].corrupt(ka, x0["adj"], t, mask=upper)
    aux_a = {k: symmetrize_upper(v) if jnp.shape(v) == xt_a.shape else v for k, v in aux_a.items()}
    return {"x": xt_x, "adj": symmetrize_upper(xt_a)}, {"x": aux_x, "adj": aux_a}
