"""Generic graphs: the GDSS benchmarks (community_small, ego_small, grid, ENZYMES) and a
user's own graphs (:func:`load_user_graphs`; ``--dataset PATH``).

The graphs come as the pickles of the GDSS repository (``data/<name>.pkl``; Jo, Lee,
Hwang, ICML 2022), each a ``list`` of ``networkx.Graph``. Sizes (see
``$GENMODELS_DATA_DIR/graphs/SOURCES.md``): community_small 100 graphs with 12-20 nodes,
ego_small 200 with 4-17, grid 100 with 110-361, ENZYMES 587 with 10-125.

Security: unpickling runs code chosen by whoever wrote the file, so these pickles are
treated as trusted data only. :func:`load_graphs` reads a file only after
:func:`genmodels.datasets.registry.fetch` has checked its pinned sha256. A user's graphs
are never unpickled: graph6 (``.g6``), sparse6 (``.s6``), GraphML (``.graphml``) or a
folder of edge-list files (:func:`read_user_graphs`).
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import networkx as nx
import numpy as np
from tqdm.auto import tqdm

from genmodels.datasets.registry import DatasetError, fetch
from genmodels.datasets.user import UserData, is_user_path, split_indices, user_data_kind
from genmodels.domains.graphs import graphs_to_adjacency
from genmodels.errors import DataError, MissingFileError

__all__ = [
    "GRAPH_DATASETS",
    "graph_splits",
    "load_graphs",
    "load_user_graphs",
    "read_user_graphs",
    "train_test_split",
    "typed_graphs",
]

#: The generic-graph datasets of GDSS that :func:`load_graphs` knows.
GRAPH_DATASETS: tuple[str, ...] = ("community_small", "ego_small", "grid", "ENZYMES")

T = TypeVar("T")


def load_graphs(name: str) -> list[nx.Graph]:
    """Load one GDSS generic-graph dataset, in the file's order.

    Each graph is copied with its nodes relabelled 0..n-1 in the stored iteration order
    (ego_small stores Citeseer ids, ENZYMES 1-based numpy ints); node, edge and graph
    attributes are kept (ENZYMES nodes have ``label``, ``G.graph["label"]`` is the class).

    Args:
      name: one of :data:`GRAPH_DATASETS`.

    Returns:
      The list of graphs (its order defines the split, see :func:`train_test_split`).

    Raises:
      DatasetError: unknown name, missing or corrupt file (checksum), unreadable
        pickle, or contents that are not a non-empty list of non-empty graphs.
    """
    if name not in GRAPH_DATASETS:
        raise DatasetError(
            f"unknown graph dataset {name!r}; choose one of {', '.join(GRAPH_DATASETS)}"
        )
    # fetch verifies the pinned sha256 before anything is unpickled.
    path = fetch(name, f"graphs/{name}.pkl")
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f)  # noqa: S301 - trusted, checksum-verified file
    except Exception as e:  # any unpickling failure means the file is unusable
        raise DatasetError(f"{name}: could not unpickle {path}: {e}") from e
    if not isinstance(obj, list | tuple):
        raise DatasetError(f"{name}: {path} holds a {type(obj).__name__}, not a list of graphs")
    if len(obj) == 0:
        raise DatasetError(f"{name}: {path} holds an empty graph list")
    graphs = []
    for i, g in enumerate(obj):
        if not isinstance(g, nx.Graph):
            raise DatasetError(f"{name}: item {i} of {path} is a {type(g).__name__}, not a graph")
        if g.number_of_nodes() == 0:
            raise DatasetError(f"{name}: graph {i} of {path} has no nodes")
        # A plain nx.Graph copy also detaches subgraph views pickled by older networkx.
        h = nx.convert_node_labels_to_integers(nx.Graph(g), ordering="default")
        graphs.append(h)
    return graphs


def train_test_split(graphs: Sequence[T], test_frac: float = 0.2) -> tuple[list[T], list[T]]:
    """Split as the GDSS reference does: no shuffle, the test set is the head of the list.

    GDSS ``utils/data_loader.py`` takes ``test_size = int(test_split * len(graphs))`` and
    returns ``graphs[test_size:]`` as train and ``graphs[:test_size]`` as test, with
    ``test_split = 0.2`` in every generic-graph config.

    Args:
      graphs: the dataset in file order.
      test_frac: fraction in [0, 1) for the test set (rounded down, as ``int()``).

    Returns:
      ``(train, test)`` lists.

    Raises:
      ValueError: empty input or ``test_frac`` outside [0, 1).
    """
    if len(graphs) == 0:
        raise ValueError("cannot split an empty graph list")
    if not 0.0 <= test_frac < 1.0:
        raise ValueError(f"test_frac must be in [0, 1), got {test_frac}")
    test_size = int(test_frac * len(graphs))
    return list(graphs[test_size:]), list(graphs[:test_size])


def typed_graphs(graphs: Sequence[nx.Graph]) -> tuple[np.ndarray, np.ndarray]:
    """Generic graphs as one node class and 0/1 edges, padded to the largest (PARD's input).

    Args:
      graphs: M graphs with nodes 0..n-1.

    Returns:
      ``(types [M, N] int32 (0: a node, -1: padding), adj [M, N, N] int32 0/1)``, N the
      largest node count.
    """
    counts = np.array([g.number_of_nodes() for g in graphs])
    n = int(counts.max())
    types = np.where(np.arange(n)[None, :] < counts[:, None], 0, -1).astype(np.int32)
    return types, graphs_to_adjacency(graphs, n).astype(np.int32)


def graph_splits(
    dataset: str, data: UserData = UserData()
) -> tuple[list[nx.Graph], list[nx.Graph]]:
    """The (train, test) graphs of a benchmark name or a user's path.

    Args:
      dataset: one of :data:`GRAPH_DATASETS` (test = the first 20% of the file, as GDSS),
        or a path (:func:`load_user_graphs`).
      data: the options of a user's file (ignored for a benchmark).

    Returns:
      ``(train, test)`` lists of graphs with nodes 0..n-1.

    Raises:
      DataError: a path of another data kind (e.g. a SMILES file), or see
        :func:`load_user_graphs`.
    """
    if is_user_path(dataset):
        if (kind := user_data_kind(dataset)) != "graphs":
            raise DataError(f"--dataset {dataset} holds {kind}; graph recipes read {_EXPECTED}")
        return load_user_graphs(dataset, data)
    return train_test_split(load_graphs(dataset), 0.2)


def load_user_graphs(
    path: str | Path, data: UserData = UserData()
) -> tuple[list[nx.Graph], list[nx.Graph]]:
    """A user's graphs split into train and test.

    The good graphs of ``path`` (:func:`read_user_graphs`) are split by
    :func:`~genmodels.datasets.user.split_indices` (``data.test_fraction``,
    ``data.split_seed``), unless files are given: ``data.test_file`` is the test split as
    given (training on all of ``path``, or on ``data.train_file``); ``data.train_file``
    alone is the training split and all of ``path`` the test split.

    Args:
      path: a ``.g6``, ``.s6`` or ``.graphml`` file or a folder of edge-list files.
      data: split options.

    Returns:
      ``(train, test)`` lists of ``networkx.Graph`` with nodes 0..n-1, in file order.

    Raises:
      MissingFileError: a path that does not exist.
      DataError: a file or folder without a single good graph, or fewer than 2 graphs to
        split.
    """
    if data.train_file or data.test_file:
        train = read_user_graphs(data.train_file or path)
        return train, read_user_graphs(data.test_file or path)
    graphs = read_user_graphs(path)
    if len(graphs) < 2:
        raise DataError(f"{path}: 1 good graph; a split needs 2 or more (or pass --test-file)")
    train_idx, test_idx = split_indices(len(graphs), data.test_fraction, data.split_seed)
    return [graphs[i] for i in train_idx], [graphs[i] for i in test_idx]


#: user graph files read as one graph per line, and as GraphML
_LINE_SUFFIXES, _GRAPHML_SUFFIXES = (".g6", ".s6"), (".graphml",)
#: cache format version (bump when parsing changes)
_CACHE_VERSION = 1
#: skipped items named in the warning
_SHOWN = 5
#: lines (a tenth as many files) from which reading shows a progress bar
_BAR = 2000


def read_user_graphs(path: str | Path) -> list[nx.Graph]:
    """All good graphs of a user's file or folder, in file order.

    Formats: ``.g6`` / ``.s6``: one graph6 or sparse6 string a line (a ``>>graph6<<`` /
    ``>>sparse6<<`` header allowed, blank lines ignored); ``.graphml``: every ``<graph>``
    of the file (networkx's GraphML reader; nodes in document order); a folder: every
    file in it and its subfolders (sorted by name; hidden files ignored), read by its
    suffix, any other file as one edge list (lines ``u v`` or ``u v weight``, or networkx
    ``write_edgelist``'s ``u v {...}``; ``#`` starts a comment; nodes numbered in
    numeric order when all are integers, else in order of appearance). Directed or
    multigraphs become simple undirected graphs; self loops and weights are dropped (the
    models generate unweighted simple graphs).

    A line, file or GraphML graph that cannot be read, or a graph with no nodes, is
    skipped and counted, with one warning naming ``path`` and the first few line numbers
    or file names. The parsed graphs are cached under the cache folder, keyed by the
    files' sha256 (:func:`genmodels.metrics.cache.cached_arrays`); the first read shows a
    progress bar.

    Args:
      path: the file or folder.

    Returns:
      The good graphs, nodes relabelled 0..n-1.

    Raises:
      MissingFileError: no such file or folder.
      DataError: no good graph (the message names the first bad items).
    """
    from genmodels.metrics.cache import cached_arrays, file_sha256

    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{path}: no such graph file or folder")
    files = _files(p)
    key = {
        "suffix": _suffix(p) if p.is_file() else "folder",
        "files": [[_name(f, p), file_sha256(f)] for f in files],
    }
    arrays = cached_arrays("user-graphs", key, lambda: _parse(p, files), version=_CACHE_VERSION)
    graphs = _unpack(arrays)
    skipped, total = [str(s) for s in arrays["skipped"]], int(arrays["total"])
    shown = "; ".join(skipped[:_SHOWN]) + ("; ..." if len(skipped) > _SHOWN else "")
    if not graphs:
        what = f"none of its {total} graphs could be read ({shown})" if total else "no graph"
        raise DataError(f"{path}: {what}; expected {_EXPECTED}")
    if skipped:
        warnings.warn(
            f"{path}: skipped {len(skipped)} of {total} graphs that could not be read or "
            f"have no nodes ({shown})",
            stacklevel=2,
        )
    return graphs


_EXPECTED = (
    "graph6 (.g6) or sparse6 (.s6) lines, GraphML (.graphml), or a folder of edge-list "
    "files (lines 'u v [weight]')"
)


def _suffix(p: Path) -> str:
    return p.suffix.lower()


def _name(f: Path, root: Path) -> str:
    return f.name if f == root else f.relative_to(root).as_posix()


def _files(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    files = [
        f
        for f in p.rglob("*")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
    ]
    return sorted(files, key=lambda f: f.relative_to(p).as_posix())


def _parse(root: Path, files: list[Path]) -> dict[str, np.ndarray]:
    """Parse every file; returns the graphs packed as arrays (:func:`_unpack`)."""
    graphs, skipped, total = [], [], 0
    bar = tqdm(files, desc=f"reading {root.name}", unit="file", disable=len(files) < _BAR // 10)
    for f in bar:
        sfx, name = _suffix(f), _name(f, root)
        if sfx in _LINE_SUFFIXES + _GRAPHML_SUFFIXES:
            reader = _read_lines if sfx in _LINE_SUFFIXES else _read_graphml
            prefix = "" if f == root else f"{name}: "
            for where, g in reader(f):
                total += 1
                _keep(g, (prefix + where).rstrip(": "), graphs, skipped)
        else:  # an edge-list file: one graph
            total += 1
            _keep(_read_edgelist(f), name, graphs, skipped)
    counts = np.array([g.number_of_nodes() for g in graphs], np.int64)
    edges = [np.array(list(g.edges), np.int64).reshape(-1, 2) for g in graphs]
    return {
        "counts": counts,
        "offsets": np.cumsum([0] + [len(e) for e in edges]).astype(np.int64),
        "edges": np.concatenate(edges) if edges else np.zeros((0, 2), np.int64),
        "skipped": np.array(skipped, dtype=str),
        "total": np.array(total, np.int64),
    }


def _keep(g: nx.Graph | str, where: str, graphs: list, skipped: list) -> None:
    """Append a good graph (self loops dropped, nodes 0..n-1) or record why it is not."""
    if isinstance(g, nx.Graph) and g.number_of_nodes() == 0:
        g = "no nodes"
    if isinstance(g, str):
        skipped.append(f"{where}: {g}" if where else g)
        return
    g = nx.Graph(g)  # simple undirected copy
    g.remove_edges_from(list(nx.selfloop_edges(g)))
    graphs.append(nx.convert_node_labels_to_integers(g, ordering="default"))


def _unpack(arrays: dict[str, np.ndarray]) -> list[nx.Graph]:
    graphs = []
    off, edges = arrays["offsets"], arrays["edges"]
    for i, n in enumerate(arrays["counts"]):
        g = nx.Graph()
        g.add_nodes_from(range(int(n)))
        g.add_edges_from(edges[off[i] : off[i + 1]].tolist())
        graphs.append(g)
    return graphs


def _read_lines(f: Path) -> Iterator[tuple[str, nx.Graph | str]]:
    """``(where, graph or reason)`` of every non-blank line of a graph6 / sparse6 file."""
    lines = f.read_bytes().split(b"\n")
    bar = tqdm(lines, desc=f"reading {f.name}", unit="line", disable=len(lines) < _BAR)
    for lineno, raw in enumerate(bar, start=1):
        line = raw.strip()
        if not line:
            continue
        body = line.removeprefix(b">>graph6<<").removeprefix(b">>sparse6<<")
        try:
            if body.startswith(b":"):
                yield f"line {lineno}", nx.from_sparse6_bytes(body)
            else:
                yield f"line {lineno}", nx.from_graph6_bytes(body)
        except (nx.NetworkXError, ValueError, IndexError, TypeError):
            fmt = "sparse6" if body.startswith(b":") else "graph6"
            yield f"line {lineno}", f"not {fmt}: {line[:20].decode(errors='replace')!r}"


def _read_graphml(f: Path) -> Iterator[tuple[str, nx.Graph | str]]:
    """``(where, graph or reason)`` of every ``<graph>`` of a GraphML file."""
    from networkx.readwrite.graphml import GraphMLReader

    k = 0
    try:
        for k, g in enumerate(GraphMLReader()(path=str(f)), start=1):  # noqa: B007
            yield f"graph {k}", g
        if k == 0:
            yield "", "no <graph> element"
    except Exception as e:  # noqa: BLE001 - any XML or GraphML error skips the rest
        why = (str(e).splitlines() or [type(e).__name__])[0][:60]
        yield (f"graph {k + 1}" if k else ""), f"not GraphML: {why}"


_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _read_edgelist(f: Path) -> nx.Graph | str:
    """One graph from an edge-list file, or the reason it is not one."""
    try:
        text = f.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return "not a text file"
    edges = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        rest = parts[2].strip() if len(parts) == 3 else ""
        ok = len(parts) >= 2 and (
            not rest or _NUMBER.match(rest) or (rest.startswith("{") and rest.endswith("}"))
        )
        if not ok:
            return f"line {lineno}: not 'u v [weight]': {line[:20]!r}"
        edges.append((parts[0], parts[1]))
    nodes = list(dict.fromkeys(u for e in edges for u in e))
    if nodes and all(re.fullmatch(r"[-+]?\d+", u) for u in nodes):
        nodes.sort(key=int)
    g = nx.Graph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return g
