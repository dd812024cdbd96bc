"""Tests for the absorbing-state masked diffusion process (genmodels/processes/masked.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genmodels.processes.masked import CosineSchedule, LinearSchedule, MaskedDiffusion

SCHEDULES = [LinearSchedule(), CosineSchedule()]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["linear", "cosine"])
def test_schedule_derivative_inverse_and_endpoints(schedule):
    t = np.linspace(0.02, 0.98, 49)
    h = 1e-4
    # Central differences in float64 on the float64-exact formulas (numpy, not jnp) would
    # test numpy; instead difference the jnp schedule itself in float32 with a step h whose
    # truncation (~h^2) and rounding (~6e-8 / h) errors are both below the tolerance.
    fd = (np.asarray(schedule.alpha(t + h)) - np.asarray(schedule.alpha(t - h))) / (2 * h)
    np.testing.assert_allclose(np.asarray(schedule.alpha_prime(t)), fd, atol=2e-3)
    np.testing.assert_allclose(
        np.asarray(schedule.mask_prob(t)), 1.0 - np.asarray(schedule.alpha(t)), atol=1e-6
    )
    np.testing.assert_allclose(np.asarray(schedule.alpha_inverse(schedule.alpha(t))), t, atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(schedule.mask_prob_inverse(schedule.mask_prob(t))), t, atol=1e-5
    )
    assert float(schedule.alpha(0.0)) == 1.0 and abs(float(schedule.alpha(1.0))) < 1e-7
    # alpha decreases strictly: tokens only get masked as t grows.
    assert np.all(np.diff(np.asarray(schedule.alpha(t))) < 0)


def test_cosine_schedule_is_md4_form():
    t = np.linspace(0.0, 1.0, 11)
    md4 = 1.0 - np.cos(np.pi / 2 * (1.0 - t))  # MD4 MaskingSchedule 'cosine', eps = 0
    np.testing.assert_allclose(np.asarray(CosineSchedule().alpha(t)), md4, atol=1e-6)


def test_prior_all_masked_and_padding_zero():
    proc = MaskedDiffusion(vocab_size=5)
    mask = jnp.array([[1, 1, 0], [1, 0, 0]], jnp.float32)
    x = proc.prior(jax.random.key(0), (2, 3), mask=mask)
    assert x.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(x), [[5, 5, 0], [5, 0, 0]])
    assert np.all(np.asarray(proc.prior(jax.random.key(0), (2, 3))) == 5)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["linear", "cosine"])
def test_corrupt_masks_at_rate_one_minus_alpha(schedule):
    proc = MaskedDiffusion(vocab_size=4, schedule=schedule)
    n = 20000
    t = jnp.array([0.1, 0.5, 0.9])
    x0 = jax.random.randint(jax.random.key(1), (3, n), 0, 4)
    # Every other token is padding: never masked, exactly 0.
    mask = jnp.broadcast_to((jnp.arange(n) % 2 == 0).astype(jnp.float32), (3, n))
    xt, aux = proc.corrupt(jax.random.key(2), x0, t, mask=mask)
    xt, is_m, x0, real = map(np.asarray, (xt, aux["is_masked"], x0, mask > 0))
    assert xt.dtype == np.int32
    assert np.all(xt[~real] == 0) and not np.any(is_m[~real])
    np.testing.assert_array_equal(xt[is_m], 4)
    np.testing.assert_array_equal(xt[real & ~is_m], x0[real & ~is_m])
    for b, tb in enumerate(np.asarray(t)):
        p = 1.0 - float(schedule.alpha(tb))
        k = int(is_m[b].sum())
        assert stats.binomtest(k, int(real[b].sum()), p).pvalue > 1e-4, (tb, k, p)


def test_loss_matches_hand_computation():
    k = 3
    proc = MaskedDiffusion(vocab_size=k)
    pred = jnp.array(
        [
            [[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [0.0, 1.0, 3.0]],
            [[1.0, -2.0, 0.0], [0.0, 0.0, 4.0], [-1.0, 2.0, 1.0]],
        ]
    )  # [B=2, N=3, K=3]
    x0 = jnp.array([[0, 1, 2], [2, 2, 1]])
    is_m = jnp.array([[True, False, True], [True, True, True]])
    xt = jnp.where(is_m, k, x0)
    mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # last token of row 1 is padding
    t = jnp.array([0.25, 0.5])
    got = np.asarray(proc.loss(pred, x0, xt, t, {"is_masked": is_m}, mask=mask))

    def ce(logits, y):
        logits = np.asarray(logits, np.float64)
        return np.log(np.exp(logits).sum()) - logits[y]

    p = np.asarray(pred)
    row0 = ce(p[0, 0], 0) + ce(p[0, 2], 2)
    row1 = ce(p[1, 0], 2) + ce(p[1, 1], 2)  # position 2 is padded
    # Linear schedule: -alpha'/(1 - alpha) = 1/t.
    np.testing.assert_allclose(got, [row0 / 0.25, row1 / 0.5], rtol=1e-5)
    # Without aux the masked positions are read from xt.
    got2 = np.asarray(proc.loss(pred, x0, xt, t, {}, mask=mask))
    np.testing.assert_allclose(got2, got, rtol=1e-6)

    cos = MaskedDiffusion(vocab_size=k, schedule=CosineSchedule())
    w = [0.5 * math.pi * math.cos(math.pi * s / 2) / math.sin(math.pi * s / 2) for s in (0.25, 0.5)]
    got_cos = np.asarray(cos.loss(pred, x0, xt, t, {"is_masked": is_m}, mask=mask))
    np.testing.assert_allclose(got_cos, [w[0] * row0, w[1] * row1], rtol=1e-5)


def test_loss_weight_clamped_at_t_eps():
    proc = MaskedDiffusion(vocab_size=2, t_eps=1e-3)
    np.testing.assert_allclose(
        np.asarray(proc.weight(jnp.array([0.0, 1e-3, 0.5]))), [1e3, 1e3, 2.0]
    )


def test_sample_times_range_and_stratification():
    proc = MaskedDiffusion(vocab_size=2, t_eps=1e-3)
    t = np.sort(np.asarray(proc.sample_times(jax.random.key(0), 64)))
    assert t.min() >= 1e-3 and t.max() <= 1.0
    # Antithetic times are one uniform shifted by i / B: consecutive gaps are (1 - eps) / B.
    np.testing.assert_allclose(np.diff(t), (1 - 1e-3) / 64, atol=1e-5)
    t_iid = np.asarray(proc.sample_times(jax.random.key(0), 4096, antithetic=False))
    assert stats.kstest((t_iid - 1e-3) / (1 - 1e-3), "uniform").pvalue > 1e-3
