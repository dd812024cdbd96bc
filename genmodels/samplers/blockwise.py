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

:func:`slot_block_sample` is PARD's instance: blocks are contiguous runs of node slots of
a graph state ``{"nodes": [B, N], "edges": [B, P]}`` (``P`` = the pairs ``i < j``), and a
``head_fn`` callback (the network's next-block head) draws each next block's size and
degree. :func:`one_block_sample` is the registry's ``blockwise`` entry for any discrete
process: the whole state as one block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.precision import categorical
from genmodels.core.types import Array, ConstrainFn, Context, State

__all__ = [
    "blockwise_sample",
    "discrete_denoise",
    "one_block_sample",
    "slot_block_sample",
    "with_steps",
]

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
    constrain: ConstrainFn | None = None,
) -> tuple[State, Array]:
    """Draw the entries under ``ctx["masks"]`` by ancestral sampling; keep the others.

    Implements ``x_T ~ m``, then ``x_{t-1} ~ p(x_{t-1} | x_t)`` for ``t = T..1`` with
    ``p(x_{t-1} | x_t) = sum_j q(x_{t-1} | x_t, x_0 = j) p_theta(x_0 = j | x_t)`` (the
    process's ``reverse_probs``; at ``t = 1`` the draw is from ``p_theta(x_0 | x_1)``,
    which the process's ``clean_probs`` keeps off a virtual class).

    Args:
      model_fn: ``(state, t [B], ctx) -> {leaf: logits [..., K]}``.
      processes: leaf -> :class:`~genmodels.processes.discrete.DiscreteDiffusion` (all
        with the same number of steps).
      state: int32 leaves [B, ...]; entries outside the masks are context.
      ctx: context with ``ctx["masks"][leaf]`` [B, ...] (1 = generate).
      key: PRNG key.
      steps: T (default: the processes').
      precision: dtype of the categorical draws.
      constrain: optional domain hook applied after every step.

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
            tt = t.reshape((batch,) + (1,) * (x[name].ndim - 1))
            p0 = proc.clean_probs(logits[name], tt)  # a virtual class is masked at t = 1
            probs = proc.reverse_probs(p0, x[name], tt, tt - 1)
            new = categorical(lkeys[j], jnp.log(jnp.maximum(probs, 1e-30)), precision=precision)
            out[name] = jnp.where(masks[name] > 0, new, x[name]).astype(jnp.int32)
        return (out if constrain is None else constrain(out, ctx)), None

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


def with_steps(processes: Mapping[str, Any], steps: int) -> dict[str, Any]:
    """The processes with ``steps`` steps (their schedules are defined on ``t / T``)."""
    return {
        k: p if p.steps == steps else dataclasses.replace(p, steps=steps)
        for k, p in processes.items()
    }


def one_block_sample(
    model_fn: LogitsFn,
    processes: Mapping[str, Any],
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    steps: int,
    precision=jnp.float64,
    constrain: ConstrainFn | None = None,
) -> tuple[State, dict[str, Array]]:
    """Ancestral sampling of a whole state as one block (the registry's ``blockwise``).

    Args:
      model_fn: ``(state, t [B], ctx) -> {leaf: logits [..., K]}``.
      processes: leaf -> discrete process.
      ctx: context; ``ctx["masks"][leaf]`` (1 = generate) defaults to every entry.
      key: PRNG key.
      shapes: leaf -> shape (batch first).
      steps: T.
      precision: dtype of the categorical draws.
      constrain: the domain hook, applied after every step.

    Returns:
      ``(state, {"nfe"})``.
    """
    ones = {k: jnp.ones(s, jnp.float32) for k, s in shapes.items()}
    ctx = {**ctx, "masks": ctx.get("masks", ones)}
    state = {k: jnp.zeros(s, jnp.int32) for k, s in shapes.items()}
    procs = with_steps(processes, steps)
    state, nfe = discrete_denoise(
        model_fn, procs, state, ctx, key, precision=precision, constrain=constrain
    )
    return state, {"nfe": nfe}


def slot_block_sample(
    denoise_fn: LogitsFn,
    head_fn: Callable[[State, Context], tuple[Array, Callable[[Array], Array]]],
    processes: Mapping[str, Any],
    key: Array,
    *,
    batch: int,
    slots: int,
    first: tuple[Array, Array],
    precision=jnp.float64,
    shard: Callable[[Any], Any] = lambda tree: tree,
) -> tuple[State, Context, dict[str, Array]]:
    """PARD's sampler: blocks of contiguous node slots, sizes drawn by a head.

    Block ``b`` takes the next ``size`` free slots; its nodes and its pairs (inside the
    block and to every earlier node) are drawn by :func:`discrete_denoise`, then
    ``head_fn`` gives the next block's size (``0`` = stop) and degree. Sizes are drawn
    among those that fit the free slots, so ``info["overflow"]`` (a graph that hit the
    ``N``-slot cap) stays false.

    Args:
      denoise_fn: ``(state, t [B], ctx) -> {"nodes": [B, N, K_n], "edges": [B, P, K_e]}``
        logits; ``ctx`` holds ``block_id`` [B, N] (-1: no node yet), ``virtual`` [B, N]
        (the block being drawn) and ``degree`` [B, N] (each node's block degree).
      head_fn: ``(state, ctx) -> (size_logits [B, S], degree_logits)`` on the finished
        blocks (``ctx["virtual"]`` all false, ``ctx["n_done"]`` [B] the nodes so far);
        ``degree_logits(size [B]) -> [B, D]``.
      processes: ``{"nodes", "edges"}`` discrete processes (their steps are used).
      key: PRNG key: ``split(key)`` gives the first block's draw and the block loop's.
      batch: B; slots: N.
      first: ``(pairs [F, 2], logp [F])``: the first block's (size, degree) pairs and their
        log-probabilities.
      precision: dtype of the categorical draws.
      shard: applied to the initial ``(state, ctx)`` (a batch-sharding constraint).

    Returns:
      ``(state, ctx, info)``: int32 classes in slot order, ``ctx["block_id"]``, and
      ``info`` with ``blocks`` [B], ``overflow`` [B] and ``nfe``.
    """
    n = slots
    iu, ju = np.triu_indices(n, 1)
    pairs, logp = first
    k0, ks = jax.random.split(key)
    first = pairs[jax.random.categorical(k0, logp, shape=(batch,))]  # [B, 2]
    state = {
        "nodes": jnp.zeros((batch, n), jnp.int32),
        "edges": jnp.zeros((batch, len(iu)), jnp.int32),
    }
    ctx = {
        "block_id": jnp.full((batch, n), -1, jnp.int32),
        "virtual": jnp.zeros((batch, n), bool),
        "degree": jnp.zeros((batch, n), jnp.int32),
        "next_size": first[:, 0],
        "next_degree": first[:, 1],
        "n_done": jnp.zeros((batch,), jnp.int32),
        "done": jnp.zeros((batch,), bool),
        "overflow": jnp.zeros((batch,), bool),
        "masks": {
            "nodes": jnp.zeros((batch, n), jnp.float32),
            "edges": jnp.zeros((batch, len(iu)), jnp.float32),
        },
    }
    state, ctx = shard((state, ctx))

    def open_block(state, ctx, b):
        slot = jnp.arange(n)[None, :]
        start = ctx["n_done"][:, None]
        size = jnp.where(ctx["done"], 0, ctx["next_size"])[:, None]
        new = (slot >= start) & (slot < start + size)  # [B, N]
        overflow = ctx["overflow"] | (ctx["n_done"] + size[:, 0] > n)
        bid = jnp.where(new, b, ctx["block_id"])
        deg = jnp.where(new, ctx["next_degree"][:, None], ctx["degree"])
        real = bid >= 0
        pm = new[:, :, None] & (real[:, None, :] | new[:, None, :])
        pm = pm | jnp.swapaxes(pm, 1, 2)
        masks = {"nodes": new.astype(jnp.float32), "edges": pm[:, iu, ju].astype(jnp.float32)}
        ctx = dict(ctx, block_id=bid, virtual=new, degree=deg, masks=masks, overflow=overflow)
        return state, ctx

    def close_block(state, ctx, key):
        n_done = jnp.sum(ctx["block_id"] >= 0, 1).astype(jnp.int32)
        ctx = dict(ctx, virtual=jnp.zeros_like(ctx["virtual"]), n_done=n_done)
        size_logits, degree_logits = head_fn(state, ctx)
        kz, kd = jax.random.split(key)
        fits = jnp.arange(size_logits.shape[-1])[None, :] <= (n - n_done)[:, None]
        size = categorical(kz, jnp.where(fits, size_logits, -jnp.inf), precision=precision)
        deg = categorical(kd, degree_logits(size), precision=precision)
        done = (size == 0) | (n_done >= n)
        overflow = ctx["overflow"] | ((n_done >= n) & (size > 0))
        ctx = dict(
            ctx,
            next_size=size.astype(jnp.int32),
            next_degree=deg.astype(jnp.int32),
            overflow=overflow,
        )
        return state, ctx, done

    state, ctx, info = blockwise_sample(
        denoise_fn,
        processes,
        state,
        ctx,
        ks,
        open_block=open_block,
        close_block=close_block,
        max_blocks=n,
        precision=precision,
    )
    return state, ctx, dict(info, overflow=ctx["overflow"])
