"""The sampler registry: one ``ode`` entry integrates every continuous process kind.

Each kind's model prediction comes from the exact field of a 2-D Gaussian mixture
(:class:`GaussianMixture`): the VP score, the EDM denoiser (PFGM++ at D = inf) and the
flow velocity. The registry's ``ode`` sampler (each process's ``ode_drift`` over its
``ode_span``, integrated by diffrax) must reproduce the mixture: component weights within
0.04, means within 0.08, variances within 20% on 2,000 samples.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmodels.core.mixture import GaussianMixture
from genmodels.processes.flow import LinearFlow
from genmodels.processes.masked import MaskedDiffusion
from genmodels.processes.pfgmpp import PFGMPP
from genmodels.processes.sde import VESDE, VPSDE
from genmodels.samplers.registry import (
    REGISTRY,
    ODEOptions,
    get_sampler,
    run_sampler,
    samplers_for,
)

GM = GaussianMixture(weights=(0.3, 0.7), means=((-2.0, 0.0), (1.5, 1.0)), stds=(0.3, 0.5))
B = 2000


def _vp_score(proc):
    def fn(state, t, ctx):
        a, s = proc.marginal_coefs(t)
        return {"x": GM.score(state["x"], a, s)}

    return fn


def _edm_denoiser(state, sigma, ctx):
    return {"x": GM.denoise(state["x"], jnp.ones_like(sigma), sigma)}


def _flow_velocity(state, t, ctx):
    x = state["x"]
    return {"x": (x - GM.denoise(x, 1.0 - t, t)) / t[:, None]}


def _check_mixture(x):
    x = np.asarray(x, np.float64)
    assert np.all(np.isfinite(x))
    lab = GM.assign(x)
    w, mu, sd = (np.asarray(a) for a in GM.arrays())
    for k in range(2):
        xs = x[lab == k]
        assert abs(len(xs) / len(x) - w[k]) < 0.04
        np.testing.assert_allclose(xs.mean(0), mu[k], atol=0.08)
        np.testing.assert_allclose(xs.var(0), sd[k] ** 2, rtol=0.2)


CASES = {
    "sde": (VPSDE(beta_min=0.1, beta_max=20.0), _vp_score),
    "pfgmpp": (PFGMPP(D=float("inf")), lambda p: _edm_denoiser),
    "flow": (LinearFlow(), lambda p: _flow_velocity),
}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("steps", [None, 40], ids=["adaptive", "fixed"])
def test_ode_entry_reproduces_the_mixture_for_every_continuous_kind(kind, steps):
    proc, make = CASES[kind]
    procs = {"x": proc}
    opts = ODEOptions(sample_eps=1e-3)
    run = jax.jit(
        lambda k: run_sampler(
            "ode",
            make(proc),
            procs,
            {},
            k,
            shapes={"x": (B, 2)},
            steps=steps,
            options=opts,
            constrain=lambda s, c: s,
        )
    )
    x, info = run(jax.random.key(3))
    nfe = int(info["nfe"])
    assert nfe > 0 and (steps is None or nfe >= steps)
    _check_mixture(x["x"])


def test_entries_cover_their_kinds_and_refuse_others():
    sde = {"x": VPSDE(), "adj": VESDE()}  # GDSS: two SDE kinds of one family
    assert {"euler", "euler_langevin", "reverse", "reverse_langevin", "s4", "ode"} == set(
        samplers_for(sde)
    )
    assert set(samplers_for({"x": LinearFlow()})) == {"euler", "heun", "boss", "ode"}
    assert set(samplers_for({"x": MaskedDiffusion(4)})) >= {"fhs", "ancestral"}
    with pytest.raises(ValueError, match="cannot integrate sde"):
        get_sampler("fhs", sde)
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        get_sampler("nope", sde)
    with pytest.raises(ValueError, match="different kinds"):
        samplers_for({"x": VPSDE(), "y": LinearFlow()})
    for entry in REGISTRY.values():
        assert entry.description and entry.impls
        entry.options()  # every option has a default
        assert dataclasses.is_dataclass(entry.options)


def test_edm_only_samplers_refuse_finite_D():
    procs = {"x": PFGMPP(D=128.0)}
    with pytest.raises(ValueError, match="D = inf"):
        run_sampler(
            "pc",
            _edm_denoiser,
            procs,
            {},
            jax.random.key(0),
            shapes={"x": (4, 2)},
            steps=4,
            constrain=lambda s, c: s,
        )
