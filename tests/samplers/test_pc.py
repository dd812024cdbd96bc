"""Predictor-corrector samplers and S4 against a Gaussian mixture with an exact score.

Data: the 1-D mixture 0.3 N(-2, 0.3^2) + 0.7 N(1.5, 0.5^2). Under every affine SDE the
noised marginal is again a mixture, so ``GaussianMixture.score(x, a(t), s(t))`` is the exact
score. One state holds three leaves, one per SDE (VP, sub-VP, VE): each sampler runs the
system of SDEs at once (as GDSS does for node features and adjacency) and every leaf must
reproduce the data. Leaves are padded ([B, N, 1] with 5-8 real entries per example), so
the same runs check that padding stays exactly 0 while real entries are still correct.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmodels.core.mixture import GaussianMixture
from genmodels.processes.sde import VESDE, VPSDE, subVPSDE
from genmodels.samplers.pc import (
    EulerMaruyama,
    LangevinCorrector,
    ReverseDiffusion,
    pc_sample,
    s4_sample,
)

MIX = GaussianMixture(weights=(0.3, 0.7), means=((-2.0,), (1.5,)), stds=(0.3, 0.5))
B, N = 500, 8
COUNTS = 5 + np.arange(B) % 4  # real entries per example: 5..8 (about 3250 in all)
NODE_MASK = (np.arange(N)[None, :] < COUNTS[:, None]).astype(np.float32)  # [B, N]
LEAVES = ("vp", "subvp", "ve")
CTX = {"masks": {k: jnp.asarray(NODE_MASK[..., None]) for k in LEAVES}}  # [B, N, 1]
SHAPES = {k: (B, N, 1) for k in LEAVES}

# Tolerances on about 3250 real samples per leaf: the mixture weight's standard error is
# ~0.008, a component mean's ~0.01 and a component std's ~2.5 % (relative).
TOL_WEIGHT, TOL_MEAN, TOL_STD, TOL_STD_FLOW = 0.04, 0.06, 0.10, 0.15


def exact_score(processes):
    """score_fn(state, t, ctx) with the mixture's exact score for each leaf's SDE."""

    def score_fn(state, t, ctx):
        del ctx
        out = {}
        for k, p in processes.items():
            x = state[k]  # [B, N, 1]
            a, s = p.marginal_coefs(t)  # [B], [B]
            n = x.shape[1]
            flat = MIX.score(x.reshape(-1, 1), jnp.repeat(a, n), jnp.repeat(s, n))
            out[k] = flat.reshape(x.shape)
        return out

    return score_fn


def mixture_errors(samples: np.ndarray) -> dict[str, float]:
    """Largest deviations of weights, means and (relative) stds from the mixture's."""
    x = np.asarray(samples).reshape(-1, 1)
    comp = MIX.assign(x)
    w, mu, sd = (np.asarray(v) for v in MIX.arrays())
    err = {"weight": 0.0, "mean": 0.0, "std": 0.0}
    for k in range(len(w)):
        xs = x[comp == k, 0]
        err["weight"] = max(err["weight"], abs(len(xs) / len(x) - w[k]))
        err["mean"] = max(err["mean"], abs(xs.mean() - mu[k, 0]))
        err["std"] = max(err["std"], abs(xs.std() / sd[k] - 1.0))
    return err


def _processes(probability_flow: bool):
    # GDSS's VE prior N(0, I) is far from p_T = N(0, 50^2) for sigma_max = 50. The reverse
    # SDE forgets that mismatch (it contracts it by (s(t)/s(T))^2) but the deterministic
    # probability-flow ODE does not, so the ODE runs use score_sde's N(0, sigma_max^2).
    ve = VESDE(prior_scale=None) if probability_flow else VESDE()
    return {"vp": VPSDE(), "subvp": subVPSDE(), "ve": ve}


SAMPLERS = {
    "euler_maruyama": (pc_sample, dict(predictor=EulerMaruyama())),
    "euler_maruyama+langevin": (pc_sample, dict(corrector=LangevinCorrector(snr=0.1))),
    "reverse_diffusion": (pc_sample, dict(predictor=ReverseDiffusion())),
    "reverse_diffusion+langevin": (
        pc_sample,
        dict(predictor=ReverseDiffusion(), corrector=LangevinCorrector(snr=0.1)),
    ),
    "probability_flow_euler": (pc_sample, dict(probability_flow=True)),
    "probability_flow_reverse": (
        pc_sample,
        dict(predictor=ReverseDiffusion(), probability_flow=True),
    ),
    "s4": (s4_sample, dict(snr=0.1)),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_reproduces_mixture_under_each_sde(name):
    sampler, kwargs = SAMPLERS[name]
    processes = _processes(kwargs.get("probability_flow", False))
    steps = 300
    run = jax.jit(
        lambda key, ctx: sampler(
            exact_score(processes), processes, ctx, key, shapes=SHAPES, steps=steps, **kwargs
        )
    )
    state, info = run(jax.random.key(0), CTX)
    n_corr = kwargs["corrector"].n_steps if "corrector" in kwargs else 0
    assert int(info["nfe"]) == steps * (1 + n_corr)
    real = NODE_MASK > 0
    for leaf in LEAVES:
        x = np.asarray(state[leaf])[..., 0]  # [B, N]
        assert np.all(x[~real] == 0.0), f"{leaf}: padding not exactly zero"
        assert np.all(np.isfinite(x))
        err = mixture_errors(x[real])
        # The ODE samplers map each prior draw deterministically: their component stds
        # carry the prior sample's fluctuation plus a first-order discretization error
        # (up to ~8 % at 300 steps over seeds 0-2), so they get a wider band.
        tol_std = TOL_STD_FLOW if kwargs.get("probability_flow") else TOL_STD
        assert err["weight"] < TOL_WEIGHT, (leaf, err)
        assert err["mean"] < TOL_MEAN, (leaf, err)
        assert err["std"] < tol_std, (leaf, err)


def _symmetric_clipped(state, ctx):
    """A constrain hook: symmetric adjacency with values clipped to [-1, 1]."""
    del ctx
    a = state["adj"]
    a = 0.5 * (a + jnp.swapaxes(a, -1, -2))
    return {**state, "adj": jnp.clip(a, -1.0, 1.0)}


def test_constrain_every_step_masks_and_exact_nfe():
    """The constrain hook shapes every saved step, padding stays 0, NFE counts calls."""
    b, n, steps, n_corr = 4, 5, 12, 2
    node_mask = np.ones((b, n), np.float32)
    node_mask[:, 3:] = 0.0  # the last two nodes are padding
    adj_mask = node_mask[:, :, None] * node_mask[:, None, :]
    ctx = {"masks": {"adj": jnp.asarray(adj_mask)}}
    processes = {"adj": VESDE(sigma_min=0.2, sigma_max=1.0)}
    shapes = {"adj": (b, n, n)}
    calls = []

    def score_fn(state, t, ctx):
        jax.debug.callback(lambda: calls.append(1))
        # A deliberately asymmetric field, so that only the hook can keep `adj` symmetric.
        return {"adj": -state["adj"] + jnp.triu(jnp.ones((n, n)))[None]}

    def both(key):
        pc = pc_sample(
            score_fn,
            processes,
            ctx,
            key,
            shapes=shapes,
            steps=steps,
            corrector=LangevinCorrector(n_steps=n_corr),
            constrain=_symmetric_clipped,
            return_trajectory=True,
        )
        s4 = s4_sample(
            score_fn,
            processes,
            ctx,
            key,
            shapes=shapes,
            steps=steps,
            constrain=_symmetric_clipped,
            return_trajectory=True,
        )
        free = pc_sample(score_fn, processes, ctx, key, shapes=shapes, steps=steps)
        return pc, s4, free

    (pc, pc_info), (s4, s4_info), (free, free_info) = jax.jit(both)(jax.random.key(3))
    jax.effects_barrier()
    assert int(pc_info["nfe"]) == steps * (1 + n_corr)
    assert int(s4_info["nfe"]) == steps
    assert int(free_info["nfe"]) == steps
    assert len(calls) == steps * (1 + n_corr) + steps + steps
    for final, info in ((pc, pc_info), (s4, s4_info)):
        traj = np.asarray(info["trajectory"]["adj"])  # [steps, B, N, N]
        assert traj.shape == (steps, b, n, n)
        for a in (*traj, np.asarray(final["adj"])):
            np.testing.assert_array_equal(a, np.swapaxes(a, -1, -2))
            assert np.abs(a).max() <= 1.0
            assert np.all(a[..., 3:, :] == 0.0) and np.all(a[..., :, 3:] == 0.0)
    # Without the hook the same run is visibly asymmetric: the check above can fail.
    a = np.asarray(free["adj"])
    assert np.abs(a - np.swapaxes(a, -1, -2)).max() > 1e-2


def test_reverse_diffusion_rediscretizes_to_steps():
    """With steps != sde.N the DDPM table follows the sampler's steps (GDSS ties them)."""
    proc = VPSDE(N=1000)
    v0 = 0.25  # data N(0, v0): the exact score is -x / (a^2 v0 + s^2)

    def score_fn(state, t, ctx):
        a, s = proc.marginal_coefs(t)
        return {"x": -state["x"] / (a**2 * v0 + s**2)[:, None]}

    def run(key, steps):
        return pc_sample(
            score_fn,
            {"x": proc},
            {},
            key,
            shapes={"x": (4000, 1)},
            steps=steps,
            predictor=ReverseDiffusion(),
        )

    # With the N = 1000 table, 100 steps would only remove a tenth of the noise
    # (variance near 1); re-discretized, they reach the data variance.
    state, info = jax.jit(run, static_argnums=1)(jax.random.key(5), 100)
    assert info["nfe"] == 100
    var = float(np.var(np.asarray(state["x"])))
    assert abs(var / v0 - 1.0) < 0.1, var


def test_langevin_step_size_matches_gdss_formula():
    """step = 2 alpha (snr ||z|| / ||score||)^2, batch-averaged norms by default (GDSS)."""
    proc = VPSDE()
    t = jnp.array([0.5, 0.5])
    score = jnp.array([[3.0, 4.0], [0.0, 1.0]])  # norms 5 and 1
    z = jnp.array([[1.0, 0.0], [0.0, 2.0]])  # norms 1 and 2
    alpha = 1.0 - float(proc.discrete_betas(t)[0])
    got_batch = LangevinCorrector(snr=0.1).step_size(proc, score, z, t)
    want_batch = 2 * alpha * (0.1 * 1.5 / 3.0) ** 2
    np.testing.assert_allclose(np.asarray(got_batch), [want_batch] * 2, rtol=1e-6)
    got_each = LangevinCorrector(snr=0.1, per_example=True).step_size(proc, score, z, t)
    want_each = [2 * alpha * (0.1 * 1 / 5) ** 2, 2 * alpha * (0.1 * 2 / 1) ** 2]
    np.testing.assert_allclose(np.asarray(got_each), want_each, rtol=1e-6)
    # VE: alpha = 1; the update itself is x + eps score + sqrt(2 eps) scale_eps z.
    ve = VESDE()
    corr = dataclasses.replace(LangevinCorrector(snr=0.1), scale_eps=0.5)
    x = jnp.ones((2, 2))
    new, mean = corr.update(ve, x, score, t, z)
    eps = 2 * (0.1 * 1.5 / 3.0) ** 2
    np.testing.assert_allclose(np.asarray(mean), 1.0 + eps * np.asarray(score), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(new), np.asarray(mean) + np.sqrt(2 * eps) * 0.5 * np.asarray(z), rtol=1e-6
    )


def test_s4_with_few_steps_stays_finite_and_matches_the_gaussian():
    """S4's last step is shortened to end at t = 0 (GDSS only ever uses N = 1000, where
    it ends there anyway); fed the exact score of N(0, I) it returns N(0, I)."""
    from genmodels.core.mixture import GaussianMixture
    from genmodels.processes.sde import VPSDE
    from genmodels.samplers.pc import s4_sample

    sde = VPSDE()
    gm = GaussianMixture((1.0,), ((0.0, 0.0),), (1.0,))

    def score(s, t, ctx):
        a, sd = sde.marginal_coefs(t)
        return {"x": gm.score(s["x"], a, sd)}

    for steps in (25, 100):
        for denoise in (True, False):
            out, _ = jax.jit(
                lambda k, steps=steps, denoise=denoise: s4_sample(
                    score, {"x": sde}, {}, k, shapes={"x": (4000, 2)}, steps=steps, denoise=denoise
                )
            )(jax.random.PRNGKey(steps))
            x = np.asarray(out["x"])
            assert np.isfinite(x).all()
            assert abs(x.std() - 1.0) < 0.08 and abs(x.mean()) < 0.08


def test_too_coarse_reverse_diffusion_is_a_clear_error():
    from genmodels.processes.sde import VPSDE
    from genmodels.samplers.pc import ReverseDiffusion, pc_sample

    with pytest.raises(ValueError, match="discrete beta"):
        pc_sample(
            lambda s, t, c: s,
            {"x": VPSDE()},
            {},
            jax.random.PRNGKey(0),
            shapes={"x": (2, 2)},
            steps=10,
            predictor=ReverseDiffusion(),
        )
