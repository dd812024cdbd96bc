"""Discrete noise levels (NCSN/CDVAE) and annealed Langevin dynamics with an exact score.

Data: the 1-D mixture 0.3 N(-2, 0.3^2) + 0.7 N(1.5, 0.5^2). At noise level sigma the
noised density is again a mixture, so ``GaussianMixture.score(x, 1, sigma)`` is exact.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.mixture import GaussianMixture
from genmodels.processes.levels import NoiseLevels
from genmodels.samplers.langevin import annealed_langevin_sample

MIX = GaussianMixture(weights=(0.3, 0.7), means=((-2.0,), (1.5,)), stds=(0.3, 0.5))


def exact_score(state, sigma, ctx):
    """Score of the mixture noised with std ``sigma`` [B]; leaf "x" is [B, N, 1]."""
    del ctx
    x = state["x"]
    n = x.shape[1]
    flat = MIX.score(x.reshape(-1, 1), 1.0, jnp.repeat(sigma, n))
    return {"x": flat.reshape(x.shape)}


# ------------------------------------------------------------------------------------
# NoiseLevels
# ------------------------------------------------------------------------------------


def test_levels_are_geometric():
    lv = NoiseLevels(sigma_begin=10.0, sigma_end=0.01, num_levels=50)  # CDVAE's
    s = np.asarray(lv.sigmas)
    assert s.shape == (50,)
    np.testing.assert_allclose([s[0], s[-1]], [10.0, 0.01], rtol=1e-5)
    np.testing.assert_allclose(s[1:] / s[:-1], (0.001) ** (1 / 49), rtol=1e-4)


def test_levels_corrupt_prior_and_mask():
    lv = NoiseLevels(sigma_begin=5.0, sigma_end=0.1, num_levels=4)
    b = 8000
    x0 = jnp.broadcast_to(jnp.array([[1.0], [2.0], [0.0]]), (b, 3, 1))
    mask = jnp.array([1.0, 1.0, 0.0])[None, :, None]

    @jax.jit
    def run(key):
        k1, k2 = jax.random.split(key)
        return lv.corrupt(k1, x0, None, mask=mask), lv.prior(k2, (b, 3, 1), mask=mask)

    (xt, aux), prior = run(jax.random.key(0))
    xt, z = np.asarray(xt), np.asarray(aux["noise"])
    level, sigma = np.asarray(aux["level"]), np.asarray(aux["sigma"])
    np.testing.assert_allclose(sigma, np.asarray(lv.sigmas)[level])
    np.testing.assert_array_equal(np.asarray(aux["std"]), sigma)
    # every level is drawn about equally often (1/4 each, standard error ~0.005)
    np.testing.assert_allclose(np.bincount(level, minlength=4) / b, 0.25, atol=0.03)
    np.testing.assert_allclose(xt, np.asarray(x0) + sigma[:, None, None] * z, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(xt[:, 2], 0.0)
    np.testing.assert_allclose(z[:, :2].std(), 1.0, rtol=0.03)
    prior = np.asarray(prior)
    np.testing.assert_array_equal(prior[:, 2], 0.0)
    np.testing.assert_allclose(prior[:, :2].std(), 5.0, rtol=0.03)


def test_levels_loss_matches_cdvae_coord_loss():
    """Per position 1/2 ||sigma pred + z||^2: CDVAE's coord_loss, per-atom mean of the xyz sum."""
    rng = np.random.default_rng(0)
    b, n = 2, 4
    pred = rng.normal(size=(b, n, 3)).astype(np.float32)  # scores
    z = rng.normal(size=(b, n, 3)).astype(np.float32)
    sigma = np.array([0.5, 2.0], np.float32)
    x0 = rng.normal(size=(b, n, 3)).astype(np.float32)
    xt = x0 + sigma[:, None, None] * z
    node = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.float32)  # atoms per crystal: 3, 2
    aux = {"noise": jnp.asarray(z), "sigma": jnp.asarray(sigma)}

    @jax.jit
    def losses(pred):
        args = (pred, x0, xt, None, aux)
        return (
            NoiseLevels().loss(*args, mask=node[..., None]),
            NoiseLevels(reduce_mean=False).loss(*args, mask=node[..., None]),
        )

    got_mean, got_sum = (np.asarray(v) for v in losses(jnp.asarray(pred)))
    # CDVAE (txie-93/cdvae model.py coord_loss) with its network output d = sigma * score:
    # target = (x0 - xt) / sigma^2, loss_atom = 1/2 sigma^2 ||target - d / sigma||^2.
    d = sigma[:, None, None] * pred
    target = (x0 - xt) / sigma[:, None, None] ** 2
    per_atom = 0.5 * sigma[:, None] ** 2 * np.sum((target - d / sigma[:, None, None]) ** 2, -1)
    want_mean = [per_atom[i][node[i] > 0].mean() for i in range(b)]
    want_sum = [per_atom[i][node[i] > 0].sum() for i in range(b)]
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-5)
    np.testing.assert_allclose(got_sum, want_sum, rtol=1e-5)
    # and by hand on one atom: sigma = 0.5, pred = (1, 0, 0), z = (0.5, 1, 0) -> 1/2 (1 + 1)
    one = NoiseLevels().loss(
        jnp.array([[1.0, 0.0, 0.0]]),
        None,
        None,
        None,
        {"noise": jnp.array([[0.5, 1.0, 0.0]]), "sigma": jnp.array([0.5])},
    )
    np.testing.assert_allclose(np.asarray(one), [1.0], rtol=1e-6)


# ------------------------------------------------------------------------------------
# Annealed Langevin dynamics
# ------------------------------------------------------------------------------------


def test_annealed_langevin_reproduces_mixture():
    b, n = 500, 8  # 4000 samples
    levels = NoiseLevels(sigma_begin=5.0, sigma_end=0.01, num_levels=20)
    n_each, lr = 30, 5e-5
    run = jax.jit(
        lambda key: annealed_langevin_sample(
            exact_score,
            levels,
            {},
            key,
            shapes={"x": (b, n, 1)},
            n_steps_each=n_each,
            step_lr=lr,
            denoise=True,
        )
    )
    state, info = run(jax.random.key(0))
    assert info["nfe"] == 20 * n_each + 1
    x = np.asarray(state["x"]).reshape(-1)
    comp = MIX.assign(x[:, None])
    w, mu, sd = (np.asarray(v) for v in MIX.arrays())
    # 4000 samples: standard errors ~0.007 (weight), ~0.01 (mean), ~2 % (std).
    for k in range(2):
        xs = x[comp == k]
        assert abs(len(xs) / len(x) - w[k]) < 0.04
        assert abs(xs.mean() - mu[k, 0]) < 0.06
        assert abs(xs.std() / sd[k] - 1.0) < 0.10


def test_annealed_langevin_masks_constrain_nfe_and_min_sigma():
    b, n = 6, 5
    node = np.ones((b, n, 1), np.float32)
    node[:, 3:] = 0.0
    ctx = {"masks": {"x": jnp.asarray(node)}}
    sigmas = np.array([4.0, 2.0, 1.0, 0.5, 0.25], np.float32)
    calls, seen_sigma = [], []

    def score_fn(state, sigma, ctx):
        def record(s):
            calls.append(1)
            seen_sigma.append(float(np.asarray(s)[0]))

        jax.debug.callback(record, sigma)
        return exact_score(state, sigma, ctx)

    def clip(state, ctx):
        return {"x": jnp.clip(state["x"], -1.0, 1.0)}

    def run(key, min_sigma, denoise, constrain):
        return annealed_langevin_sample(
            score_fn,
            sigmas,
            ctx,
            key,
            shapes={"x": (b, n, 1)},
            n_steps_each=3,
            step_lr=1e-3,
            min_sigma=min_sigma,
            denoise=denoise,
            constrain=constrain,
            return_trajectory=True,
        )

    def both(key):
        return run(key, 0.6, True, clip), run(key, 0.0, False, lambda s, c: s)

    (cut, cut_info), (full, full_info) = jax.jit(both)(jax.random.key(1))
    jax.effects_barrier()
    # min_sigma = 0.6 keeps 4, 2, 1 (three levels); denoise adds one call.
    assert cut_info["nfe"] == 3 * 3 + 1
    assert full_info["nfe"] == 5 * 3
    assert len(calls) == cut_info["nfe"] + full_info["nfe"]
    np.testing.assert_allclose(np.asarray(cut_info["sigmas"]), [4.0, 2.0, 1.0])
    # the sampler passes the current sigma as t: each level 3 times, then the denoising call
    assert sorted(seen_sigma) == sorted([4.0] * 6 + [2.0] * 6 + [1.0] * 7 + [0.5, 0.25] * 3)
    for state, info in ((cut, cut_info), (full, full_info)):
        traj = np.asarray(info["trajectory"]["x"])
        assert traj.shape[1:] == (b, n, 1)
        np.testing.assert_array_equal(traj[:, :, 3:], 0.0)
        np.testing.assert_array_equal(np.asarray(state["x"])[:, 3:], 0.0)
    # the clip hook holds at every level; the unconstrained run (starting from N(0, 4^2))
    # leaves [-1, 1], so the check can fail
    assert np.abs(np.asarray(cut_info["trajectory"]["x"])).max() <= 1.0
    assert np.abs(np.asarray(full_info["trajectory"]["x"][0])).max() > 1.0
    assert math.isfinite(float(np.abs(np.asarray(full["x"])).max()))
