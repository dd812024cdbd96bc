"""VP, sub-VP and VE SDEs: closed forms, consistency of drift/diffusion with the
marginals, discretizations, prior, corruption and loss."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmodels.processes.sde import VESDE, VPSDE, subVPSDE

B0, B1 = 0.1, 20.0
SMIN, SMAX = 0.01, 50.0
TIMES = np.array([0.0, 0.1, 0.5, 0.9, 1.0], np.float32)


def _vp_hand(t: float) -> tuple[float, float]:
    log_a = -0.25 * t**2 * (B1 - B0) - 0.5 * t * B0
    return math.exp(log_a), math.sqrt(1.0 - math.exp(2 * log_a))


def test_marginal_coefs_match_closed_forms():
    coefs = jax.jit(lambda t: [p.marginal_coefs(t) for p in (VPSDE(), subVPSDE(), VESDE())])
    (vp_a, vp_s), (sub_a, sub_s), (ve_a, ve_s) = coefs(jnp.asarray(TIMES))
    for i, ti in enumerate(TIMES.tolist()):
        a, s = _vp_hand(ti)
        np.testing.assert_allclose(float(vp_a[i]), a, rtol=1e-5)
        np.testing.assert_allclose(float(vp_s[i]), s, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(float(sub_a[i]), a, rtol=1e-5)
        np.testing.assert_allclose(float(sub_s[i]), 1.0 - a**2, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(float(ve_a[i]), 1.0)
        np.testing.assert_allclose(float(ve_s[i]), SMIN * (SMAX / SMIN) ** ti, rtol=1e-5)
    # A number worked by hand: VP at t = 0.5 has log a = -0.25*0.25*19.9 - 0.025.
    np.testing.assert_allclose(float(vp_a[2]), math.exp(-1.26875), rtol=1e-6)


@pytest.mark.parametrize("sde", [VPSDE(), subVPSDE(), VESDE()], ids=["vp", "subvp", "ve"])
def test_drift_and_diffusion_generate_the_marginals(sde):
    """For dx = f(t) x dt + g(t) dw: d log a/dt = f and d s^2/dt = 2 f s^2 + g^2."""

    @jax.jit
    def parts(t):
        ones = jnp.ones_like(t)
        a_dot = jax.jvp(lambda u: sde.marginal_coefs(u)[0], (t,), (ones,))[1]
        var_dot = jax.jvp(lambda u: sde.marginal_coefs(u)[1] ** 2, (t,), (ones,))[1]
        return a_dot, var_dot, *sde.marginal_coefs(t), *sde.sde(jnp.ones((4, 3, 2)), t)

    a_dot, var_dot, a, s, drift, g = parts(jnp.array([0.05, 0.3, 0.7, 0.95]))
    assert g.shape == (4,)
    f = drift[:, 0, 0]  # drift is f(t) x and x = 1
    np.testing.assert_allclose(np.asarray(a_dot / a), np.asarray(f), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(var_dot), np.asarray(2 * f * s**2 + g**2), rtol=1e-3, atol=1e-5
    )


def test_marginal_broadcasts_over_leaf_rank():
    sde = VPSDE()
    shapes = [(2, 3), (2, 4, 4), (2, 3, 3, 2)]
    run = jax.jit(
        lambda t: ([sde.marginal(jnp.ones(sh), t) for sh in shapes], sde.marginal_coefs(t))
    )
    outs, (a, s) = run(jnp.array([0.2, 0.8]))
    for shape, (mean, std) in zip(shapes, outs):
        assert mean.shape == shape and std.shape == (2,)
        np.testing.assert_allclose(np.asarray(mean[1]), float(a[1]), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(std), np.asarray(s))


def test_vp_discretize_is_ddpm():
    sde = VPSDE(N=100)
    n = 1000
    grid = jnp.arange(n) / (n - 1)

    @jax.jit
    def parts(t, grid):
        f, g = sde.discretize(jnp.full((3, 2), 2.0), t)
        return f, g, jnp.sum(jnp.log1p(-VPSDE(N=n).discrete_betas(grid)))

    f, g, sum_log_alphas = parts(jnp.array([0.0, 0.5, 1.0]), grid)
    betas = np.linspace(B0 / 100, B1 / 100, 100)
    idx = [0, 49, 99]  # int(t (N - 1))
    for row, i in enumerate(idx):
        np.testing.assert_allclose(float(g[row]), math.sqrt(betas[i]), rtol=1e-5)
        np.testing.assert_allclose(
            np.asarray(f[row]), (math.sqrt(1 - betas[i]) - 1) * 2.0, rtol=1e-5
        )
    # The DDPM table and the continuous SDE agree: sum log(1 - beta_i) ~ log a(1)^2 =
    # -int beta, up to the O(1/N) term -sum beta_i^2 / 2 (0.7 % here).
    np.testing.assert_allclose(float(sum_log_alphas), -(B0 + B1) / 2, rtol=0.01)


def test_ve_discretize_is_smld():
    sde = VESDE(N=5)
    sig = SMIN * (SMAX / SMIN) ** (np.arange(5) / 4)
    disc = jax.jit(lambda t: sde.discretize(jnp.ones((t.shape[0], 2)), t))
    f, g = disc(jnp.array([0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(np.asarray(f), 0.0)
    want = [SMIN, math.sqrt(sig[2] ** 2 - sig[1] ** 2), math.sqrt(sig[4] ** 2 - sig[3] ** 2)]
    np.testing.assert_allclose(np.asarray(g), want, rtol=1e-5)
    # Telescoping: the SMLD increments add up to sigma_max^2.
    _, g_all = disc(jnp.arange(5) / 4)
    np.testing.assert_allclose(float(np.sum(np.asarray(g_all) ** 2)), SMAX**2, rtol=1e-5)


def test_subvp_discretize_is_euler_maruyama():
    sde = subVPSDE(N=4)
    x = jnp.full((1, 2), 3.0)
    (f, g), (drift, diff) = jax.jit(lambda t: (sde.discretize(x, t), sde.sde(x, t)))(
        jnp.array([0.3])
    )
    np.testing.assert_allclose(np.asarray(f), np.asarray(drift) / 4, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g), np.asarray(diff) * 0.5, rtol=1e-6)


def test_reverse_discretize_probability_flow_halves_the_score_term():
    sde = VPSDE(N=100)
    t = jnp.array([0.4, 0.6])
    x = jnp.array([[1.0, -2.0], [0.5, 0.0]])
    score = jnp.array([[0.3, 0.1], [-1.0, 2.0]])
    (f, g), (rf, rg), (of, og) = jax.jit(
        lambda: (
            sde.discretize(x, t),
            sde.reverse_discretize(x, t, score, probability_flow=False),
            sde.reverse_discretize(x, t, score, probability_flow=True),
        )
    )()
    np.testing.assert_allclose(np.asarray(rf), np.asarray(f - g[:, None] ** 2 * score), 1e-6)
    np.testing.assert_allclose(np.asarray(of), np.asarray(f - 0.5 * g[:, None] ** 2 * score), 1e-6)
    np.testing.assert_allclose(np.asarray(rg), np.asarray(g))
    np.testing.assert_array_equal(np.asarray(og), 0.0)


def test_transition_matches_gdss_formulas():
    t, dt = 0.6, -0.01
    tt, dd = jnp.array([t]), jnp.array([dt])
    x = jnp.array([[2.0]])
    # GDSS VPSDE.transition: log m = dt/4 (2 b0 + (2t + dt)(b1 - b0)), mean = x e^{-log m}.
    log_m = 0.25 * dt * (2 * B0 + (2 * t + dt) * (B1 - B0))
    sub = subVPSDE()
    vp_out, ve_out, sub_out, hi, lo = jax.jit(
        lambda: (
            VPSDE().transition(x, tt, dd),
            VESDE().transition(x, tt, dd),
            sub.transition(x, tt, dd),
            sub.marginal_coefs(tt),
            sub.marginal_coefs(tt + dd),
        )
    )()
    mean, std = vp_out
    np.testing.assert_allclose(float(mean[0, 0]), 2.0 * math.exp(-log_m), rtol=1e-5)
    np.testing.assert_allclose(float(std[0]), math.sqrt(1 - math.exp(2 * log_m)), rtol=1e-4)
    # VE: mean x, variance sigma(t)^2 - sigma(t + dt)^2.
    mean, std = ve_out
    var = (SMIN * (SMAX / SMIN) ** t) ** 2 - (SMIN * (SMAX / SMIN) ** (t + dt)) ** 2
    np.testing.assert_allclose(float(mean[0, 0]), 2.0)
    np.testing.assert_allclose(float(std[0]), math.sqrt(var), rtol=1e-4)
    # sub-VP: the forward kernel from t + dt to t adds exactly the transition variance.
    _, std = sub_out
    (a_hi, s_hi), (a_lo, s_lo) = hi, lo
    m = float(a_hi[0] / a_lo[0])
    np.testing.assert_allclose(
        float(s_hi[0]) ** 2, m**2 * float(s_lo[0]) ** 2 + float(std[0]) ** 2, rtol=1e-4
    )


def test_prior_std_and_mask():
    mask = jnp.concatenate([jnp.ones((1000, 3, 1)), jnp.zeros((1000, 1, 1))], axis=1)
    cases = [
        (VPSDE(), 1.0),
        (subVPSDE(), 1.0),
        (VESDE(), 1.0),  # GDSS's VE prior
        (VESDE(prior_scale=None), SMAX),  # score_sde's
    ]
    draws = jax.jit(lambda key: [s.prior(key, (1000, 4, 2), mask=mask) for s, _ in cases])
    for (_, want), x in zip(cases, draws(jax.random.key(0))):
        x = np.asarray(x)
        assert x.shape == (1000, 4, 2)
        np.testing.assert_array_equal(x[:, 3], 0.0)
        np.testing.assert_allclose(x[:, :3].std(), want, rtol=0.03)


def test_corrupt_empirical_moments_and_mask():
    key = jax.random.key(1)
    b = 20000
    t = jnp.full((b,), 0.3)
    x0 = jnp.broadcast_to(jnp.array([[1.5], [-0.5], [0.0]]), (b, 3, 1))
    mask = jnp.array([1.0, 1.0, 0.0])[None, :, None]  # the third entry is padding
    sdes = [VPSDE(), subVPSDE(), VESDE(sigma_max=2.0)]
    outs = jax.jit(
        lambda key: [(p.corrupt(key, x0, t, mask=mask), p.marginal_coefs(t[:1])) for p in sdes]
    )(key)
    for (xt, aux), (a, s) in outs:
        xt = np.asarray(xt)
        np.testing.assert_array_equal(xt[:, 2], 0.0)
        np.testing.assert_array_equal(np.asarray(aux["noise"])[:, 2], 0.0)
        np.testing.assert_allclose(np.asarray(aux["std"]), float(s[0]), rtol=1e-6)
        for j, v in enumerate([1.5, -0.5]):
            se = float(s[0]) / math.sqrt(b)
            assert abs(xt[:, j].mean() - float(a[0]) * v) < 5 * se
            np.testing.assert_allclose(xt[:, j].std(), float(s[0]), rtol=0.03)
        np.testing.assert_allclose(
            xt[:, :2],
            np.asarray(a[0] * x0[:, :2] + s[0] * aux["noise"][:, :2]),
            rtol=1e-5,
            atol=1e-6,
        )


def test_loss_equals_hand_computation():
    pred = jnp.array([[[1.0], [2.0], [9.0]], [[-1.0], [0.5], [7.0]]])  # [2, 3, 1]
    noise = jnp.array([[[0.5], [-1.0], [0.0]], [[1.0], [2.0], [0.0]]])
    std = jnp.array([0.5, 2.0])
    mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])[..., None]
    aux = {"noise": noise, "std": std}
    # example 0: (0.5 + 0.5)^2 + (1 - 1)^2 = 1;  example 1: (-2 + 1)^2 + (1 + 2)^2 = 10
    sq = np.array([1.0, 10.0])
    x = jnp.zeros_like(pred)
    t = jnp.zeros(2)
    got_sum, got_mean, got_all = jax.jit(
        lambda: (
            VPSDE().loss(pred, x, x, t, aux, mask=mask),
            VPSDE(reduce_mean=True).loss(pred, x, x, t, aux, mask=mask),
            VESDE().loss(pred, x, x, t, aux),
        )
    )()
    np.testing.assert_allclose(np.asarray(got_sum), 0.5 * sq, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got_mean), sq / 2, rtol=1e-6)
    # Unmasked: the padded entries' (9 * 0.5)^2 and (7 * 2)^2 now count.
    np.testing.assert_allclose(np.asarray(got_all), 0.5 * (sq + [20.25, 196.0]), rtol=1e-6)


def test_loss_vanishes_at_the_exact_conditional_score():
    """pred = -z / s (the score of p(x_t | x_0)) gives exactly zero loss."""
    sde = VPSDE()

    @jax.jit
    def loss_at_exact(key):
        x0 = jax.random.normal(jax.random.key(2), (8, 5, 3))
        t = jnp.linspace(0.1, 0.9, 8)
        xt, aux = sde.corrupt(key, x0, t)
        mean, std = sde.marginal(x0, t)
        pred = -(xt - mean) / std[:, None, None] ** 2
        return sde.loss(pred, x0, xt, t, aux)

    np.testing.assert_allclose(np.asarray(loss_at_exact(jax.random.key(3))), 0.0, atol=1e-6)
