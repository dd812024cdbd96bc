"""Tests for the masked-diffusion samplers and float64-grade categorical sampling.

The reference is a known joint distribution over a few categorical tokens with its exact
conditionals: for an absorbing process and a time-agnostic model, the posterior of a masked
token given x_t is its conditional given the unmasked tokens, so an exact sampler must
reproduce the joint (chi-square test), and a wrong one must fail the same test.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genmodels.core import precision as prec
from genmodels.processes.masked import CosineSchedule, LinearSchedule, MaskedDiffusion
from genmodels.samplers.masked import ancestral_sample, first_hitting_sample, masked_sample

N_SAMPLES = 20000
P_MIN = 1e-3  # chi-square acceptance threshold


class ExactConditionals:
    """``logits_fn`` of a known joint over P positions spread over several leaves.

    Args:
      table: [K_1, ..., K_P] joint probabilities (all > 0).
      layout: ordered ``(leaf, positions in that leaf)``; the leaf's positions are the
        next entries of the table's axes, in flattened order.

    Padded positions (mask 0) are marginalized out, so an example with padding follows the
    marginal of the table over its real positions.
    """

    def __init__(self, table, layout):
        self.table = np.asarray(table, np.float64) / np.sum(table)
        self.layout = layout
        self.vocab = list(self.table.shape)
        self.assign = np.array(list(itertools.product(*[range(k) for k in self.vocab])))
        self.probs = self.table.reshape(-1)

    def __call__(self, state, t, ctx):
        del t  # time-agnostic
        xs, reals = [], []
        for leaf, _ in self.layout:
            x = state[leaf].reshape(state[leaf].shape[0], -1)
            xs.append(x)
            m = ctx.get("masks", {}).get(leaf)
            reals.append(jnp.ones(x.shape, bool) if m is None else m.reshape(x.shape) > 0)
        x = jnp.concatenate(xs, axis=1)  # [B, P]
        real = jnp.concatenate(reals, axis=1)
        a = jnp.asarray(self.assign)  # [M, P]
        mask_ids = jnp.asarray(self.vocab)  # mask id of position p is K_p
        free = (x == mask_ids)[:, None, :] | ~real[:, None, :]  # [B, 1, P]
        compat = jnp.all(free | (x[:, None, :] == a[None]), axis=-1)  # [B, M]
        w = compat * jnp.asarray(self.probs, jnp.float32)  # [B, M]
        out, p = {}, 0
        for leaf, size in self.layout:
            cols = []
            for _ in range(size):
                onehot = jax.nn.one_hot(a[:, p], self.vocab[p])  # [M, K_p]
                q = w @ onehot  # [B, K_p]
                cols.append(jnp.log(jnp.maximum(q / q.sum(-1, keepdims=True), 1e-30)))
                p += 1
            out[leaf] = jnp.stack(cols, axis=1).reshape(*state[leaf].shape, -1)
        return out


def _table(shape, seed):
    """A strongly correlated joint with every cell >= ~1e-3 of the mass."""
    rng = np.random.default_rng(seed)
    t = rng.dirichlet(0.3 * np.ones(int(np.prod(shape)))).reshape(shape)
    return 0.97 * t + 0.03 / t.size


def _chi2_pvalue(samples, table):
    """samples [S, P] int; table [K_1, ..., K_P]."""
    table = np.asarray(table) / np.sum(table)
    idx = np.ravel_multi_index(tuple(np.asarray(samples).T), table.shape)
    counts = np.bincount(idx, minlength=table.size)
    return stats.chisquare(counts, len(idx) * table.reshape(-1)).pvalue


def ancestral_law(table, schedule, steps):
    """Exact law of the ancestral sampler's output for the joint ``table`` and exact
    conditionals, by propagating the distribution over all partially masked states.

    With finite ``steps`` tokens unmasked in the same step are drawn independently given the
    current state, so this law differs from ``table`` by O(1/steps).
    """
    p = np.asarray(table, np.float64) / np.sum(table)
    vocab = p.shape
    states = list(itertools.product(*[range(k + 1) for k in vocab]))  # value K_i = masked
    index = {s: i for i, s in enumerate(states)}

    def conditional(s, i):
        sub = p[tuple(slice(None) if s[j] == vocab[j] else s[j] for j in range(len(vocab)))]
        masked = [j for j in range(len(vocab)) if s[j] == vocab[j]]
        q = sub.sum(axis=tuple(a for a in range(len(masked)) if masked[a] != i))
        return q / q.sum()

    # Transition = sum over (m masked, k unmasked this step) of pu^k (1 - pu)^(m - k) C[m, k].
    parts = {}
    for s in states:
        masked = [j for j in range(len(vocab)) if s[j] == vocab[j]]
        for subset in itertools.product([False, True], repeat=len(masked)):
            moved = [j for j, u in zip(masked, subset) if u]
            conds = [conditional(s, j) for j in moved]
            for values in itertools.product(*[range(vocab[j]) for j in moved]):
                s2 = list(s)
                w = 1.0
                for j, v, c in zip(moved, values, conds):
                    s2[j], w = v, w * c[v]
                key = (len(masked), len(moved))
                mat = parts.setdefault(key, np.zeros((len(states), len(states))))
                mat[index[s], index[tuple(s2)]] += w
    dist = np.zeros(len(states))
    dist[index[tuple(vocab)]] = 1.0
    times = np.linspace(1.0, 0.0, steps + 1)
    for t, s in zip(times[:-1], times[1:]):
        m_t, m_s = float(schedule.mask_prob(t)), float(schedule.mask_prob(s))
        pu = (m_t - m_s) / m_t
        dist = sum(pu**k * (1 - pu) ** (m - k) * (dist @ c) for (m, k), c in parts.items())
    out = np.zeros(vocab)
    for s, w in zip(states, dist):
        if all(s[j] < vocab[j] for j in range(len(vocab))):
            out[s] += w
    return out


def _run(sampler, logits_fn, processes, ctx, key, shapes, **kw):
    fn = jax.jit(lambda k: sampler(logits_fn, processes, ctx, k, shapes=shapes, **kw))
    state, info = fn(key)
    return jax.tree.map(np.asarray, state), jax.tree.map(np.asarray, info)


ANCESTRAL_STEPS = 16
SAMPLERS = {
    "ancestral": functools.partial(ancestral_sample, steps=ANCESTRAL_STEPS),
    "first_hitting": first_hitting_sample,
}


def _law(name, table, schedule):
    """What each sampler must reproduce: FHS is exact; the ancestral sampler follows the
    joint up to its O(1/steps) discretization error, so it is held to its exact law."""
    if name == "first_hitting":
        return np.asarray(table) / np.sum(table)
    return ancestral_law(table, schedule, ANCESTRAL_STEPS)


@pytest.fixture(scope="module")
def single_leaf():
    table = _table((3, 3, 3), seed=0)
    model = ExactConditionals(table, [("tok", 3)])
    return table, model


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_reproduces_joint(name, single_leaf):
    table, model = single_leaf
    procs = {"tok": MaskedDiffusion(vocab_size=3)}
    state, info = _run(SAMPLERS[name], model, procs, {}, jax.random.key(1), {"tok": (N_SAMPLES, 3)})
    x = state["tok"]
    assert x.dtype == np.int32 and x.min() >= 0 and x.max() < 3  # nothing left masked
    assert _chi2_pvalue(x, _law(name, table, LinearSchedule())) > P_MIN
    if name == "first_hitting":
        assert int(info["nfe"]) == 3  # exactly L calls for L tokens
    else:
        # The test sees the 16-step discretization error (TV 0.034 from the joint).
        assert _chi2_pvalue(x, table) < 1e-10


def test_ancestral_law_converges_to_joint(single_leaf):
    """The ancestral sampler's exact law approaches the joint as O(1/steps)."""
    table, _ = single_leaf
    p = table / table.sum()
    tv = {n: 0.5 * np.abs(ancestral_law(table, LinearSchedule(), n) - p).sum() for n in (16, 512)}
    assert tv[16] > 0.02 and tv[512] < 2e-3
    assert tv[512] * 512 == pytest.approx(tv[16] * 16, rel=0.3)  # ~ c / steps


@pytest.mark.slow
def test_ancestral_many_steps_reproduces_joint(single_leaf):
    """Direct check against the joint: with 1000 steps the discretization error is below
    what 20000 samples resolve (chi-square noncentrality ~0.25)."""
    table, model = single_leaf
    procs = {"tok": MaskedDiffusion(vocab_size=3)}
    state, _ = _run(
        ancestral_sample,
        model,
        procs,
        {},
        jax.random.key(11),
        {"tok": (N_SAMPLES, 3)},
        steps=1000,
    )
    assert _chi2_pvalue(state["tok"], table) > P_MIN


def test_wrong_sampler_fails_the_same_test(single_leaf):
    """Power check: one ancestral step unmasks every token at once, independently from its
    marginal; the chi-square test must reject that product of marginals."""
    table, model = single_leaf
    procs = {"tok": MaskedDiffusion(vocab_size=3)}
    state, _ = _run(
        ancestral_sample, model, procs, {}, jax.random.key(1), {"tok": (N_SAMPLES, 3)}, steps=1
    )
    assert _chi2_pvalue(state["tok"], table) < 1e-10
    # The product of the marginals is indeed what it sampled.
    marg = [table.sum(axis=tuple(j for j in range(3) if j != i)) for i in range(3)]
    product = np.einsum("i,j,k->ijk", *marg)
    assert _chi2_pvalue(state["tok"], product) > P_MIN


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_multi_leaf_with_padding(name):
    """Atom tokens [B, 2] (K=3) and one edge token [B, 1] (K=2) form one joint of 18 cells;
    half the batch has its second atom padded and must follow the marginal of the rest."""
    table = _table((3, 3, 2), seed=3)
    model = ExactConditionals(table, [("atoms", 2), ("edges", 1)])
    procs = {
        "atoms": MaskedDiffusion(vocab_size=3, schedule=CosineSchedule()),
        "edges": MaskedDiffusion(vocab_size=2, schedule=CosineSchedule()),
    }
    half = N_SAMPLES // 2
    atom_mask = np.ones((N_SAMPLES, 2), np.float32)
    atom_mask[half:, 1] = 0.0
    ctx = {"masks": {"atoms": jnp.asarray(atom_mask)}}
    shapes = {"atoms": (N_SAMPLES, 2), "edges": (N_SAMPLES, 1)}
    state, info = _run(
        SAMPLERS[name], model, procs, ctx, jax.random.key(2), shapes, return_trajectory=True
    )
    atoms, edges = state["atoms"], state["edges"]
    assert np.all(atoms[half:, 1] == 0)  # padding exactly 0
    assert np.all(info["trajectory"]["atoms"][:, half:, 1] == 0)  # at every step
    assert atoms[:, 0].max() < 3 and atoms[:half].max() < 3 and edges.max() < 2
    full = np.concatenate([atoms[:half], edges[:half]], axis=1)
    assert _chi2_pvalue(full, _law(name, table, CosineSchedule())) > P_MIN
    short = np.concatenate([atoms[half:, :1], edges[half:]], axis=1)
    assert _chi2_pvalue(short, _law(name, table.sum(axis=1), CosineSchedule())) > P_MIN
    traj = info["trajectory"]["atoms"]
    np.testing.assert_array_equal(traj[-1], atoms)
    if name == "first_hitting":
        assert int(info["nfe"]) == 3  # L_max over the batch, padding never counted
        # One token per step: examples of length 3 have 3 - i masks after step i, and the
        # shorter ones stop changing after their 2 tokens.
        n_masked = (info["trajectory"]["atoms"] == 3).sum(-1) + (
            info["trajectory"]["edges"] == 2
        ).sum(-1)  # [P + 1, B]
        expect_full = np.broadcast_to(np.array([3, 2, 1, 0])[:, None], (4, half))
        expect_short = np.broadcast_to(np.array([2, 1, 0, 0])[:, None], (4, half))
        np.testing.assert_array_equal(n_masked[:, :half], expect_full)
        np.testing.assert_array_equal(n_masked[:, half:], expect_short)
        times = info["times"]  # [P + 1, B], decreasing hitting times
        assert np.all(np.diff(times, axis=0) <= 0) and np.all(times[0] == 1.0)


def test_first_hitting_nfe_equals_tokens_when_all_padded_equally():
    table = _table((3, 3, 2), seed=3)
    model = ExactConditionals(table, [("atoms", 2), ("edges", 1)])
    procs = {"atoms": MaskedDiffusion(vocab_size=3), "edges": MaskedDiffusion(vocab_size=2)}
    ctx = {"masks": {"atoms": jnp.array([[1.0, 0.0]] * 4)}}
    shapes = {"atoms": (4, 2), "edges": (4, 1)}
    state, info = _run(first_hitting_sample, model, procs, ctx, jax.random.key(0), shapes)
    assert int(info["nfe"]) == 2
    assert np.all(state["atoms"][:, 1] == 0) and state["atoms"].max() < 3


def test_first_hitting_rejects_mixed_schedules():
    procs = {
        "a": MaskedDiffusion(vocab_size=2),
        "b": MaskedDiffusion(vocab_size=2, schedule=CosineSchedule()),
    }
    with pytest.raises(ValueError, match="schedule"):
        first_hitting_sample(None, procs, {}, jax.random.key(0), shapes={"a": (1, 1), "b": (1, 1)})


def test_ancestral_cache_skips_unchanged_steps(single_leaf):
    _, model = single_leaf
    procs = {"tok": MaskedDiffusion(vocab_size=3)}
    shapes = {"tok": (2, 3)}  # 6 tokens in the batch, far fewer than the steps
    steps = 256
    state, info = _run(ancestral_sample, model, procs, {}, jax.random.key(4), shapes, steps=steps)
    nfe = int(info["nfe"])
    # One call before the first change, then at most one after each step that changed a
    # token: at most 1 + 6 calls, whatever the number of steps.
    assert 1 <= nfe <= 1 + 6 < steps
    assert state["tok"].max() < 3
    _, info = _run(
        ancestral_sample, model, procs, {}, jax.random.key(4), shapes, steps=steps, cache=False
    )
    assert int(info["nfe"]) == steps


def test_masked_sample_dispatches_by_name_and_caches_only_without_time(single_leaf):
    """``masked_sample`` is FHS (exactly L calls) or the ancestral sampler, whose logit
    cache is on for a time-agnostic network and off for a time-conditioned one."""
    _, model = single_leaf
    procs = {"tok": MaskedDiffusion(vocab_size=3)}
    shapes, key = {"tok": (2, 3)}, jax.random.key(4)
    fhs = functools.partial(masked_sample, sampler="fhs")
    _, info = _run(fhs, model, procs, {}, key, shapes)
    assert int(info["nfe"]) == 3
    anc = functools.partial(masked_sample, sampler="ancestral", steps=256)
    _, cached = _run(anc, model, procs, {}, key, shapes)
    _, timed = _run(anc, model, procs, {}, key, shapes, time_conditioning=True)
    assert int(cached["nfe"]) <= 7 and int(timed["nfe"]) == 256
    with pytest.raises(ValueError, match="unknown masked-diffusion sampler"):
        masked_sample(model, procs, {}, key, shapes=shapes, sampler="gibbs")


def test_ancestral_trajectory_only_unmasks():
    model = ExactConditionals(_table((3, 3, 3), seed=0), [("tok", 3)])
    procs = {"tok": MaskedDiffusion(vocab_size=3, schedule=CosineSchedule())}
    _, info = _run(
        ancestral_sample,
        model,
        procs,
        {},
        jax.random.key(5),
        {"tok": (64, 3)},
        steps=16,
        return_trajectory=True,
    )
    traj = info["trajectory"]["tok"]  # [T + 1, B, 3]
    assert traj.shape == (17, 64, 3) and np.all(traj[0] == 3) and np.all(traj[-1] < 3)
    was_set = traj[:-1] != 3
    assert np.all(traj[1:][was_set] == traj[:-1][was_set])  # carry-over unmasking
    np.testing.assert_allclose(info["times"], np.linspace(1.0, 0.0, 17), atol=1e-6)


# --- float64-grade categorical sampling (genmodels/core/precision.py) ---


def test_gumbel_noise_support_float32_truncated_64bit_not():
    """float32 noise is capped at -log(-log(1 - 2^-23)) ~= 15.94 (and floored at ~-4.47), so
    no category more than ~20.4 below the top logit can ever be drawn; the 64-bit noise
    spans about [-3.8, 45.1]."""
    u32 = functools.partial(jnp.asarray, dtype=jnp.uint32)
    top32 = float(prec.gumbel_from_bits_float32(u32(0xFFFFFFFF)))
    low32 = float(prec.gumbel_from_bits_float32(u32(0)))
    assert top32 == pytest.approx(prec.FLOAT32_GUMBEL_MAX, abs=1e-5)
    assert top32 == pytest.approx(15.942, abs=1e-3) and low32 == pytest.approx(-4.470, abs=1e-3)
    assert top32 - low32 < 20.5
    top64 = float(prec.gumbel_from_bits_64(u32(0), u32(0)))
    low64 = float(prec.gumbel_from_bits_64(u32(0x80000000), u32(0)))
    assert top64 > 45.0 and low64 < -3.8
    # Continuity where the two halves of the 64-bit construction meet (U = 1/2).
    mid = [prec.gumbel_from_bits_64(u32(h), u32(0xFFFFFFFF)) for h in (0x7FFFFFFF, 0xFFFFFFFF)]
    assert float(mid[0]) == pytest.approx(-np.log(np.log(2.0)), abs=1e-6)
    assert float(mid[1]) == pytest.approx(-np.log(np.log(2.0)), abs=1e-6)


@pytest.mark.parametrize("tail", ["upper", "lower"])
def test_gumbel_64bit_tails_follow_gumbel_law(tail):
    """Far tails of the 64-bit noise, sampled conditionally by fixing the leading bits:
    given U > 1 - 2^-30 the noise lies in [20.8, 45] (where float32 noise has no support at
    all, its maximum being 15.94) and must follow the conditional Gumbel law; likewise for
    U < 2^-30 (g < -3.03; float32 noise has nothing in (-4.47, -2.77))."""
    k = 29  # hi' < 2^(31 - k) means V < 2^-k, i.e. U within 2^-(k + 1) of the end
    delta = 2.0 ** -(k + 1)
    bits = jax.random.bits(jax.random.key(5), (2, 1 << 16), jnp.uint32)
    hi = bits[0] & jnp.uint32(0x7FFFFFFF >> k)
    if tail == "lower":
        hi = hi | jnp.uint32(0x80000000)  # the U = V / 2 half
    g = np.asarray(prec.gumbel_from_bits_64(hi, bits[1]), np.float64)
    if tail == "upper":
        assert g.min() > -np.log(-np.log1p(-delta)) - 1e-4 and g.max() > 30.0
        cdf = lambda x: 1.0 + np.expm1(-np.exp(-x)) / delta  # P(g <= x | U > 1 - delta)
    else:
        assert g.max() < -np.log(-np.log(delta)) + 1e-4
        cdf = lambda x: np.exp(-np.exp(-x)) / delta  # P(g <= x | U < delta)
    assert stats.kstest(g, cdf).pvalue > P_MIN


@pytest.mark.parametrize("precision", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_categorical_bulk_distribution(precision):
    logits = jnp.log(jnp.array([0.5, 0.25, 0.15, 0.07, 0.03])) + 3.0
    draws = jax.jit(
        lambda k: prec.categorical(k, jnp.broadcast_to(logits, (50000, 5)), precision=precision)
    )(jax.random.key(3))
    counts = np.bincount(np.asarray(draws), minlength=5)
    assert stats.chisquare(counts, 50000 * np.array([0.5, 0.25, 0.15, 0.07, 0.03])).pvalue > P_MIN
    g = prec.gumbel_noise(jax.random.key(4), (1 << 15,), precision)
    assert stats.kstest(np.asarray(g, np.float64), stats.gumbel_r.cdf).pvalue > P_MIN


def test_categorical_axis_and_rejects_other_precisions():
    logits = jnp.array([[0.0, -jnp.inf], [-jnp.inf, 0.0], [0.0, -jnp.inf]])  # [3, 2]
    np.testing.assert_array_equal(
        np.asarray(prec.categorical(jax.random.key(0), logits)), [0, 1, 0]
    )
    np.testing.assert_array_equal(
        np.asarray(prec.categorical(jax.random.key(0), logits.T, axis=0)), [0, 1, 0]
    )
    with pytest.raises(ValueError):
        prec.categorical(jax.random.key(0), logits, precision=jnp.bfloat16)


def test_scoped_x64_gives_true_float64(single_leaf):
    """Wrapping the whole jitted call in ``jax.enable_x64(True)`` switches to float64 noise
    and arithmetic without touching the global flag."""
    assert not prec.x64_enabled()
    table, model = single_leaf
    procs = {"tok": MaskedDiffusion(vocab_size=3, schedule=LinearSchedule())}
    with jax.enable_x64(True):
        assert prec.x64_enabled()
        assert prec.gumbel_noise(jax.random.key(0), (4,)).dtype == jnp.float64
        state, info = _run(
            first_hitting_sample, model, procs, {}, jax.random.key(9), {"tok": (4000, 3)}
        )
    assert not prec.x64_enabled()
    assert int(info["nfe"]) == 3
    assert _chi2_pvalue(state["tok"], table) > P_MIN


# --- the joint (K + 1)-way ancestral draw of MDLM (draw="joint") ---


@pytest.mark.parametrize("draw", ["split", "joint"])
@pytest.mark.parametrize("precision", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_ancestral_step_kernel(draw, precision):
    """One step t -> s with fixed logits: a masked token stays masked with probability
    m_s / m_t and takes class k with p_k (m_t - m_s) / m_t (chi-square over the K + 1
    outcomes, which rejects an unmask probability 3% off); unmasked tokens are kept and
    the last step (m_s = 0) unmasks everything."""
    from genmodels.samplers.masked import ancestral_update

    p = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
    k, n, kept = 5, 60000, 100
    logits = jnp.broadcast_to(jnp.log(jnp.asarray(p, jnp.float32)) + 2.0, (n, k))
    x = jnp.full((n,), k, jnp.int32).at[:kept].set(jnp.arange(kept) % k)  # [N]
    step = jax.jit(
        lambda key, m_s: ancestral_update(
            key, x, logits, 0.8, m_s, mask_id=k, precision=precision, draw=draw
        )
    )
    out = np.asarray(step(jax.random.key(7), 0.3))
    np.testing.assert_array_equal(out[:kept], np.asarray(x[:kept]))
    counts = np.bincount(out[kept:], minlength=k + 1)
    law = np.append(p * 0.5 / 0.8, 0.3 / 0.8)
    assert stats.chisquare(counts, (n - kept) * law).pvalue > P_MIN
    off = np.append(0.97 * law[:k], 1.0 - 0.97 * law[:k].sum())  # power check
    assert stats.chisquare(counts, (n - kept) * off).pvalue < 1e-6
    last = np.asarray(step(jax.random.key(8), 0.0))
    assert last.max() < k and np.all(last[:kept] == np.asarray(x[:kept]))


@pytest.mark.parametrize("precision", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_ancestral_joint_draw_reproduces_its_law(precision, single_leaf):
    """The joint draw has the split draw's kernel, so the ancestral sampler keeps its exact
    16-step law (:func:`ancestral_law`) with ``draw="joint"``."""
    table, model = single_leaf
    procs = {"tok": MaskedDiffusion(vocab_size=3)}
    sampler = functools.partial(
        ancestral_sample, steps=ANCESTRAL_STEPS, draw="joint", precision=precision
    )
    state, _ = _run(sampler, model, procs, {}, jax.random.key(12), {"tok": (N_SAMPLES, 3)})
    assert state["tok"].max() < 3
    assert _chi2_pvalue(state["tok"], ancestral_law(table, LinearSchedule(), 16)) > P_MIN


def test_draw_option_reaches_the_ancestral_sampler_through_the_registry(single_leaf):
    """A recipe config's ``draw`` field (``--config.draw joint``) becomes the ancestral
    entry's option as the runner builds it (config fields named like option fields); the
    first-hitting sampler has no such option, the default is unchanged and an unknown draw
    is refused."""
    import dataclasses

    from genmodels.core.types import identity_constrain
    from genmodels.samplers.registry import REGISTRY, AncestralOptions, run_sampler

    @dataclasses.dataclass(frozen=True)
    class Config:  # the sampling fields of a masked-diffusion recipe
        precision: str = "float64"
        time_conditioning: bool = False
        draw: str = "joint"
        sample_steps: int = 8

    _, model = single_leaf
    procs = {"tok": MaskedDiffusion(vocab_size=3)}
    fields = dataclasses.asdict(Config())
    assert REGISTRY["ancestral"].options().draw == "split"
    opts = REGISTRY["ancestral"].make_options(**fields)
    assert opts == AncestralOptions(draw="joint")
    assert not hasattr(REGISTRY["fhs"].make_options(**fields), "draw")
    kw = dict(shapes={"tok": (4, 3)}, steps=8, constrain=identity_constrain)
    key = jax.random.key(0)
    out, _ = run_sampler("ancestral", model, procs, {}, key, options=opts, **kw)
    ref, _ = ancestral_sample(model, procs, {}, key, shapes={"tok": (4, 3)}, steps=8, draw="joint")
    np.testing.assert_array_equal(np.asarray(out["tok"]), np.asarray(ref["tok"]))
    with pytest.raises(ValueError, match="unknown draw"):
        run_sampler("ancestral", model, procs, {}, key, options=AncestralOptions(draw="x"), **kw)


def test_mdlm_float32_noise_support():
    """MDLM's float32 noise ``1e-10 - log(u + 1e-10)`` on torch.rand's grid ``k 2^-24``: E in
    [5.97e-8, 23.03] (low 8 bits unused), and the float32 race is the argmax of w / E over
    exactly that noise."""
    u32 = functools.partial(jnp.asarray, dtype=jnp.uint32)
    e = prec.exponential_from_bits_mdlm
    assert float(e(u32(0xFFFFFFFF))) == pytest.approx(prec.MDLM_EXP_MIN, rel=1e-4)
    assert prec.MDLM_EXP_MIN == pytest.approx(2.0**-24, rel=2e-3)
    assert float(e(u32(0))) == pytest.approx(prec.MDLM_EXP_MAX, rel=1e-6)
    assert float(e(u32(0xFFFFFF00))) == float(e(u32(0xFFFFFFFF)))
    assert float(e(u32(0x80000000))) == pytest.approx(np.log(2.0), rel=1e-6)
    lw = jnp.log(jnp.array([[0.5, 0.3, 0.2, 1e-8]] * 64, jnp.float32))  # [64, 4]
    key = jax.random.key(1)
    manual = jnp.argmax(jnp.exp(lw) / e(jax.random.bits(key, lw.shape, jnp.uint32)), -1)
    np.testing.assert_array_equal(
        np.asarray(prec.categorical_race(key, lw, precision=jnp.float32)), np.asarray(manual)
    )


def _race_law_float32(w_tail: float, w_others: list[float]) -> float:
    """Exact probability that an entry of weight ``w_tail`` wins MDLM's float32 race
    against entries of weights ``w_others`` (listed first, so they win ties), by
    enumerating all 2^24 values of the noise (each equally likely)."""
    e = np.asarray(prec.exponential_from_bits_mdlm(jnp.arange(1 << 24, dtype=jnp.uint32) << 8))
    scores = [np.sort(np.float32(w) / e) for w in w_others]  # [2^24] each
    b = np.float32(w_tail) / e
    b = b[b > max(s[0] for s in scores)]  # the tail cannot win elsewhere
    p = np.ones(b.shape)
    for s in scores:
        p *= np.searchsorted(s, b, side="left") / s.size  # P(score_j < b)
    return float(p.sum() / e.size)


def _race_law_64(gap: float, n: int = 1 << 18) -> float:
    """Monte-Carlo P(logit -gap beats logit 0) with the 64-bit Gumbel noise of the float64
    race: the tail's noise drawn conditionally on U > 1 - 2^-17 (g > 11.78; below it the
    tail wins only if g_top < 11.78 - gap, probability exp(-e^4.2) ~ 1e-29 at gap 16),
    the top's unconditionally."""
    k = 16
    bits = jax.random.bits(jax.random.key(21), (2, n), jnp.uint32)
    g_tail = prec.gumbel_from_bits_64(bits[0] & jnp.uint32(0x7FFFFFFF >> k), bits[1])
    g_top = np.sort(np.asarray(prec.gumbel_noise(jax.random.key(22), (n,))))
    assert float(jnp.min(g_tail)) > 11.78
    x = np.asarray(jnp.float32(-gap) + g_tail)
    return float(np.searchsorted(g_top, x, side="left").mean() / n * 2.0 ** -(k + 1))


def test_joint_float32_draw_truncates_the_tail_float64_does_not():
    """Part 3 of benchmarks/mdm.py for the joint draw, as exact laws: one ancestral step
    with unmask probability 1/2 over GPT-2's 50,257 classes, one at logit 0 and the rest
    16 nats below, so each tail class races the top class and the mask (both ~1e8 times
    heavier). Under MDLM's float32 noise a tail class wins with ~0.56 of its exact
    probability (the tail mass drawn drops from 0.0056 to ~0.0031); the 64-bit noise of
    the float64 race gives the exact value within its Monte-Carlo error; a class below
    MDLM_EXP_MIN / MDLM_EXP_MAX ~= 2.6e-9 of the heaviest entry is never drawn in float32.
    (Sampling this directly needs ~1e9 noise values: benchmarks/mdm.py does.)
    """
    vocab, gap = 50257, 16.0
    p = np.full(vocab, np.exp(-gap))
    p[0] = 1.0
    p /= p.sum()
    w_top, w_mask, w_tail = p[0], 1.0, p[1]  # (m_t - m_s) = m_s: unmask probability 1/2
    exact = w_tail / (w_top + w_mask + w_tail)
    f32 = _race_law_float32(w_tail, [w_top, w_mask])
    assert 0.45 < f32 / exact < 0.7  # 0.56
    # per unmasked token (half of them): 0.0056 exact, ~0.0032 in float32
    assert 2 * (vocab - 1) * exact == pytest.approx(0.0056, abs=1e-4)
    assert 2 * (vocab - 1) * f32 < 0.0035
    # the K-way race against the top class alone (float32 Gumbel split draw: 0.56; here 0.76)
    two_way = _race_law_float32(p[1], [p[0]])
    assert 0.7 < two_way / (p[1] / (p[0] + p[1])) < 0.85
    assert _race_law_float32(0.9 * prec.MDLM_EXP_MIN / prec.MDLM_EXP_MAX, [1.0]) == 0.0
    f64 = _race_law_64(gap)
    assert f64 / (np.exp(-gap) / (1 + np.exp(-gap))) == pytest.approx(1.0, abs=0.08)
