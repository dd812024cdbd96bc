"""The discrete ancestral sampler and the block loop, with an exact denoiser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genmodels.processes.discrete import DiscreteDiffusion
from genmodels.samplers.blockwise import blockwise_sample, discrete_denoise

PI = np.array([0.5, 0.3, 0.15, 0.05])


def exact_logits(proc, pi):
    """log p(x0 | x_t) for independent variables with marginal ``pi`` (Bayes' rule)."""

    def fn(state, t, ctx):
        x = state["x"]
        lik = proc.q_t0(jnp.arange(len(pi))[None, None, :], t[:, None, None])  # [B,1,K(x0),K(xt)]
        lik_xt = jnp.take_along_axis(lik, x[:, :, None, None], axis=-1)[..., 0]  # [B, L, K]
        return {"x": jnp.log(jnp.asarray(pi)) + jnp.log(lik_xt)}

    return fn


@pytest.mark.parametrize("steps", [1, 5, 50])
def test_exact_denoiser_reproduces_the_distribution(steps):
    proc = DiscreteDiffusion(4, steps=steps)
    b, L = 4000, 4
    state = {"x": jnp.zeros((b, L), jnp.int32)}
    mask = jnp.ones((b, L)).at[:, 0].set(0.0)  # slot 0 is context: never touched
    ctx = {"masks": {"x": mask}}
    out, nfe = jax.jit(
        lambda k: discrete_denoise(exact_logits(proc, PI), {"x": proc}, state, ctx, k)
    )(jax.random.PRNGKey(0))
    x = np.asarray(out["x"])
    assert int(nfe) == steps
    assert np.all(x[:, 0] == 0)
    freq = np.bincount(x[:, 1:].ravel(), minlength=4) / x[:, 1:].size
    np.testing.assert_allclose(freq, PI, atol=0.015)


def test_virtual_class_never_ends_a_sample():
    """A denoiser that prefers the virtual class (the last) everywhere: the ancestral steps
    visit it, the final draw never returns it; without the mask most samples would."""
    b, L = 500, 6
    state = {"x": jnp.zeros((b, L), jnp.int32)}
    ctx = {"masks": {"x": jnp.ones((b, L))}}
    seen = []

    def model_fn(state, t, ctx):
        jax.debug.callback(lambda x: seen.append(np.asarray(x)), state["x"])  # x_t of each step
        return {"x": jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 3.0]), (b, L, 4))}

    for virtual, want in ((True, 0.0), (False, 0.8)):
        proc = DiscreteDiffusion(4, steps=5, virtual=virtual)
        out, _ = discrete_denoise(model_fn, {"x": proc}, state, ctx, jax.random.PRNGKey(0))
        frac = float(np.mean(np.asarray(out["x"]) == 3))
        assert (frac == 0.0) if virtual else frac > want, (virtual, frac)
    assert float(np.mean(np.asarray(seen[-1]) == 3)) > 0.5  # x_1 mostly virtual


def test_block_loop_fills_slots_in_order_and_stops():
    """Blocks of sizes 2, 1, 3 then stop: the loop opens each block once, in order."""
    proc = DiscreteDiffusion(4, steps=3)
    b, n = 8, 8
    sizes = jnp.array([2, 1, 3, 0, 0, 0, 0, 0])
    state = {"x": jnp.zeros((b, n), jnp.int32)}
    ctx = {
        "done": jnp.zeros((b,), bool),
        "block_id": jnp.full((b, n), -1, jnp.int32),
        "n_done": jnp.zeros((b,), jnp.int32),
        "k": jnp.zeros((), jnp.int32),
        "masks": {"x": jnp.zeros((b, n))},
    }

    def open_block(state, ctx, blk):
        slot = jnp.arange(n)[None, :]
        new = (slot >= ctx["n_done"][:, None]) & (slot < ctx["n_done"][:, None] + sizes[blk])
        new = new & ~ctx["done"][:, None]
        return state, dict(
            ctx, block_id=jnp.where(new, blk, ctx["block_id"]), masks={"x": new * 1.0}
        )

    def close_block(state, ctx, key):
        n_done = jnp.sum(ctx["block_id"] >= 0, 1).astype(jnp.int32)
        blk = jnp.max(ctx["block_id"])
        return state, dict(ctx, n_done=n_done), jnp.broadcast_to(sizes[blk + 1] == 0, (b,))

    out, ctx, info = blockwise_sample(
        exact_logits(proc, PI),
        {"x": proc},
        state,
        ctx,
        jax.random.PRNGKey(0),
        open_block=open_block,
        close_block=close_block,
        max_blocks=n,
    )
    np.testing.assert_array_equal(np.asarray(ctx["block_id"][0]), [0, 0, 1, 2, 2, 2, -1, -1])
    assert np.all(np.asarray(info["blocks"]) == 3)
    assert int(info["nfe"]) == 9
    assert np.all(np.asarray(out["x"])[:, 6:] == 0)  # never opened


def test_registry_entry_samples_the_whole_state_as_one_block():
    """``blockwise`` in the sampler registry: every discrete process can use it through the
    generic signature (one block: all entries), with the exact denoiser's distribution."""
    from genmodels.samplers.registry import get_sampler, run_sampler, samplers_for

    proc = DiscreteDiffusion(4, steps=7)
    assert "blockwise" in samplers_for({"x": proc})
    assert get_sampler("blockwise", "discrete").options().precision == "float64"
    b, L = 4000, 3
    calls = []

    def constrain(state, ctx):
        calls.append(1)
        return state

    out, info = jax.jit(
        lambda k: run_sampler(
            "blockwise",
            exact_logits(DiscreteDiffusion(4, steps=5), PI),
            {"x": proc},
            {},
            k,
            shapes={"x": (b, L)},
            steps=5,
            constrain=constrain,
        )
    )(jax.random.PRNGKey(1))
    assert int(info["nfe"]) == 5 and calls  # 5 steps (not the process's 7); hook applied
    freq = np.bincount(np.asarray(out["x"]).ravel(), minlength=4) / (b * L)
    np.testing.assert_allclose(freq, PI, atol=0.015)
