"""MMD between sets of generic graphs, following the GraphRNN / GDSS evaluation.

GDSS (Jo et al. 2022, Sec. 4.1; code ``evaluation/stats.py`` and ``evaluation/mmd.py``)
compares generated graphs with the test split through the squared maximum mean
discrepancy of four per-graph statistics, with a biased estimator and no square root::

    MMD^2(X, Y) = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j)

Statistics and kernels (GDSS ``load_eval_settings``):

==========  ==========================================  =====================================
metric      per-graph statistic                         kernel
==========  ==========================================  =====================================
degree      ``nx.degree_histogram`` (counts)            Gaussian-EMD, sigma 1, scaling 1
clustering  100-bin histogram of ``nx.clustering``      Gaussian-EMD, sigma 0.1, scaling 100
            on [0, 1]
orbit       ORCA 15 node-orbit counts summed over       Gaussian-L2, sigma 30 (no
            nodes / number of nodes                     normalisation)
spectral    200-bin histogram of normalised-Laplacian   Gaussian-EMD, sigma 1, scaling 1
            eigenvalues on [-1e-5, 2]
==========  ==========================================  =====================================

Histograms are normalised to probability vectors before the kernel (GDSS ``is_hist=True``)
and zero-padded to a common length. Gaussian-EMD is ``exp(-EMD^2 / (2 sigma^2))`` where EMD
is the earth mover's distance with ground distance ``|i - j| / distance_scaling`` between
bins i and j (GDSS calls pyemd with that Toeplitz matrix). On a line with equal masses the
optimal transport cost is the L1 distance between the cumulative sums (Vallender 1974), so
we compute it exactly and in closed form instead of solving a transport problem.

Empty graphs (no nodes) are dropped with a warning, as GDSS drops them from the generated
set; an empty reference graph is dropped too rather than crashing the orbit count.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import partial

import networkx as nx
import numpy as np
from scipy.linalg import eigvalsh
from scipy.spatial.distance import cdist

from genmodels.metrics.orbits import orbit_counts

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]

METRICS = ("degree", "clustering", "orbit", "spectral")


# ----------------------------------------------------------------------------- kernels


def _as_2d(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    squeeze = np.ndim(x) == 1 and np.ndim(y) == 1
    x2 = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y2 = np.atleast_2d(np.asarray(y, dtype=np.float64))
    length = max(x2.shape[1], y2.shape[1])
    return _pad(x2, length), _pad(y2, length), squeeze


def _pad(x: np.ndarray, length: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, length - x.shape[1])))


def _finish(k: np.ndarray, squeeze: bool) -> np.ndarray | float:
    return float(k[0, 0]) if squeeze else k


def emd_1d(x: np.ndarray, y: np.ndarray, distance_scaling: float = 1.0) -> np.ndarray | float:
    """Earth mover's distance between histograms on the bins 0, 1, 2, ...

    With ground distance ``|i - j| / distance_scaling`` and equal total masses, the
    optimal transport cost is ``sum_i |F_x(i) - F_y(i)| / distance_scaling`` with F the
    cumulative sums (the 1-D Wasserstein-1 distance). This is the value pyemd returns in
    GDSS ``emd`` for normalised histograms.

    Args:
      x: histogram [L] or batch of histograms [n1, L] (same total mass as y).
      y: histogram [L'] or batch [n2, L']; the shorter one is zero-padded.
      distance_scaling: ground distance between neighbouring bins is 1 / distance_scaling.

    Returns:
      A float for two 1-D inputs, else the distance matrix [n1, n2].
    """
    x2, y2, squeeze = _as_2d(x, y)
    # The last cumulative sum is the total mass, equal for both, so it is left out.
    cx = np.cumsum(x2, axis=1)[:, :-1]  # [n1, L-1]
    cy = np.cumsum(y2, axis=1)[:, :-1]  # [n2, L-1]
    if cx.shape[1] == 0:
        d = np.zeros((x2.shape[0], y2.shape[0]))
    else:
        d = cdist(cx, cy, metric="cityblock") / distance_scaling
    return _finish(d, squeeze)


def gaussian_emd(
    x: np.ndarray, y: np.ndarray, sigma: float = 1.0, distance_scaling: float = 1.0
) -> np.ndarray | float:
    """Gaussian kernel with the squared distance replaced by EMD^2 (GraphRNN / GDSS).

    ``k(x, y) = exp(-EMD(x, y)^2 / (2 sigma^2))`` with EMD from :func:`emd_1d`.

    Args:
      x: probability vector [L] or batch [n1, L].
      y: probability vector [L'] or batch [n2, L'].
      sigma: kernel bandwidth.
      distance_scaling: bins per unit of ground distance.

    Returns:
      A float for two 1-D inputs, else the kernel matrix [n1, n2].
    """
    d = np.asarray(emd_1d(x, y, distance_scaling))
    k = np.exp(-(d**2) / (2.0 * sigma**2))
    return float(k) if k.ndim == 0 else k


def gaussian_tv(x: np.ndarray, y: np.ndarray, sigma: float = 1.0) -> np.ndarray | float:
    """Gaussian kernel on the total-variation distance ``TV = 0.5 * ||x - y||_1``.

    Args:
      x: probability vector [L] or batch [n1, L].
      y: probability vector [L'] or batch [n2, L'].
      sigma: kernel bandwidth.

    Returns:
      ``exp(-TV^2 / (2 sigma^2))``: a float for two 1-D inputs, else a matrix [n1, n2].
    """
    x2, y2, squeeze = _as_2d(x, y)
    d = 0.5 * cdist(x2, y2, metric="cityblock")
    return _finish(np.exp(-(d**2) / (2.0 * sigma**2)), squeeze)


def gaussian(x: np.ndarray, y: np.ndarray, sigma: float = 1.0) -> np.ndarray | float:
    """Gaussian (RBF) kernel on the Euclidean distance, ``exp(-||x - y||^2 / (2 sigma^2))``.

    Args:
      x: vector [L] or batch [n1, L].
      y: vector [L'] or batch [n2, L'] (the shorter is zero-padded).
      sigma: kernel bandwidth.

    Returns:
      A float for two 1-D inputs, else the kernel matrix [n1, n2].
    """
    x2, y2, squeeze = _as_2d(x, y)
    d2 = cdist(x2, y2, metric="sqeuclidean")
    return _finish(np.exp(-d2 / (2.0 * sigma**2)), squeeze)


def compute_mmd(
    samples1: Sequence[np.ndarray],
    samples2: Sequence[np.ndarray],
    kernel: Kernel,
    *,
    is_hist: bool = True,
) -> float:
    """Biased squared MMD between two sets of vectors (GDSS ``compute_mmd``).

    ``MMD^2 = mean k(s1, s1') + mean k(s2, s2') - 2 mean k(s1, s2)``, all pairs including
    i = j, no square root (Gretton et al. 2012, Eq. 5, biased form).

    Args:
      samples1: vectors [L_i] (lengths may differ; zero-padded to a common length).
      samples2: vectors [L_j].
      kernel: batched kernel ``(X [n1, L], Y [n2, L]) -> [n1, n2]``, e.g.
        ``functools.partial(gaussian_emd, sigma=1.0)``.
      is_hist: normalise every vector to sum 1 first (histograms -> probability vectors).

    Returns:
      The squared MMD as a float.
    """
    if len(samples1) == 0 or len(samples2) == 0:
        raise ValueError("compute_mmd needs at least one sample in each set")
    length = max(len(s) for s in (*samples1, *samples2))
    x = np.stack([np.pad(np.asarray(s, np.float64), (0, length - len(s))) for s in samples1])
    y = np.stack([np.pad(np.asarray(s, np.float64), (0, length - len(s))) for s in samples2])
    if is_hist:
        x = x / x.sum(axis=1, keepdims=True)
        y = y / y.sum(axis=1, keepdims=True)
    kxx = np.asarray(kernel(x, x)).mean()
    kyy = np.asarray(kernel(y, y)).mean()
    kxy = np.asarray(kernel(x, y)).mean()
    return float(kxx + kyy - 2.0 * kxy)


# -------------------------------------------------------------------------- statistics


def degree_histogram(graph: nx.Graph) -> np.ndarray:
    """Counts of nodes per degree 0..max degree (``nx.degree_histogram``), [max_deg + 1]."""
    return np.asarray(nx.degree_histogram(graph), dtype=np.float64)


def clustering_histogram(graph: nx.Graph, bins: int = 100) -> np.ndarray:
    """Histogram [bins] of the local clustering coefficients on [0, 1] (counts)."""
    coeffs = list(nx.clustering(graph).values())
    hist, _ = np.histogram(coeffs, bins=bins, range=(0.0, 1.0))
    return hist.astype(np.float64)


def spectral_histogram(graph: nx.Graph, bins: int = 200) -> np.ndarray:
    """Probability vector [bins] of normalised-Laplacian eigenvalues on [-1e-5, 2].

    The lower edge -1e-5 keeps the zero eigenvalues (computed as tiny negatives) in the
    first bin, as in GDSS ``spectral_worker``.
    """
    lap = nx.normalized_laplacian_matrix(graph).toarray()
    eigs = eigvalsh(lap)
    hist, _ = np.histogram(eigs, bins=bins, range=(-1e-5, 2.0))
    return hist / hist.sum()


def orbit_feature(graph: nx.Graph) -> np.ndarray:
    """The 15 ORCA orbit counts summed over nodes and divided by the node count, [15]."""
    return orbit_counts(graph).sum(axis=0) / graph.number_of_nodes()


# ----------------------------------------------------------------------------- MMDs


def _drop_empty(graphs: Sequence[nx.Graph], role: str) -> list[nx.Graph]:
    kept = [g for g in graphs if g.number_of_nodes() > 0]
    dropped = len(graphs) - len(kept)
    if dropped:
        warnings.warn(
            f"graph MMD: dropped {dropped} empty graph(s) of {len(graphs)} {role} graphs",
            stacklevel=3,
        )
    if not kept:
        raise ValueError(f"graph MMD: no non-empty {role} graphs ({len(graphs)} given)")
    return kept


def _stat_mmd(ref, pred, stat: Callable[[nx.Graph], np.ndarray], kernel, is_hist) -> float:
    ref = _drop_empty(ref, "reference")
    pred = _drop_empty(pred, "generated")
    return compute_mmd([stat(g) for g in ref], [stat(g) for g in pred], kernel, is_hist=is_hist)


def degree_mmd(
    ref_graphs: Sequence[nx.Graph],
    pred_graphs: Sequence[nx.Graph],
    kernel: Kernel = partial(gaussian_emd, sigma=1.0),
) -> float:
    """Squared MMD of normalised degree histograms (GDSS ``degree_stats``).

    Args:
      ref_graphs: reference graphs (the test split).
      pred_graphs: generated graphs; empty ones are dropped with a warning.
      kernel: batched kernel; GDSS uses Gaussian-EMD with sigma 1.

    Returns:
      MMD^2 as a float.
    """
    return _stat_mmd(ref_graphs, pred_graphs, degree_histogram, kernel, True)


def clustering_mmd(
    ref_graphs: Sequence[nx.Graph],
    pred_graphs: Sequence[nx.Graph],
    kernel: Kernel | None = None,
    bins: int = 100,
) -> float:
    """Squared MMD of clustering-coefficient histograms (GDSS ``clustering_stats``).

    Args:
      ref_graphs: reference graphs.
      pred_graphs: generated graphs; empty ones are dropped with a warning.
      kernel: batched kernel; default Gaussian-EMD with sigma 0.1 and distance scaling
        ``bins``, so the ground distance is in clustering-coefficient units.
      bins: number of bins on [0, 1].

    Returns:
      MMD^2 as a float.
    """
    if kernel is None:
        kernel = partial(gaussian_emd, sigma=0.1, distance_scaling=float(bins))
    stat = partial(clustering_histogram, bins=bins)
    return _stat_mmd(ref_graphs, pred_graphs, stat, kernel, True)


def orbit_mmd(
    ref_graphs: Sequence[nx.Graph],
    pred_graphs: Sequence[nx.Graph],
    kernel: Kernel = partial(gaussian, sigma=30.0),
) -> float:
    """Squared MMD of node-averaged 4-node orbit counts (GDSS ``orbit_stats_all``).

    The statistic is not a histogram, so it is not normalised (``is_hist=False``).

    Args:
      ref_graphs: reference graphs.
      pred_graphs: generated graphs; empty ones are dropped with a warning.
      kernel: batched kernel; GDSS uses the Gaussian-L2 kernel with sigma 30.

    Returns:
      MMD^2 as a float.
    """
    return _stat_mmd(ref_graphs, pred_graphs, orbit_feature, kernel, False)


def spectral_mmd(
    ref_graphs: Sequence[nx.Graph],
    pred_graphs: Sequence[nx.Graph],
    kernel: Kernel = partial(gaussian_emd, sigma=1.0),
    bins: int = 200,
) -> float:
    """Squared MMD of normalised-Laplacian spectrum histograms (GDSS ``spectral_stats``).

    Args:
      ref_graphs: reference graphs.
      pred_graphs: generated graphs; empty ones are dropped with a warning.
      kernel: batched kernel; GDSS passes Gaussian-EMD with its defaults (sigma 1,
        distance scaling 1, i.e. distance in bins).
      bins: number of bins on [-1e-5, 2].

    Returns:
      MMD^2 as a float.
    """
    stat = partial(spectral_histogram, bins=bins)
    return _stat_mmd(ref_graphs, pred_graphs, stat, kernel, True)


_METRIC_FNS = {
    "degree": degree_mmd,
    "clustering": clustering_mmd,
    "orbit": orbit_mmd,
    "spectral": spectral_mmd,
}


def graph_mmd(
    ref_graphs: Sequence[nx.Graph],
    pred_graphs: Sequence[nx.Graph],
    metrics: Sequence[str] = METRICS,
) -> dict[str, float]:
    """GDSS's generic-graph MMD suite with its default kernels.

    Args:
      ref_graphs: reference graphs (GDSS uses the test split).
      pred_graphs: generated graphs; empty graphs are dropped once, with one warning.
      metrics: any of ``"degree"``, ``"clustering"``, ``"orbit"``, ``"spectral"``.

    Returns:
      ``{metric: MMD^2}`` for the requested metrics, in the given order.
    """
    unknown = [m for m in metrics if m not in _METRIC_FNS]
    if unknown:
        raise ValueError(f"unknown graph metric(s) {unknown}; choose from {list(_METRIC_FNS)}")
    ref = _drop_empty(list(ref_graphs), "reference")
    pred = _drop_empty(list(pred_graphs), "generated")
    return {m: _METRIC_FNS[m](ref, pred) for m in metrics}
