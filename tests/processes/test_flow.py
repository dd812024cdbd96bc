"""LinearFlow: the interpolant, its target and loss, and exact minibatch-OT coupling."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmodels.core.mixture import GaussianMixture
from genmodels.processes.flow import LinearFlow, ot_cost_matrix, ot_pair, ot_permutation

GM = GaussianMixture(weights=(0.3, 0.7), means=((-2.0, 0.0), (1.5, 1.0)), stds=(0.3, 0.5))


def test_corrupt_is_the_linear_interpolant_with_velocity_target():
    proc = LinearFlow()
    key = jax.random.key(0)
    x0 = np.random.default_rng(1).normal(size=(5, 3, 2)).astype(np.float32)
    t = np.array([0.0, 0.25, 0.5, 0.75, 1.0], np.float32)
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1]], np.float32)[
        ..., None
    ]  # [5, 3, 1]

    @jax.jit
    def run(key):
        xt, aux = proc.corrupt(key, x0, t, mask=mask)
        pred = jnp.ones_like(xt)
        return (
            xt,
            aux,
            jax.random.normal(key, x0.shape),
            proc.loss(pred, x0, xt, t, aux, mask=mask),
            proc.loss(aux["target"], x0, xt, t, aux, mask=mask),
        )

    xt, aux, eps, loss, loss0 = jax.tree.map(np.asarray, run(key))
    eps = np.where(mask > 0, eps, 0.0)
    x0m = np.where(mask > 0, x0, 0.0)
    tb = t[:, None, None]
    np.testing.assert_allclose(aux["noise"], eps, atol=1e-6)
    np.testing.assert_allclose(xt, (1 - tb) * x0m + tb * eps, atol=1e-6)
    np.testing.assert_allclose(aux["target"], eps - x0m, atol=1e-6)
    # t = 0 is data, t = 1 is noise; padding is exactly zero.
    np.testing.assert_allclose(xt[0], x0m[0], atol=1e-6)
    np.testing.assert_allclose(xt[4], eps[4], atol=1e-6)
    assert np.all(xt[np.broadcast_to(mask, xt.shape) == 0] == 0.0)
    # Loss: mean over real entries of (pred - target)^2, by hand.
    m = np.broadcast_to(mask, x0.shape)
    sq = (1.0 - (eps - x0m)) ** 2 * m
    np.testing.assert_allclose(loss, sq.sum((1, 2)) / m.sum((1, 2)), rtol=1e-5)
    assert np.all(loss0 == 0.0)


def test_prior_is_standard_normal_and_masked():
    proc = LinearFlow()
    mask = np.concatenate([np.ones((4000, 2, 1)), np.zeros((4000, 1, 1))], axis=1)
    z = np.asarray(proc.prior(jax.random.key(0), (4000, 3, 2), mask=mask))
    assert np.all(z[:, 2] == 0.0)
    real = z[:, :2].reshape(-1)
    assert abs(real.mean()) < 0.03 and abs(real.std() - 1.0) < 0.03
    a, s = proc.marginal_coefs(0.2)
    np.testing.assert_allclose([float(a), float(s)], [0.8, 0.2], rtol=1e-6)


def test_ot_permutation_is_the_exact_optimum():
    """Against brute force over all 7! pairings, inside jit."""
    rng = np.random.default_rng(2)
    x0 = rng.normal(size=(7, 2)).astype(np.float32) * 2.0
    eps = rng.normal(size=(7, 2)).astype(np.float32)
    perm, cost = jax.jit(lambda a, b: (ot_permutation(a, b), ot_cost_matrix(a, b)))(x0, eps)
    perm, cost = np.asarray(perm), np.asarray(cost, np.float64)
    best = min(sum(cost[i, p[i]] for i in range(7)) for p in itertools.permutations(range(7)))
    assert sorted(perm.tolist()) == list(range(7))
    assert sum(cost[i, perm[i]] for i in range(7)) == pytest.approx(best, rel=1e-6)
    # The cost matrix is the squared distance, by hand.
    direct = ((x0[:, None] - eps[None]) ** 2).sum(-1)
    np.testing.assert_allclose(cost, direct, rtol=1e-4, atol=1e-4)


def test_ot_pairing_lowers_transport_cost_and_keeps_the_noise():
    rng = np.random.default_rng(4)
    comp = rng.random(256) < 0.7
    means, stds = np.asarray(GM.means), np.asarray(GM.stds)
    x0 = means[comp.astype(int)] + stds[comp.astype(int)][:, None] * rng.normal(size=(256, 2))
    x0 = x0.astype(np.float32)
    eps = rng.normal(size=(256, 2)).astype(np.float32)
    paired = np.asarray(jax.jit(ot_pair)(x0, eps))
    indep = np.mean(np.sum((x0 - eps) ** 2, -1))
    ot = np.mean(np.sum((x0 - paired) ** 2, -1))
    # Independent pairing costs E||x0||^2 + 2 ~ 6.6 here; OT must cut it by far more
    # than sampling noise (it gets ~2.5).
    assert ot < 0.6 * indep
    # Re-pairing only permutes rows: the noise sample is unchanged as a set.
    np.testing.assert_array_equal(np.sort(paired, axis=0), np.sort(eps, axis=0))


def test_ot_coupling_in_corrupt_uses_the_masked_assignment():
    proc = LinearFlow(ot_coupling=True)
    key = jax.random.key(6)
    x0 = np.random.default_rng(7).normal(size=(16, 4, 2)).astype(np.float32) + 2.0
    mask = (np.arange(4)[None, :] < np.arange(16)[:, None] % 4 + 1).astype(np.float32)[
        ..., None
    ]  # [16, 4, 1]: 1..4 real rows
    t = np.full((16,), 0.3, np.float32)

    @jax.jit
    def run(key):
        xt, aux = proc.corrupt(key, x0, t, mask=mask)
        eps = jax.random.normal(key, x0.shape)
        return xt, aux["noise"], eps, ot_permutation(x0, eps, mask)

    xt, noise, eps, perm = map(np.asarray, run(key))
    expect = np.where(mask > 0, eps[perm], 0.0)
    np.testing.assert_allclose(noise, expect, atol=1e-6)
    x0m = np.where(mask > 0, x0, 0.0)
    np.testing.assert_allclose(xt, 0.7 * x0m + 0.3 * expect, atol=1e-5)
    # The masked OT pairing beats the identity pairing on the real entries, and is optimal
    # among a few hundred random pairings.
    m = np.broadcast_to(mask, x0.shape)

    def cost(p):
        return np.sum(m * (x0 - eps[p]) ** 2)

    rng = np.random.default_rng(8)
    assert cost(perm) < cost(np.arange(16))
    assert all(cost(perm) <= cost(rng.permutation(16)) + 1e-4 for _ in range(300))
