"""Euler (flow), EDM/PFGM++ Heun and diffrax probability-flow samplers on exact fields.

Data with a closed-form field: a 2-D Gaussian mixture (exact flow velocity, EDM denoiser
and VP score from :class:`GaussianMixture`) and three weighted points (exact PFGM++
denoiser). A sampler fed the exact field must reproduce the data: component weights
within 0.03 (binomial std ~0.007 at 4000 samples), means within 0.06, variances within
15% (std of a variance estimate with ~1200 samples is ~4%); points within 1e-3.

Every run is also instrumented (to keep the number of compilations low, the same runs
check the contract): the state has a padded third coordinate (mask [1, 1, 0]) into which
the field writes garbage, and a second leaf ``y`` that only the ``constrain`` hook sets;
``jax.debug.callback`` counters give the exact number of field and hook calls.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from genmodels.core.mixture import GaussianMixture
from genmodels.processes.flow import LinearFlow
from genmodels.processes.pfgmpp import PFGMPP, exact_denoiser, radius_cdf
from genmodels.samplers.ode import (
    edm_euler_sample,
    euler_sample,
    heun_sample,
    probability_flow_sample,
)

GM = GaussianMixture(weights=(0.3, 0.7), means=((-2.0, 0.0), (1.5, 1.0)), stds=(0.3, 0.5))
B = 4000
POINTS = np.array([[-1.0, -1.0], [1.0, -0.5], [0.0, 1.2]], np.float32)
POINT_W = np.array([0.2, 0.3, 0.5], np.float32)


def _check_mixture(x: np.ndarray) -> None:
    x = np.asarray(x, np.float64)
    assert np.all(np.isfinite(x))
    lab = GM.assign(x)
    w, mu, sd = (np.asarray(a) for a in GM.arrays())
    for k in range(2):
        xs = x[lab == k]
        assert abs(len(xs) / len(x) - w[k]) < 0.03, (k, len(xs) / len(x))
        np.testing.assert_allclose(xs.mean(0), mu[k], atol=0.06)
        np.testing.assert_allclose(xs.var(0), sd[k] ** 2, rtol=0.15)


def _check_points(x: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(np.asarray(x)[:, None] - POINTS[None], axis=-1)  # [B, 3]
    lab = d.argmin(1)
    assert d.min(1).max() < 1e-3
    np.testing.assert_allclose(np.bincount(lab, minlength=3) / len(x), POINT_W, atol=0.03)
    return lab


def flow_velocity(state, t, ctx):
    """Exact velocity of x_t = (1 - t) x0 + t eps: (x - E[x0 | x_t]) / t."""
    x = state["x"]
    return {"x": (x - GM.denoise(x, 1.0 - t, t)) / t[:, None]}


def edm_denoiser(state, sigma, ctx):
    return {"x": GM.denoise(state["x"], 1.0, sigma)}


BETA_MIN, BETA_MAX = 0.1, 20.0  # VP SDE of Song et al. 2021 (score_sde defaults)


def vp_drift(state, t, ctx):
    """Probability-flow drift f - g^2/2 score of the VP SDE with the exact mixture score."""
    x = state["x"]
    beta = BETA_MIN + t * (BETA_MAX - BETA_MIN)  # [B]
    log_a = -0.25 * t**2 * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN
    a = jnp.exp(log_a)
    s = jnp.sqrt(-jnp.expm1(2.0 * log_a))
    return {"x": -0.5 * beta[:, None] * (x + GM.score(x, a, s))}


MASK = np.array([1.0, 1.0, 0.0], np.float32)  # broadcasts to [B, 3]: coordinate 2 is padding
SHAPES = {"x": (B, 3), "y": (B, 1)}


def instrument(field, y_out):
    """Wrap a 2-D field for the padded two-leaf state; count field and constrain calls."""
    calls = {"field": 0, "constrain": 0}

    def bump(kind):
        def cb():
            calls[kind] += 1

        return cb

    def wrapped(state, t, ctx):
        jax.debug.callback(bump("field"))
        out = field({"x": state["x"][:, :2]}, t, ctx)["x"]
        garbage = jnp.full((out.shape[0], 1), 3.0)  # only the sampler's masking removes it
        return {"x": jnp.concatenate([out, garbage], axis=1), "y": y_out(state)}

    def constrain(state, ctx):
        jax.debug.callback(bump("constrain"))
        return {"x": state["x"], "y": jnp.full_like(state["y"], 0.25)}

    return wrapped, constrain, calls


def check_contract(x, info, calls, constrain_calls):
    jax.effects_barrier()
    xs = np.asarray(x["x"])
    assert np.all(xs[:, 2] == 0.0)
    np.testing.assert_array_equal(np.asarray(x["y"]), 0.25)
    if "trajectory" in info:
        assert np.all(np.asarray(info["trajectory"]["x"])[..., 2] == 0.0)
    assert calls["field"] == int(info["nfe"])
    assert calls["constrain"] == constrain_calls
    return xs[:, :2]


def _zero(state):
    return jnp.zeros_like(state["y"])


def _identity(state):
    return state["y"]


CTX = {"masks": {"x": jnp.asarray(MASK)}}


def test_euler_flow_reproduces_mixture():
    field, con, calls = instrument(flow_velocity, _zero)
    procs = {"x": LinearFlow(), "y": LinearFlow()}
    run = jax.jit(
        lambda k, ctx: euler_sample(
            field, procs, ctx, k, shapes=SHAPES, constrain=con, return_trajectory=True
        )
    )
    x, info = run(jax.random.key(0), CTX)
    assert info["nfe"] == 100 and info["trajectory"]["x"].shape == (101, B, 3)
    _check_mixture(check_contract(x, info, calls, constrain_calls=101))


def test_euler_on_a_given_grid():
    """Any decreasing grid: with v(x, t) = t the Euler sum is sum_k (t_{k+1} - t_k) t_k."""
    g = np.array([1.0, 0.9, 0.5, 0.45, 0.0], np.float32)
    vel = lambda s, t, c: {"x": jnp.broadcast_to(t[:, None], s["x"].shape)}  # noqa: E731
    x, info = jax.jit(
        lambda k: euler_sample(
            vel, {"x": LinearFlow()}, {}, k, shapes={"x": (3, 2)}, grid=g, return_trajectory=True
        )
    )(jax.random.key(0))
    traj = np.asarray(info["trajectory"]["x"])
    steps = np.cumsum((g[1:] - g[:-1]) * g[:-1])  # [4]
    np.testing.assert_allclose(traj[1:], traj[0][None] + steps[:, None, None], atol=1e-6)
    np.testing.assert_allclose(np.asarray(x["x"]), traj[-1])
    assert info["nfe"] == 4


def test_heun_edm_reproduces_mixture():
    field, con, calls = instrument(edm_denoiser, _identity)
    procs = {"x": PFGMPP(D=float("inf")), "y": PFGMPP(D=float("inf"))}
    run = jax.jit(
        lambda k, ctx: heun_sample(
            field, procs, ctx, k, shapes=SHAPES, constrain=con, return_trajectory=True
        )
    )
    x, info = run(jax.random.key(1), CTX)
    assert info["nfe"] == 35
    np.testing.assert_allclose(
        np.asarray(info["sigmas"])[[0, 17, 18]], [80.0, 0.002, 0.0], rtol=1e-5
    )
    _check_mixture(check_contract(x, info, calls, constrain_calls=19))


def test_heun_pfgmpp_reproduces_points():
    """Exact PFGM++ field (D = 128) on 3 weighted points, from PFGM++'s Beta-prime prior."""
    den = exact_denoiser(POINTS, POINT_W, 128.0)
    field, con, calls = instrument(lambda s, sig, c: {"x": den(s["x"], sig)}, _identity)
    procs = {"x": PFGMPP(D=128.0), "y": PFGMPP(D=float("inf"))}
    run = jax.jit(
        lambda k, ctx: heun_sample(
            field, procs, ctx, k, shapes=SHAPES, steps=18, constrain=con, return_trajectory=True
        )
    )
    x, info = run(jax.random.key(2), CTX)
    assert info["nfe"] == 35
    # The start is PFGM++'s prior at sigma_max: radius law I_{R^2/(R^2+r^2)}(N/2, D/2).
    x_init = np.asarray(info["trajectory"]["x"][0])
    res = scipy.stats.kstest(
        np.linalg.norm(x_init, axis=1), lambda R: radius_cdf(R, 80.0 * np.sqrt(128.0), 2, 128.0)
    )
    assert res.pvalue > 1e-3, res
    _check_points(check_contract(x, info, calls, constrain_calls=19))


def test_edm_euler_lands_on_a_point_mass_and_matches_fine_heun():
    """Euler in sigma: with a constant denoiser ``D = y`` the last step
    ``x + (0 - s)(x - y) / s`` lands exactly on ``y``; with the exact PFGM++ denoiser of
    3 points and many levels it ends near Heun's result from the same prior draw."""
    y = jnp.asarray([[0.5, -1.5]])
    procs = {"x": PFGMPP(D=128.0)}
    shapes = {"x": (64, 2)}
    const = lambda s, sig, c: {"x": jnp.broadcast_to(y, s["x"].shape)}  # noqa: E731
    x, info = jax.jit(lambda k: edm_euler_sample(const, procs, {}, k, shapes=shapes, steps=5))(
        jax.random.key(0)
    )
    assert info["nfe"] == 5
    np.testing.assert_allclose(
        np.asarray(x["x"]), np.broadcast_to(np.asarray(y), (64, 2)), atol=1e-5
    )

    den = exact_denoiser(POINTS, POINT_W, 128.0)
    field = lambda s, sig, c: {"x": den(s["x"], sig)}  # noqa: E731
    key = jax.random.key(3)
    xe, _ = jax.jit(lambda k: edm_euler_sample(field, procs, {}, k, shapes=shapes, steps=400))(key)
    xh, _ = jax.jit(lambda k: heun_sample(field, procs, {}, k, shapes=shapes, steps=400))(key)
    np.testing.assert_allclose(np.asarray(xe["x"]), np.asarray(xh["x"]), atol=0.05)


def test_edm_euler_starts_at_its_own_sigma_max():
    """``sigma_max`` moves the start: the first state is the PFGM++ prior at that level
    (the same draw as Heun's), not at the process's own sigma_max (80)."""
    procs = {"x": PFGMPP(D=128.0)}
    shapes = {"x": (4000, 2)}
    ident = lambda s, sig, c: {"x": s["x"]}  # noqa: E731  (D = x: the state never moves)
    key = jax.random.key(5)
    x, _ = edm_euler_sample(ident, procs, {}, key, shapes=shapes, steps=3, sigma_max=5.0)
    start, _ = heun_sample(ident, procs, {}, key, shapes=shapes, steps=1, sigma_max=5.0)
    np.testing.assert_allclose(np.asarray(x["x"]), np.asarray(start["x"]), rtol=1e-6)
    r = np.linalg.norm(np.asarray(x["x"]), axis=1)
    res = scipy.stats.kstest(r, lambda R: radius_cdf(R, 5.0 * np.sqrt(128.0), 2, 128.0))
    assert res.pvalue > 1e-3, res


def test_pfgmpp_large_D_follows_the_edm_ode():
    """From the same initial noise, the D = 1e6 field and EDM's send (almost) every sample
    to the same point: the PFGM++ ODE tends to the EDM ODE as D grows (the D = 1e6 prior
    is checked against EDM's in tests/processes/test_pfgmpp.py)."""
    procs = {"x": PFGMPP(D=float("inf"))}

    def run(key):
        outs = []
        for D in (1e6, float("inf")):
            den = exact_denoiser(POINTS, POINT_W, D)
            fn = lambda s, sig, c, den=den: {"x": den(s["x"], sig)}  # noqa: E731
            outs.append(heun_sample(fn, procs, {}, key, shapes={"x": (B, 2)})[0]["x"])
        return outs

    x_big, x_edm = jax.jit(run)(jax.random.key(3))
    same = _check_points(x_big) == _check_points(x_edm)
    assert same.mean() > 0.99


@pytest.mark.parametrize("steps", [20, None], ids=["fixed", "adaptive"])
def test_probability_flow_vp_reproduces_mixture(steps):
    field, con, calls = instrument(vp_drift, _zero)
    procs = {"x": LinearFlow(), "y": LinearFlow()}
    run = jax.jit(
        lambda k, ctx: probability_flow_sample(
            field,
            procs,
            ctx,
            k,
            shapes=SHAPES,
            steps=steps,
            constrain=con,
            return_trajectory=steps is not None,
        )
    )
    x, info = run(jax.random.key(4), CTX)
    if steps is not None:
        # Tsit5 has 7 stages; a non-identity constrain marks every step as a jump, so the
        # first-same-as-last stage is re-evaluated at the constrained state.
        assert info["nfe"] == 7 * steps
        expected = steps + 1
    else:
        assert int(info["nfe"]) == 1 + 6 * int(info["num_steps"])
        assert 5 < int(info["num_steps"]) < 200
        expected = 2  # diffrax owns the loop: prior and result only
    _check_mixture(check_contract(x, info, calls, constrain_calls=expected))


def test_probability_flow_fixed_nfe_without_constrain():
    """With the identity hook the FSAL stage is reused: 1 + 6 K calls for Tsit5."""
    calls = {"n": 0}

    def drift(state, t, ctx):
        jax.debug.callback(lambda: calls.__setitem__("n", calls["n"] + 1))
        return {"x": -state["x"] * t[:, None]}

    x, info = jax.jit(
        lambda k: probability_flow_sample(
            drift, {"x": LinearFlow()}, {}, k, shapes={"x": (4, 2)}, steps=8
        )
    )(jax.random.key(6))
    jax.effects_barrier()
    assert info["nfe"] == 1 + 6 * 8 == calls["n"]
