"""PFGM++: radius law of the perturbation kernel, EDM limit, preconditioning and loss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from genmodels.processes.pfgmpp import (
    PFGMPP,
    exact_denoiser,
    radius_cdf,
    radius_density,
)


def _numeric_cdf(r: float, n: int, d: float):
    """CDF of the radius by integrating radius_density on a fine grid (trapezoid)."""
    hi = r * 60.0 if d < 4 else r * 8.0
    grid = np.concatenate([[0.0], np.geomspace(r * 1e-6, hi, 20001)])
    pdf = np.asarray(radius_density(jnp.asarray(grid[1:]), r, n, d), np.float64)
    pdf = np.concatenate([[0.0], pdf])
    cdf = scipy.integrate.cumulative_trapezoid(pdf, grid, initial=0.0)
    return lambda x: np.interp(x, grid, cdf)


@pytest.mark.parametrize("n,d", [(6, 128.0), (3, 1.0)])
def test_radius_density_is_normalized_and_matches_beta_cdf(n, d):
    r = 2.0 * math.sqrt(d)
    cdf = _numeric_cdf(r, n, d)
    xs = np.array([0.3, 1.0, 2.0, 3.0, 5.0]) * 2.0
    np.testing.assert_allclose(cdf(xs), radius_cdf(xs, r, n, d), atol=2e-3)
    # Total mass (the tail beyond the integration range is given by the Beta CDF).
    far = r * (60.0 if d < 4 else 8.0)
    assert cdf(far) + (1.0 - radius_cdf(far, r, n, d)) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("d", [128.0, 1.0])
def test_perturbation_radius_follows_its_density(d):
    """KS test of ||x - y|| against the numerically integrated radius density, separately
    for examples with N = 3 and N = 6 real entries (masked padding), and a uniform
    direction (isotropic second moment)."""
    proc = PFGMPP(D=d)
    b = 6000
    sigma = 0.7
    y = jnp.asarray(np.random.default_rng(0).normal(size=(b, 3, 2)), jnp.float32)
    rows = np.where(np.arange(b) % 2 == 0, 3, 2)  # N = 6 or N = 3 (one column masked)
    mask = np.ones((b, 3, 2), np.float32)
    mask[rows == 2, :, 1] = 0.0
    # Arrays go in as arguments: captured as constants they would be folded by XLA.
    x, aux = jax.jit(lambda k, y, m: proc.corrupt(k, y, jnp.full((b,), sigma), mask=m))(
        jax.random.key(1), y, mask
    )
    x, noise = np.asarray(x), np.asarray(aux["noise"])
    assert np.all(x[mask == 0] == 0.0) and np.all(noise[mask == 0] == 0.0)
    # x = y + noise up to float32 rounding of the (heavy-tailed for small D) noise.
    err = np.abs(x - noise - np.where(mask > 0, np.asarray(y), 0.0))
    assert np.all(err <= 1e-5 * (1.0 + np.abs(noise)))
    radius = np.linalg.norm(noise.reshape(b, -1), axis=1)
    r = sigma * math.sqrt(d)
    for n, sel in ((6, rows == 3), (3, rows == 2)):
        res = scipy.stats.kstest(radius[sel], _numeric_cdf(r, n, d))
        assert res.pvalue > 1e-3, (n, res)
    u = noise[rows == 3].reshape(-1, 6) / radius[rows == 3, None]
    np.testing.assert_allclose(u.T @ u / len(u), np.eye(6) / 6, atol=0.02)


def test_large_D_is_the_edm_gaussian_kernel():
    """D = 1e6: the radius is sigma * chi_N (KS), and the exact denoiser equals EDM's."""
    proc = PFGMPP(D=1e6)
    b, n, sigma = 5000, 4, 1.3
    x = np.asarray(jax.jit(lambda k: proc.prior_at(k, (b, n), sigma))(jax.random.key(2)))
    res = scipy.stats.kstest(np.linalg.norm(x, axis=1) / sigma, scipy.stats.chi(n).cdf)
    assert res.pvalue > 1e-3, res
    # Same for the PFGM++ analytic CDF (D large) vs chi: max gap is tiny.
    grid = np.linspace(0.05, 5.0, 50)
    gap = radius_cdf(grid * sigma, sigma * 1e3, n, 1e6) - scipy.stats.chi(n).cdf(grid)
    assert np.max(np.abs(gap)) < 1e-4

    pts = jnp.array([[-1.0, -1.0], [1.0, -0.5], [0.0, 1.2]])
    w = jnp.array([0.2, 0.3, 0.5])
    xq = jnp.asarray(np.random.default_rng(3).normal(size=(64, 2)) * 1.5, jnp.float32)
    sig = jnp.asarray(np.geomspace(0.05, 20.0, 64), jnp.float32)
    d_big, d_edm = jax.jit(
        lambda a, s: (exact_denoiser(pts, w, 1e6)(a, s), exact_denoiser(pts, w, float("inf"))(a, s))
    )(xq, sig)
    np.testing.assert_allclose(np.asarray(d_big), np.asarray(d_edm), atol=2e-3)


def test_exact_denoiser_is_the_kernel_posterior_mean():
    pts = np.array([[-1.0, -1.0], [1.0, -0.5], [0.0, 1.2]])
    w = np.array([0.2, 0.3, 0.5])
    x = np.array([[0.3, 0.1], [2.0, -3.0]])
    sigma = np.array([0.4, 2.5])
    d = 16.0
    got = np.asarray(jax.jit(exact_denoiser(pts, w, d))(x, sigma))
    for i in range(2):
        r2 = sigma[i] ** 2 * d
        k = w * (((x[i] - pts) ** 2).sum(-1) + r2) ** (-(2 + d) / 2)
        np.testing.assert_allclose(got[i], (k[:, None] * pts).sum(0) / k.sum(), rtol=1e-4)


def test_preconditioning_loss_and_prior_by_hand():
    proc = PFGMPP(D=float("inf"))
    sig = np.array([0.5, 2.0], np.float32)
    x0 = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]], np.float32)
    mask = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], np.float32)

    @jax.jit
    def run(key):
        k1, k2 = jax.random.split(key)
        aux = {"sigma": jnp.array([0.5, 0.5])}
        return (
            proc.precondition(sig),
            proc.loss_weight(sig),
            proc.denoised(jnp.full((2, 3), 2.0), jnp.ones((2, 3)), sig),
            proc.loss(jnp.zeros_like(x0), x0, x0, aux["sigma"], aux, mask=mask),
            proc.sample_time(k1, 20000),
            proc.prior(k2, (20000, 2), mask=jnp.array([1.0, 0.0])),
        )

    (c_skip, c_out, c_in, c_noise), weight, den, loss, s, z = jax.tree.map(
        np.asarray, run(jax.random.key(5))
    )
    # EDM Table 1 with sigma_data = 0.5.
    np.testing.assert_allclose(c_skip, [0.5, 0.25 / 4.25], rtol=1e-6)
    np.testing.assert_allclose(c_out, [0.25 / math.sqrt(0.5), 1.0 / math.sqrt(4.25)], rtol=1e-6)
    np.testing.assert_allclose(c_in, [1 / math.sqrt(0.5), 1 / math.sqrt(4.25)], rtol=1e-6)
    np.testing.assert_allclose(c_noise, [math.log(0.5) / 4, math.log(2.0) / 4], rtol=1e-6)
    np.testing.assert_allclose(weight, [8.0, 4.25 / 1.0], rtol=1e-6)
    np.testing.assert_allclose(den[:, 0], c_skip + 2.0 * c_out, rtol=1e-6)
    # lambda(0.5) = 8; masked means of x0^2: (1 + 4) / 2 and 1 / 3.
    np.testing.assert_allclose(loss, [8.0 * 2.5, 8.0 / 3.0], rtol=1e-6)
    # sigma ~ lognormal(P_mean, P_std) for training.
    assert abs(np.log(s).mean() + 1.2) < 0.03 and abs(np.log(s).std() - 1.2) < 0.03
    # EDM prior: N(0, sigma_max^2 I), padding zero.
    assert np.all(z[:, 1] == 0.0) and abs(z[:, 0].std() / 80.0 - 1.0) < 0.02
