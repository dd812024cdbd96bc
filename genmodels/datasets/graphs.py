"""The GDSS generic-graph benchmarks: community_small, ego_small, grid and ENZYMES.

The graphs come as the pickles of the GDSS repository (``data/<name>.pkl``; Jo, Lee,
Hwang, ICML 2022), each a ``list`` of ``networkx.Graph``. Sizes (see
``$GENMODELS_DATA_DIR/graphs/SOURCES.md``): community_small 100 graphs with 12-20 nodes,
ego_small 200 with 4-17, grid 100 with 110-361, ENZYMES 587 with 10-125.

Security: unpickling runs code chosen by whoever wrote the file, so these pickles are
treated as trusted data only. :func:`load_graphs` reads a file only after
:func:`genmodels.datasets.registry.fetch` has checked its pinned sha256.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import TypeVar

import networkx as nx

from genmodels.datasets.registry import DatasetError, fetch

__all__ = ["GRAPH_DATASETS", "load_graphs", "train_test_split"]

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
