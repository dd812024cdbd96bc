"""Tests for the GDSS graph MMD suite: kernels, estimator and statistics."""

import math
import warnings
from functools import partial

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import linprog

from genmodels.metrics.graphs import (
    clustering_histogram,
    clustering_mmd,
    compute_mmd,
    degree_mmd,
    emd_1d,
    gaussian,
    gaussian_emd,
    gaussian_tv,
    graph_mmd,
    orbit_feature,
    orbit_mmd,
    spectral_histogram,
    spectral_mmd,
)

# ----------------------------------------------------------------------------- kernels


def _transport_emd(x, y, distance_scaling=1.0):
    """EMD by solving the transport LP with ground distance |i - j| / scaling (pyemd's)."""
    n = len(x)
    cost = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :]) / distance_scaling
    a_eq = np.zeros((2 * n, n * n))
    for i in range(n):
        a_eq[i, i * n : (i + 1) * n] = 1.0  # mass leaving bin i of x
        a_eq[n + i, i::n] = 1.0  # mass arriving in bin i of y
    res = linprog(cost.ravel(), A_eq=a_eq, b_eq=np.concatenate([x, y]), bounds=(0, None))
    assert res.status == 0
    return res.fun


def test_emd_hand_cases():
    # All mass moves two bins.
    assert emd_1d(np.array([1.0, 0, 0]), np.array([0, 0, 1.0])) == pytest.approx(2.0)
    assert emd_1d(np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), 2.0) == pytest.approx(1.0)
    # Half the mass moves one bin, half moves one bin: 0.5 + 0.5.
    assert emd_1d(np.array([0.5, 0.5, 0]), np.array([0, 0.5, 0.5])) == pytest.approx(1.0)
    # Shorter histograms are zero-padded: [1] vs [0, 0, 0, 1] moves 3 bins.
    assert emd_1d(np.array([1.0]), np.array([0, 0, 0, 1.0])) == pytest.approx(3.0)


def test_emd_equals_transport_problem():
    rng = np.random.default_rng(0)
    for scaling in (1.0, 100.0):
        for _ in range(5):
            x = rng.random(8) * (rng.random(8) < 0.6)
            y = rng.random(8)
            x, y = x / x.sum(), y / y.sum()
            assert emd_1d(x, y, scaling) == pytest.approx(_transport_emd(x, y, scaling), abs=1e-9)


def test_emd_batched_matches_pairs():
    rng = np.random.default_rng(1)
    x = rng.dirichlet(np.ones(6), size=3)
    y = rng.dirichlet(np.ones(6), size=4)
    d = emd_1d(x, y, 3.0)
    assert d.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert d[i, j] == pytest.approx(emd_1d(x[i], y[j], 3.0))


def test_kernels_hand_values():
    x, y = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])  # EMD 2, TV 1, L2 sqrt(2)
    assert gaussian_emd(x, y, sigma=2.0) == pytest.approx(math.exp(-4 / 8))
    assert gaussian_emd(x, y, sigma=0.1, distance_scaling=100.0) == pytest.approx(
        math.exp(-(0.02**2) / 0.02)
    )
    assert gaussian_tv(x, y, sigma=0.5) == pytest.approx(math.exp(-1 / 0.5))
    assert gaussian(np.array([3.0, 0]), np.array([0.0, 4]), sigma=5.0) == pytest.approx(
        math.exp(-25 / 50)
    )
    assert gaussian(x, x) == 1.0 and gaussian_emd(x, x) == 1.0 and gaussian_tv(x, x) == 1.0


# --------------------------------------------------------------------------- estimator


def test_mmd_properties():
    rng = np.random.default_rng(2)
    a = [rng.dirichlet(np.ones(10)) for _ in range(6)]
    b = [rng.dirichlet(np.ones(10) * 0.3) for _ in range(5)]
    k = partial(gaussian_emd, sigma=1.0)
    assert compute_mmd(a, a, k) == pytest.approx(0.0, abs=1e-12)
    ab, ba = compute_mmd(a, b, k), compute_mmd(b, a, k)
    assert ab == pytest.approx(ba, rel=1e-12)
    assert ab > 1e-3
    # Biased estimator by hand for one-element sets: k(x,x) + k(y,y) - 2 k(x,y).
    x, y = np.array([2.0, 2.0, 0.0]), np.array([0.0, 1.0, 3.0])  # normalised inside
    expected = 2 - 2 * gaussian_emd(x / 4, y / 4)
    assert compute_mmd([x], [y], k) == pytest.approx(expected)


# -------------------------------------------------------------------------- statistics


def test_degree_mmd_hand():
    # P3 degree pmf [0, 2/3, 1/3], K3 [0, 0, 1]: EMD = 2/3, k = exp(-(2/3)^2 / 2).
    p3, k3 = nx.path_graph(3), nx.complete_graph(3)
    e = math.exp(-2 / 9)
    assert degree_mmd([p3], [k3]) == pytest.approx(2 - 2 * e)
    # Two against one: mean Kxx = (2 + 2e) / 4, Kyy = 1, mean Kxy = (e + 1) / 2.
    assert degree_mmd([p3, k3], [k3]) == pytest.approx((2 + 2 * e) / 4 + 1 - (e + 1))


def test_clustering_mmd_hand():
    # K3: every coefficient 1 -> last bin; star: every coefficient 0 -> first bin.
    k3, star = nx.complete_graph(3), nx.star_graph(3)
    h = clustering_histogram(k3)
    assert h.shape == (100,) and h[99] == 3 and h.sum() == 3
    # 99 bins apart at 1/100 per bin: EMD 0.99, sigma 0.1.
    expected = 2 - 2 * math.exp(-(0.99**2) / (2 * 0.1**2))
    assert clustering_mmd([k3], [star]) == pytest.approx(expected)
    # A paw has coefficients 1/3, 1, 1, 0; compared with K3 only the 1/3 and 0 move.
    paw = nx.Graph([(0, 1), (1, 2), (0, 2), (0, 3)])
    d = (99 - 33) / 100 / 4 + 0.99 / 4
    assert clustering_mmd([k3], [paw]) == pytest.approx(2 - 2 * math.exp(-(d**2) / 0.02))


def test_orbit_mmd_hand():
    # Node-averaged orbits: K3 -> o0 = 2, o3 = 1; P3 -> o0 = 4/3, o1 = 2/3, o2 = 1/3.
    k3, p3 = nx.complete_graph(3), nx.path_graph(3)
    np.testing.assert_allclose(orbit_feature(p3)[:4], [4 / 3, 2 / 3, 1 / 3, 0])
    sq = (2 / 3) ** 2 + (2 / 3) ** 2 + (1 / 3) ** 2 + 1
    assert orbit_mmd([k3], [p3]) == pytest.approx(2 - 2 * math.exp(-sq / (2 * 30**2)))


def test_spectral_mmd_hand():
    # Normalised Laplacian: K2 -> {0, 2} (bins 0, 199); K3 -> {0, 1.5, 1.5} (bins 0, 150
    # with width 2.00001 / 200).
    k2, k3 = nx.complete_graph(2), nx.complete_graph(3)
    h3 = spectral_histogram(k3)
    assert h3[0] == pytest.approx(1 / 3) and h3[150] == pytest.approx(2 / 3)
    assert h3.sum() == pytest.approx(1.0)
    # CDF gap 1/6 on bins 0..149 and 1/2 on bins 150..198: EMD 25 + 24.5 bins.
    d = 150 / 6 + 49 / 2
    assert spectral_mmd([k2], [k3]) == pytest.approx(2 - 2 * math.exp(-(d**2) / 2))
    wide = partial(gaussian_emd, sigma=100.0)
    assert spectral_mmd([k2], [k3], kernel=wide) == pytest.approx(
        2 - 2 * math.exp(-(d**2) / (2 * 100.0**2))
    )


# ----------------------------------------------------------------------------- suite


def _grids(seed, k=10):
    rng = np.random.default_rng(seed)
    return [nx.grid_2d_graph(*map(int, rng.integers(5, 9, size=2))) for _ in range(k)]


def _erdos_renyi_like(graphs, seed):
    out = []
    for i, g in enumerate(graphs):
        n = g.number_of_nodes()
        out.append(nx.gnp_random_graph(n, 2 * g.number_of_edges() / (n * (n - 1)), seed=seed + i))
    return out


def test_graph_mmd_separates_grids_from_erdos_renyi():
    grid_a, grid_b = _grids(1), _grids(2)
    er = _erdos_renyi_like(grid_a, 100)
    same = graph_mmd(grid_a, grid_b)
    diff = graph_mmd(grid_a, er)
    assert list(same) == ["degree", "clustering", "orbit", "spectral"]
    for m in ("degree", "clustering", "orbit"):
        assert same[m] * 20 < diff[m], (m, same[m], diff[m])
    # Spectra of grids of different sizes differ too, so the margin is smaller here.
    assert same["spectral"] * 1.2 < diff["spectral"]
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in graph_mmd(grid_a, grid_a).values())


def test_empty_graphs_dropped_with_warning():
    ref = [nx.path_graph(4), nx.cycle_graph(5)]
    pred = [nx.star_graph(3), nx.complete_graph(4)]
    clean = graph_mmd(ref, pred, metrics=("degree", "orbit"))
    with pytest.warns(UserWarning, match="dropped 2 empty graph"):
        noisy = graph_mmd(ref, [*pred, nx.Graph(), nx.Graph()], metrics=("degree", "orbit"))
    assert noisy == clean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no non-empty generated"):
            graph_mmd(ref, [nx.Graph()])
    with pytest.raises(ValueError, match="unknown graph metric"):
        graph_mmd(ref, pred, metrics=("cluster",))
