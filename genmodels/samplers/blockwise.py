"""Block-by-block generation (PARD): an autoregressive loop over blocks, each block drawn
by the discrete ancestral sampler of :class:`~genmodels.processes.discrete.DiscreteDiffusion`.

PARD (Zhao et al., NeurIPS 2024, Sec. 3) factorizes a graph as
``p(G) = prod_b p(B_b | B_{<b})``: the blocks of its degree-based partial order are
generated in order, and each conditional is a discrete diffusion over the new block's
nodes and its edges (to itself and to all earlier nodes) with the earlier blocks as clean
context. This module is the generic driver; what a "block" is (which entries of the state
it opens, how its size is drawn) comes from callbacks, so no domain or network is
imported here:

- ``open_block(state, ctx, block) -> (state, ctx)`` opens block ``block`` (an int32
  scalar): it sets ``ctx["masks"][leaf]`` to the entries to generate and anything else the
  network needs (block ids, the block's size and degree).
- ``model_fn(state, t, ctx) -> {leaf: logits [..., K]}`` predicts the clean classes.
- ``close_block(state, ctx, key) -> (state, ctx, done [B])`` marks the block as context
  and draws the next block's size (``done`` where it is 0: the graph is finished).

Inside a block, :func:`discrete_denoise` draws the masked entries from the prior and runs
``steps`` ancestral steps ``t -> t - 1`` (PARD's ``generate_last_block``); entries outside
the masks are never changed. The loop over blocks is a ``lax.while_loop`` that stops once
every graph is done or ``max_blocks`` blocks were drawn, so one jit serves every batch.
Categorical draws are float64-grade by default (:func:`genmodels.core.precision.categorical`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from genmodels.core.precision import categorical
from genmodels.core.types import Array, Context, State

__all__ = ["blockwise_sample", "discrete_denoise"]

LogitsFn = Callable[[State, Array, Context], State]


def discrete_denoise(
    model_fn: LogitsFn,
    processes: Mapping[str, Any],
    state: State,
    ctx: Context,
    key: Array,
    *,
    steps: int | None = None,
    precision=jnp.float64,
) -> tuple[State, Array]:
    """Draw the entries under ``ctx["masks"]`` by ancestral sampling; keep the others.

    Implements ``x_T ~ m``, then ``x_{t-1} ~ p(x_{t-1} | x_t)`` for ``t = T..1`` with
    ``p(x_{t-1} | x_t) = sum_j q(x_{t-1} | x_t, x_0 = j) p_theta(x_0 = j | x_t)`` (the
    process's ``reverse_probs``; at ``t = 1`` the draw is from ``p_theta(x_0 | x_1)``).

    Args:
      model_fn: ``(state, t [B], ctx) -> {leaf: logits [..., K]}``.
      processes: leaf -> :class:`~genmodels.processes.discrete.DiscreteDiffusion` (all
        with the same number of steps).
      state: int32 leaves [B, ...]; entries outside the masks are context.
      ctx: context with ``ctx["masks"][leaf]`` [B, ...] (1 = generate).
      key: PRNG key.
      steps: T (default: the processes').
      precision: dtype of the categorical draws.

    Returns:
      ``(state, nfe)``: the new state and the number of network calls (``T``).
    """
    names = list(processes)
    steps = int(steps or processes[names[0]].steps)
    masks = ctx["masks"]
    kp, ks = jax.random.split(key)
    pkeys = jax.random.split(kp, len(names))
    x = {}
    for k, name in enumerate(names):
        draw = processes[name].prior(pkeys[k], state[name].shape)
        x[name] = jnp.where(masks[name] > 0, draw, state[name]).astype(jnp.int32)
    for name in state:
        if name not in x:
            x[name] = state[name]
    batch = next(iter(x.values())).shape[0]

    def step(x, inp):
        i, k = inp
        t = jnp.full((batch,), steps - i, jnp.float32)
        logits = model_fn(x, t, ctx)
        out = dict(x)
        lkeys = jax.random.split(k, len(names))
        for j, name in enumerate(names):
            proc = processes[name]
            p0 = jax.nn.softmax(logits[name].astype(jnp.float32), axis=-1)
            tt = t.reshape((batch,) + (1,) * (x[name].ndim - 1))
            probs = proc.reverse_probs(p0, x[name], tt, tt - 1)
            new = categorical(lkeys[j], jnp.log(jnp.maximum(probs, 1e-30)), precision=precision)
            out[name] = jnp.where(masks[name] > 0, new, x[name]).astype(jnp.int32)
        return out, None

    x, _ = jax.lax.scan(step, x, (jnp.arange(steps), jax.random.split(ks, steps)))
    return x, jnp.asarray(steps, jnp.int32)


def blockwise_sample(
    model_fn: LogitsFn,
    processes: Mapping[str, Any],
    state: State,
    ctx: Context,
    key: Array,
    *,
    open_block: Callable[[State, Context, Array], tuple[State, Context]],
    close_block: Callable[[State, Context, Array], tuple[State, Context, Array]],
    max_blocks: int,
    steps: int | None = None,
    precision=jnp.float64,
) -> tuple[State, Context, dict[str, Array]]:
    """Generate blocks ``0, 1, ...`` until every graph is done (module docstring).

    Args:
      model_fn: the denoiser ``(state, t, ctx) -> logits``.
      processes: leaf -> discrete process.
      state: the initial state (int32 leaves; the first block's entries are overwritten).
      ctx: the initial context (must hold whatever ``open_block`` reads, including
        ``done`` [B] bool: graphs with nothing left to draw).
      key: PRNG key.
      open_block, close_block: the callbacks of the module docstring.
      max_blocks: hard cap on the number of blocks.
      steps: denoising steps per block.
      precision: dtype of the categorical draws.

    Returns:
      ``(state, ctx, info)`` with ``info["blocks"]`` [B] blocks drawn per graph and
      ``info["nfe"]`` the network calls of the denoiser (the block-size calls of
      ``close_block`` are not counted).
    """
    batch = ctx["done"].shape[0]

    def cond(carry):
        _, ctx, _, b, _ = carry
        return jnp.logical_and(b < max_blocks, jnp.logical_not(jnp.all(ctx["done"])))

    def body(carry):
        state, ctx, key, b, info = carry
        key, kd, kc = jax.random.split(key, 3)
        active = jnp.logical_not(ctx["done"])
        state, ctx = open_block(state, ctx, b)
        state, nfe = discrete_denoise(
            model_fn, processes, state, ctx, kd, steps=steps, precision=precision
        )
        state, ctx, done = close_block(state, ctx, kc)
        ctx = dict(ctx, done=jnp.logical_or(ctx["done"], done))
        info = {
            "blocks": info["blocks"] + active.astype(jnp.int32),
            "nfe": info["nfe"] + nfe,
        }
        return state, ctx, key, b + 1, info

    info0 = {"blocks": jnp.zeros((batch,), jnp.int32), "nfe": jnp.zeros((), jnp.int32)}
    state, ctx, _, _, info = jax.lax.while_loop(
        cond, body, (state, ctx, key, jnp.zeros((), jnp.int32), info0)
    )
    return state, ctx, info
