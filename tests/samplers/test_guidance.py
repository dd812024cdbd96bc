"""Guidance on a two-class Gaussian mixture, where every conditional quantity is exact.

Class ``c`` is one component of :data:`GM`; its noisy score and the mixture's are closed
forms, and ``grad_x log p(c | x_t) = s_c(x_t) - s(x_t)`` (Bayes). So regressor guidance of
the unconditional field with that gradient at scale 1 must sample class ``c`` exactly,
through the registry's samplers, for every continuous process family (which checks
:func:`score_to_output`'s conversion for each); classifier-free guidance must equal its
formula on the doubled batch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmodels.core.mixture import GaussianMixture
from genmodels.processes.flow import LinearFlow
from genmodels.processes.pfgmpp import PFGMPP
from genmodels.processes.sde import VPSDE
from genmodels.samplers.guidance import (
    COND,
    KEEP,
    Guidance,
    classifier_free,
    condition_context,
    drop_condition,
    guided_model,
)
from genmodels.samplers.registry import ODEOptions, run_sampler

GM = GaussianMixture(weights=(0.3, 0.7), means=((-2.0, 0.0), (1.5, 1.0)), stds=(0.3, 0.5))
PARTS = [
    GaussianMixture(weights=(1.0,), means=(m,), stds=(s,))
    for m, s in zip(((-2.0, 0.0), (1.5, 1.0)), (0.3, 0.5), strict=True)
]
B = 2000


def _coefs(kind, proc, t):
    """``(a, s)`` of ``x_t = a x_0 + s z`` for the process family."""
    if kind == "sde":
        return proc.marginal_coefs(t)
    if kind == "pfgmpp":
        return jnp.ones_like(t), t
    return 1.0 - t, t


def _fields(kind, proc):
    """``(unconditional model_fn, conditional model_fn, grad log p(c | x_t))``, each
    prediction made from the exact posterior mean ``D = E[x_0 | x_t]`` (finite at the
    flow's prior, ``t = 1``): the score ``(a D - x) / s^2``, EDM's ``D``, or the flow's
    ``(x - D) / t``."""

    def parts(mix, x, t):
        a, s = _coefs(kind, proc, t)
        a = jnp.broadcast_to(jnp.asarray(a, jnp.float32), t.shape)[:, None]
        s = jnp.broadcast_to(jnp.asarray(s, jnp.float32), t.shape)[:, None]
        return mix.denoise(x, a[:, 0], s[:, 0]), a, s

    def predict(mix, x, t):
        d, a, s = parts(mix, x, t)
        if kind == "sde":
            return (a * d - x) / s**2
        return d if kind == "pfgmpp" else (x - d) / t[:, None]

    def score(mix, x, t):
        d, a, s = parts(mix, x, t)
        return (a * d - x) / s**2

    def by_class(fn, x, t, c):
        return jnp.where((c == 0)[:, None], fn(PARTS[0], x, t), fn(PARTS[1], x, t))

    def uncond(state, t, ctx):
        return {"x": predict(GM, state["x"], t)}

    def cond(state, t, ctx):
        x, k = state["x"], ctx[KEEP][:, None]
        return {"x": k * by_class(predict, x, t, ctx[COND]) + (1 - k) * predict(GM, x, t)}

    def grad(state, t, ctx):
        x = state["x"]
        return {"x": by_class(score, x, t, ctx[COND]) - score(GM, x, t)}

    return uncond, cond, grad


CASES = {
    "sde": VPSDE(beta_min=0.1, beta_max=20.0),
    "pfgmpp": PFGMPP(D=float("inf")),
    "flow": LinearFlow(),
}


def _sample(kind, model_fn, label):
    proc = CASES[kind]
    procs = {"x": proc}
    ctx = condition_context({}, jnp.full((B,), label, jnp.int32))
    run = jax.jit(
        lambda k: run_sampler(
            "ode",
            model_fn,
            procs,
            ctx,
            k,
            shapes={"x": (B, 2)},
            steps=40,
            options=ODEOptions(sample_eps=1e-3),
            constrain=lambda s, c: s,
        )  # fmt: skip
    )
    return np.asarray(run(jax.random.PRNGKey(1))[0]["x"], np.float64)


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("label", [0, 1])
def test_regressor_guidance_with_the_exact_gradient_samples_the_class(kind, label):
    uncond, _, grad = _fields(kind, CASES[kind])
    fn = guided_model(uncond, {"x": CASES[kind]}, Guidance(weight=1.0, scale=1.0), grad)
    x = _sample(kind, fn, label)
    part = PARTS[label]
    mu, sd = np.asarray(part.arrays()[1][0]), float(part.arrays()[2][0])
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(x.mean(0), mu, atol=0.06)
    np.testing.assert_allclose(x.var(0), sd**2, rtol=0.15)
    # the unguided field samples the mixture: the other class is present
    if kind == "flow":
        other = np.mean(GM.assign(_sample(kind, uncond, label)) != label)
        assert other > 0.2


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5])
def test_classifier_free_is_its_formula_on_the_doubled_batch(w):
    proc = CASES["sde"]
    _, cond, _ = _fields("sde", proc)
    calls = []

    def counted(state, t, ctx):
        calls.append(state["x"].shape[0])
        return cond(state, t, ctx)

    x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    t = jnp.linspace(0.05, 0.95, 64)
    ctx = condition_context({"mask": jnp.ones((64, 2))}, jnp.arange(64) % 2)
    out = classifier_free(counted, w)({"x": x}, t, ctx)["x"]
    c = cond({"x": x}, t, ctx)["x"]
    u = cond({"x": x}, t, {**ctx, KEEP: jnp.zeros(64)})["x"]
    np.testing.assert_allclose(out, u + w * (c - u), rtol=1e-5, atol=1e-5)
    assert calls[0] == (64 if w == 1.0 else 128)  # one call, doubled batch when guided


def test_classifier_free_keeps_impossible_logits_impossible():
    def logits(state, t, ctx):
        k = ctx[KEEP][:, None]
        base = jnp.array([0.0, 1.0, -jnp.inf])
        return {"tok": base + k * jnp.array([2.0, 0.0, 0.0])}

    ctx = condition_context({}, jnp.zeros((3,), jnp.int32))
    out = classifier_free(logits, 3.0)({"tok": jnp.zeros((3, 3))}, jnp.ones(3), ctx)["tok"]
    np.testing.assert_allclose(out[:, :2], np.tile([6.0, 1.0], (3, 1)))
    assert np.all(np.isneginf(out[:, 2]))


def test_drop_condition_keeps_each_example_with_probability_one_minus_p():
    ctx = condition_context({}, jnp.zeros((20000,), jnp.int32))
    kept = drop_condition(jax.random.PRNGKey(3), ctx, 0.2)[KEEP]
    assert set(np.unique(np.asarray(kept))) <= {0.0, 1.0}
    assert abs(float(kept.mean()) - 0.8) < 0.015
    assert drop_condition(jax.random.PRNGKey(3), {}, 0.2) == {}


def test_gradient_guidance_refuses_processes_without_a_score():
    from genmodels.processes.masked import MaskedDiffusion

    fn = guided_model(
        lambda s, t, c: s, {"x": MaskedDiffusion(vocab_size=3)}, Guidance(scale=1.0),
        lambda s, t, c: s,
    )  # fmt: skip
    with pytest.raises(ValueError, match="needs a score"):
        fn({"x": jnp.zeros((2, 3))}, jnp.ones(2), {})
