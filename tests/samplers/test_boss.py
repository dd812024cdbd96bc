"""BOSS: the Bellman DP against brute force, the cost matrix by hand, BOSS grids against
uniform grids on a curved exact flow, and the straightening pairs/loss."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmodels.core.grids import uniform_grid
from genmodels.core.mixture import GaussianMixture
from genmodels.processes.flow import LinearFlow
from genmodels.samplers.boss import (
    cost_matrix,
    optimal_grid,
    path_cost,
    reference_trajectories,
    straightening_batch,
    straightening_loss,
    straightening_pairs,
)
from genmodels.samplers.ode import euler_sample


def _random_cost(n: int, seed: int) -> np.ndarray:
    c = np.random.default_rng(seed).random((n, n)) * 10.0
    return np.where(np.arange(n)[None, :] > np.arange(n)[:, None], c, np.inf)


@pytest.mark.parametrize("K", [1, 2, 3, 4, 10])
def test_dynamic_program_matches_brute_force(K):
    n = 11  # Kmax = 10
    c = _random_cost(n, seed=K)
    best, best_path = np.inf, None
    for mid in itertools.combinations(range(1, n - 1), K - 1):
        path = (0, *mid, n - 1)
        cost = sum(c[a, b] for a, b in zip(path[:-1], path[1:]))
        if cost < best:
            best, best_path = cost, path
    grid = uniform_grid(n - 1)
    res = jax.jit(lambda cc: optimal_grid(cc, K, grid))(jnp.asarray(c, jnp.float32))
    assert tuple(np.asarray(res.indices).tolist()) == best_path
    assert float(res.cost) == pytest.approx(best, rel=1e-5)
    assert float(path_cost(c.astype(np.float32), res.indices)) == pytest.approx(best, rel=1e-5)
    np.testing.assert_allclose(np.asarray(res.times), np.asarray(grid)[list(best_path)])
    with pytest.raises(ValueError):
        optimal_grid(c, n)


def test_cost_matrix_by_hand():
    """c[i, j] = mean_b ||x_i + (t_j - t_i) v(x_i, t_i) - x_j||^2 on a nonlinear field,
    padding ignored (the field writes into padded entries)."""

    def vel(state, t, ctx):
        x = state["x"]
        return {"x": jnp.sin(3.0 * x) * (1.0 + t[:, None, None]) + 0.5}

    grid = jnp.array([1.0, 0.8, 0.55, 0.3, 0.1, 0.0])
    mask = jnp.array([[1.0], [1.0], [0.0]])  # [3, 1]: third node padded
    ctx = {"masks": {"x": mask}}
    traj = reference_trajectories(
        vel, {"x": LinearFlow()}, ctx, jax.random.key(0), shapes={"x": (4, 3, 2)}, fine_grid=grid
    )
    assert traj["x"].shape == (6, 4, 3, 2)
    assert np.all(np.asarray(traj["x"])[:, :, 2] == 0.0)
    c = np.asarray(cost_matrix(vel, traj, grid, ctx, map_batch=2))
    xs, g, m = np.asarray(traj["x"], np.float64), np.asarray(grid, np.float64), np.asarray(mask)
    for i in range(6):
        for j in range(6):
            if j <= i:
                assert np.isinf(c[i, j])
                continue
            v = (np.sin(3.0 * xs[i]) * (1.0 + g[i]) + 0.5) * m
            err = ((xs[i] + (g[j] - g[i]) * v - xs[j]) ** 2).sum(axis=(1, 2)).mean()
            assert c[i, j] == pytest.approx(err, rel=1e-4, abs=1e-6)
    # One fine step is the reference itself: zero cost.
    np.testing.assert_allclose(np.diag(c, 1), 0.0, atol=1e-10)


# 1-D mixture with well separated modes: flow paths bend late (small t), so where the
# steps go matters. The fine grid has Kmax = 840 = lcm(2..8) steps, so every uniform K-step
# grid for K = 2..8 is a subset of it and competes in the same dynamic program.
GM = GaussianMixture(weights=(0.3, 0.7), means=((-3.0,), (3.0,)), stds=(0.2, 0.4))
KMAX, NB = 840, 256


def flow_velocity(state, t, ctx):
    x = state["x"]
    return {"x": (x - GM.denoise(x, 1.0 - t, t)) / t[:, None]}


def test_boss_grid_beats_uniform_grid_on_a_curved_flow():
    grid = uniform_grid(KMAX)
    key = jax.random.key(1)
    shapes = {"x": (NB, 1)}
    procs = {"x": LinearFlow()}
    fine = jax.jit(
        lambda k: reference_trajectories(flow_velocity, procs, {}, k, shapes=shapes, fine_grid=grid)
    )(key)
    cost = jax.jit(lambda tr: cost_matrix(flow_velocity, tr, grid, map_batch=64))(fine)
    ks = range(2, 9)
    boss = jax.jit(lambda c: [optimal_grid(c, k, grid) for k in ks])(cost)
    uniform_idx = [np.arange(k + 1) * (KMAX // k) for k in ks]

    # All 14 K-step Euler runs in one vmapped call: grids are padded to 8 steps by
    # repeating t = 1 in front (a zero-length Euler step leaves the state exactly as is).
    def pad(times):
        return jnp.concatenate([jnp.ones((9 - times.shape[0],)), times])

    grids = jnp.stack([pad(b.times) for b in boss] + [pad(grid[u]) for u in uniform_idx])

    def final(g):
        return euler_sample(flow_velocity, procs, {}, key, shapes=shapes, grid=g)[0]["x"]

    finals = jax.jit(jax.vmap(final))(grids)  # [14, NB, 1]
    err = np.asarray(jnp.mean(jnp.sum((finals - fine["x"][-1][None]) ** 2, -1), -1))
    err_boss, err_uniform = err[:7], err[7:]
    for i, k in enumerate(ks):
        # The DP is optimal among all K-subsets, the uniform one included.
        assert float(boss[i].cost) <= float(path_cost(cost, uniform_idx[i])) + 1e-6
        # ... and its grid integrates the flow closer to the fine reference (error ratios
        # BOSS/uniform measured 0.28-0.74 over 6 seeds with 256 samples; 0.33-0.61 here).
        assert err_boss[i] < 0.85 * err_uniform[i], (k, err_boss[i], err_uniform[i])


def test_straightening_pairs_batch_and_loss():
    rng = np.random.default_rng(2)
    traj = {"x": jnp.asarray(rng.normal(size=(11, 6, 3, 2)), jnp.float32)}  # Kmax = 10, B = 6
    grid = uniform_grid(10)
    idx = jnp.array([0, 3, 7, 10])
    x_start, t_start, target = straightening_pairs(traj, grid, idx)
    np.testing.assert_allclose(np.asarray(t_start), [1.0, 0.7, 0.3], rtol=1e-6)
    # One Euler step with the target slope lands exactly on the reference point.
    for k, (a, b) in enumerate([(0, 3), (3, 7), (7, 10)]):
        step = x_start["x"][k] + (grid[b] - grid[a]) * target["x"][k]
        np.testing.assert_allclose(np.asarray(step), np.asarray(traj["x"][b]), atol=1e-5)

    x, t, tgt = jax.jit(lambda k, tr: straightening_batch(k, tr, grid, idx))(
        jax.random.key(3), traj
    )
    x, t, tgt = np.asarray(x["x"]), np.asarray(t), np.asarray(tgt["x"])
    assert x.shape == (6, 3, 2) and t.shape == (6,)
    xs, ts, tg = np.asarray(x_start["x"]), np.asarray(t_start), np.asarray(target["x"])
    for b in range(6):
        k = int(np.argmin(np.abs(ts - t[b])))
        np.testing.assert_allclose(x[b], xs[k, b])
        np.testing.assert_allclose(tgt[b], tg[k, b])
    tgt = {"x": jnp.asarray(tgt)}

    mask = jnp.array([[1.0], [1.0], [0.0]])
    ctx = {"masks": {"x": mask}}
    assert np.all(np.asarray(straightening_loss(tgt, tgt, ctx)) == 0.0)
    pred = {"x": tgt["x"] + 2.0}  # off by 2 on every entry, padding included
    np.testing.assert_allclose(np.asarray(straightening_loss(pred, tgt, ctx)), 4.0, rtol=1e-6)
