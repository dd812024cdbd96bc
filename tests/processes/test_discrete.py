"""DiscreteDiffusion: marginals, the step posterior against Bayes' rule, and the loss."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmodels.processes.discrete import DiscreteDiffusion


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_schedule_endpoints(schedule):
    p = DiscreteDiffusion(4, steps=50, schedule=schedule)
    ab = np.asarray(p.abar(jnp.arange(51)))
    assert ab[0] == pytest.approx(1.0, abs=1e-6)
    assert ab[-1] < 1e-6
    assert np.all(np.diff(ab) < 0)


def test_corrupt_matches_marginal():
    p = DiscreteDiffusion(3, steps=10, noise=(0.5, 0.3, 0.2))
    x0 = jnp.full((20000, 1), 2, jnp.int32)
    t = jnp.full((20000,), 4.0)
    xt, _ = p.corrupt(jax.random.PRNGKey(0), x0, t)
    freq = np.bincount(np.asarray(xt).ravel(), minlength=3) / xt.size
    want = np.asarray(p.q_t0(jnp.asarray(2), jnp.asarray(4.0)))
    np.testing.assert_allclose(freq, want, atol=0.012)
    # masked entries stay clean
    xt2, _ = p.corrupt(jax.random.PRNGKey(1), x0, t, mask=jnp.zeros((20000, 1)))
    assert np.all(np.asarray(xt2) == 2)


def _step_matrix(p, t, s):
    """Q_{t|s}[a, b] = q(x_t = b | x_s = a) = abar_{t|s} 1{a=b} + (1 - abar_{t|s}) m_b."""
    ab = float(p.abar(t)) / (float(p.abar(s)) if s > 0 else 1.0)
    m = np.asarray(p.m)
    return ab * np.eye(p.num_classes) + (1 - ab) * m[None, :]


@pytest.mark.parametrize("noise", [None, (0.6, 0.25, 0.1, 0.05)])
@pytest.mark.parametrize("t", [1, 2, 17, 50])
def test_posterior_is_bayes(noise, t):
    p = DiscreteDiffusion(4, steps=50, noise=noise)
    s = t - 1
    qts = _step_matrix(p, t, s)  # q(x_t | x_s)
    qs0 = _step_matrix(p, s, 0) if s > 0 else np.eye(4)  # q(x_s | x_0)
    for x0, xt in itertools.product(range(4), range(4)):
        num = qts[:, xt] * qs0[x0, :]
        want = num / num.sum()
        got = np.asarray(p.posterior_matrix(jnp.asarray(xt), jnp.asarray(t), jnp.asarray(s)))
        np.testing.assert_allclose(got[x0], want, rtol=1e-4, atol=1e-6)
    # the chain rule: sum_s q(x_s | x_0) q(x_t | x_s) = q(x_t | x_0)
    np.testing.assert_allclose(qs0 @ qts, _step_matrix(p, t, 0), atol=1e-5)


def test_reverse_probs_with_exact_x0_is_posterior_and_s0_is_p0():
    p = DiscreteDiffusion(4, steps=20)
    p0 = jax.nn.one_hot(jnp.array([1, 3]), 4)
    xt = jnp.array([0, 3])
    t = jnp.array([5.0, 5.0])
    got = p.reverse_probs(p0, xt, t, t - 1)
    post = p.posterior_matrix(xt, t, t - 1)
    np.testing.assert_allclose(got[0], post[0, 1], atol=1e-6)
    np.testing.assert_allclose(got[1], post[1, 3], atol=1e-6)
    soft = jnp.array([[0.1, 0.2, 0.3, 0.4]] * 2)
    np.testing.assert_allclose(p.reverse_probs(soft, xt, t * 0 + 1, t * 0), soft, atol=1e-7)


def test_loss_is_minimal_at_the_truth():
    p = DiscreteDiffusion(4, steps=50, ce_coeff=0.1)
    key = jax.random.PRNGKey(3)
    x0 = jax.random.randint(key, (64, 6), 0, 4)
    t = p.sample_times(jax.random.PRNGKey(4), 64)
    xt, _ = p.corrupt(jax.random.PRNGKey(5), x0, t)
    exact = 30.0 * jax.nn.one_hot(x0, 4)
    wrong = 30.0 * jax.nn.one_hot((x0 + 1) % 4, 4)
    l_exact = np.asarray(p.loss(exact, x0, xt, t))
    l_wrong = np.asarray(p.loss(wrong, x0, xt, t))
    # the exact x0 makes every KL and CE term vanish: only the prior term is left
    prior = np.asarray(p.q_t0(x0, jnp.full_like(x0, 50.0)))
    prior_kl = np.sum(prior * np.log(prior / 0.25), -1).sum(-1) / 50
    np.testing.assert_allclose(l_exact, prior_kl, rtol=1e-3, atol=1e-4)
    assert np.all(l_wrong > l_exact + 1.0)
    mask = jnp.zeros((64, 6)).at[:, :2].set(1.0)
    l_m = np.asarray(p.loss(wrong, x0, xt, t, mask=mask))
    np.testing.assert_allclose(l_m * 3, l_wrong, rtol=0.5)  # a third of the positions


def test_virtual_class_is_in_the_noise_and_masked_at_the_last_step():
    """PARD's virtual class (the last one): uniform noise puts 1/K on it, so x_t holds it;
    only the final draw's p_theta(x_0 | x_1) removes it (its logit set to -inf)."""
    p = DiscreteDiffusion(4, steps=10, virtual=True)
    np.testing.assert_allclose(np.asarray(p.m), 0.25)
    x0 = jnp.zeros((20000,), jnp.int32)  # data never holds the virtual class
    xt, _ = p.corrupt(jax.random.PRNGKey(0), x0, jnp.full((20000,), 10.0))
    assert abs(np.mean(np.asarray(xt) == 3) - 0.25) < 0.015
    assert abs(np.mean(np.asarray(p.prior(jax.random.PRNGKey(1), (20000,))) == 3) - 0.25) < 0.015
    logits = jnp.array([[0.0, 1.0, -1.0, 5.0], [2.0, 0.0, 0.0, 0.0]])
    t = jnp.array([1.0, 2.0])
    got = np.asarray(p.clean_probs(logits, t))
    np.testing.assert_allclose(got[0], np.r_[jax.nn.softmax(logits[0, :3]), 0.0], atol=1e-7)
    np.testing.assert_allclose(got[1], jax.nn.softmax(logits[1]), atol=1e-7)
    # the final draw is p_theta(x_0 | x_1): no mass on the virtual class
    assert np.asarray(p.reverse_probs(jnp.asarray(got), jnp.array([3, 3]), t, t - 1))[0, 3] == 0
    # without the virtual class the last class is an ordinary one
    plain = DiscreteDiffusion(4, steps=10)
    np.testing.assert_allclose(np.asarray(plain.clean_probs(logits, t)), jax.nn.softmax(logits))


def test_bad_arguments():
    with pytest.raises(ValueError, match="schedule"):
        DiscreteDiffusion(3, schedule="sqrt")
    with pytest.raises(ValueError, match="probabilities"):
        DiscreteDiffusion(3, noise=(0.5, 0.5))
