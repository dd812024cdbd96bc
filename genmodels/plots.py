"""Figures people would rather look at than read: grids of graphs (matplotlib, networkx).

Importable from notebooks and scripts; nothing here is needed for training or sampling,
so matplotlib is imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import numpy as np


def draw_graphs(
    graphs: Sequence[nx.Graph],
    *,
    ncols: int = 4,
    title: str | None = None,
    axes=None,
    node_size: int = 25,
    seed: int = 0,
    color: str = "tab:blue",
):
    """Draw graphs in a grid, each with a spring layout (fixed ``seed``: reproducible).

    Args:
      graphs: the graphs (``None`` entries, failed decodings, are drawn as empty panels).
      ncols: panels per row when ``axes`` is not given.
      title: figure (or axes group) title.
      axes: a flat sequence of at least ``len(graphs)`` matplotlib axes to draw into;
        default a new figure.
      node_size: marker size of the nodes.
      seed: seed of the spring layouts.
      color: node colour.

    Returns:
      The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    graphs = list(graphs)
    if axes is None:
        nrows = max(1, -(-len(graphs) // ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.2 * nrows))
        axes = np.atleast_1d(axes).ravel()
    else:
        axes = list(np.ravel(axes))
        fig = axes[0].figure
    if len(axes) < len(graphs):
        raise ValueError(f"{len(graphs)} graphs but only {len(axes)} axes")
    for ax in axes:
        ax.axis("off")
    for ax, g in zip(axes, graphs):
        if g is None:
            ax.set_title("(invalid)", fontsize=8)
            continue
        pos = nx.spring_layout(g, seed=seed) if g.number_of_nodes() else {}
        nx.draw_networkx(
            g, pos, ax=ax, node_size=node_size, with_labels=False, node_color=color, width=0.6
        )
        ax.set_title(f"n={g.number_of_nodes()} m={g.number_of_edges()}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def scatter_png(points: np.ndarray, path: str | Path, title: str = "") -> None:
    """A PNG scatter plot of 2-D points [N, 2]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
    ax.set_aspect("equal")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
