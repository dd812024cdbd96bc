"""BOSS: Bellman optimal step sizes for flow sampling, and the straightening loss.

Nguyen et al., "Bellman Optimal Stepsize Straightening of Flow-Matching Models", ICLR 2024
(code: nguyenngocbaocmt02/BOSS, ``ImageGeneration/sampling.py`` and ``losses.py``).

1. Reference trajectories: Euler on a fine grid of ``Kmax`` steps (time ``1 -> 0`` here;
   the repo integrates its own ``0 -> 1`` convention with the same Euler solver), from
   ``num_samples`` prior draws (:func:`reference_trajectories`).
2. Cost of a single Euler step from fine-grid point ``i`` to a later point ``j``:
   ``c[i, j] = mean_b ||x_i + (t_j - t_i) v(x_i, t_i) - x_j||^2`` with the squared error
   summed over all entries of one example and averaged over samples (the repo's
   ``l2_pixel`` cost: ``torch.sum(torch.square(...))`` accumulated then divided by the
   sample count). ``c[i, j] = inf`` for ``j <= i`` (:func:`cost_matrix`).
3. Bellman dynamic program: the ``K``-step path ``0 = i_0 < i_1 < ... < i_K = Kmax``
   minimizing ``sum_k c[i_k, i_{k+1}]`` (the paper's Bellman recursion; ``find_minimum_cost_path`` with
   method "dp"), in ``O(K Kmax^2)`` (:func:`optimal_grid`).
4. Straightening fine-tuning (``get_redress_loss_fn`` and the
   ``generate_data_from_z0`` branch of ``finetune.py``): along the fine reference
   trajectory, each consecutive pair of BOSS grid points ``(i_k, i_{k+1})`` gives an input
   ``(x_{i_k}, t_{i_k})`` and the target velocity ``(x_{i_{k+1}} - x_{i_k}) /
   (t_{i_{k+1}} - t_{i_k})``, i.e. the slope that makes one Euler step land exactly on
   the reference; the loss is the mean squared error between the model's velocity and
   that target (the repo's default "l2" option). Because ``t`` runs ``1 -> 0`` here, the
   target is still ``dx/dt`` and is what :func:`genmodels.samplers.ode.euler_sample`
   multiplies by ``t_{k+1} - t_k``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from genmodels.core.masks import apply_masks, get_mask, masked_mean
from genmodels.core.types import Array, ConstrainFn, Context, FieldFn, State, identity_constrain
from genmodels.processes.base import Processes
from genmodels.samplers.ode import euler_sample


def reference_trajectories(
    velocity_fn: FieldFn,
    processes: Processes,
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    fine_grid: Array,
    constrain: ConstrainFn = identity_constrain,
) -> State:
    """Fine Euler trajectories used as the reference of the BOSS costs.

    Args:
      velocity_fn: ``(state, t [B], ctx) -> dict`` flow velocity.
      processes: leaf name -> process (prior at ``fine_grid[0]``).
      ctx: context (masks).
      key: PRNG key of the prior draws.
      shapes: leaf name -> full shape (batch first).
      fine_grid: [Kmax + 1] decreasing times (e.g. ``uniform_grid(Kmax)``).
      constrain: domain hook.

    Returns:
      Per leaf [Kmax + 1, B, ...]: the state at every fine-grid time (Kmax NFE).
    """
    _, info = euler_sample(
        velocity_fn,
        processes,
        ctx,
        key,
        shapes=shapes,
        grid=fine_grid,
        constrain=constrain,
        return_trajectory=True,
    )
    return info["trajectory"]


def cost_matrix(
    velocity_fn: FieldFn,
    trajectories: State,
    fine_grid: Array,
    ctx: Context | None = None,
    *,
    map_batch: int | None = 16,
) -> Array:
    """BOSS cost of a single Euler step between every pair of fine-grid points.

    ``c[i, j] = mean_b sum_entries (x_i + (t_j - t_i) v(x_i, t_i) - x_j)^2`` for ``j > i``
    (``x`` the reference states), ``inf`` otherwise. Rows are computed with
    ``lax.map`` over start points (``map_batch`` start points vectorized at a time), so
    memory stays at ``map_batch x (Kmax + 1) x B x entries``.

    Args:
      velocity_fn: ``(state, t [B], ctx) -> dict`` flow velocity.
      trajectories: per leaf [Kmax + 1, B, ...] from :func:`reference_trajectories`.
      fine_grid: [Kmax + 1] the grid the trajectories were computed on.
      ctx: context (masks); the padded entries of the velocity are ignored.
      map_batch: start points evaluated together (``None``: one at a time).

    Returns:
      [Kmax + 1, Kmax + 1] float32 costs (Kmax NFE; the last point is never a start).
    """
    ctx = {} if ctx is None else ctx
    grid = jnp.asarray(fine_grid, jnp.float32)
    n = grid.shape[0]
    b = next(iter(trajectories.values())).shape[1]
    cols = jnp.arange(n)

    def row(i: Array) -> Array:
        x_i = {k: v[i] for k, v in trajectories.items()}
        vel = apply_masks(velocity_fn(x_i, jnp.full((b,), grid[i]), ctx), ctx)
        dt = grid - grid[i]  # [n]
        err = jnp.zeros((n, b), jnp.float32)
        for k, traj in trajectories.items():
            shape = (n,) + (1,) * (traj.ndim - 1)
            est = x_i[k][None] + dt.reshape(shape) * vel[k][None]  # [n, B, ...]
            sq = (est - traj) ** 2
            err = err + jnp.sum(sq.reshape(n, b, -1), axis=-1)  # [n, B]
        return jnp.where(cols > i, jnp.mean(err, axis=1), jnp.inf)  # [n]

    rows = jax.lax.map(row, jnp.arange(n - 1), batch_size=map_batch)  # [n - 1, n]
    return jnp.concatenate([rows, jnp.full((1, n), jnp.inf, rows.dtype)], axis=0)


class BossGrid(NamedTuple):
    """Result of :func:`optimal_grid`.

    Attributes:
      indices: [K + 1] int32 fine-grid indices, ``0`` first and ``Kmax`` last.
      times: [K + 1] the corresponding times (``None`` without a fine grid).
      cost: scalar total cost of the path.
    """

    indices: Array
    times: Array | None
    cost: Array


def optimal_grid(cost: Array, K: int, fine_grid: Array | None = None) -> BossGrid:
    """Bellman dynamic program for the cheapest ``K``-step path through the fine grid.

    ``V_1(i) = c[i, n-1]``, ``V_k(i) = min_{j > i} c[i, j] + V_{k-1}(j)`` (BOSS's
    Bellman recursion), one ``[n, n]`` min per budget inside ``lax.scan``: ``O(K n^2)``, jit
    compatible; the path is read back from the stored argmins.

    Args:
      cost: [n, n] step costs with ``inf`` where ``j <= i`` (from :func:`cost_matrix`).
      K: number of steps (static), ``1 <= K <= n - 1``.
      fine_grid: optional [n] times, to return the selected times as well.

    Returns:
      :class:`BossGrid` (indices, times, total cost).
    """
    c = jnp.asarray(cost, jnp.float32)
    n = c.shape[0]
    if not 1 <= K <= n - 1:
        raise ValueError(f"K must be in [1, {n - 1}] for a {n}-point grid, got {K}")

    def budget(v: Array, _: None) -> tuple[Array, Array]:
        total = c + v[None, :]  # [n, n]: step i -> j, then the best (k-1)-step path from j
        return jnp.min(total, axis=1), jnp.argmin(total, axis=1).astype(jnp.int32)

    v_k, choices = jax.lax.scan(budget, c[:, n - 1], None, length=K - 1)  # choices [K-1, n]

    def follow(i: Array, choice: Array) -> tuple[Array, Array]:
        j = choice[i]
        return j, j

    # choices[m] is the table of budget m + 2; the walk from 0 spends budgets K, ..., 2.
    _, middle = jax.lax.scan(follow, jnp.int32(0), choices[::-1])  # [K - 1]
    indices = jnp.concatenate(
        [jnp.zeros((1,), jnp.int32), middle, jnp.full((1,), n - 1, jnp.int32)]
    )
    times = None if fine_grid is None else jnp.asarray(fine_grid)[indices]
    return BossGrid(indices=indices, times=times, cost=v_k[0])


def path_cost(cost: Array, indices: Array) -> Array:
    """Total cost ``sum_k c[i_k, i_{k+1}]`` of a path through the fine grid."""
    idx = jnp.asarray(indices)
    return jnp.sum(jnp.asarray(cost)[idx[:-1], idx[1:]])


def straightening_pairs(
    trajectories: State, fine_grid: Array, indices: Array
) -> tuple[State, Array, State]:
    """Inputs and targets of BOSS straightening for every step of a BOSS grid.

    Args:
      trajectories: per leaf [Kmax + 1, B, ...] fine reference states.
      fine_grid: [Kmax + 1] times.
      indices: [K + 1] fine-grid indices of the BOSS path.

    Returns:
      ``(x_start, t_start, target)``: per leaf [K, B, ...] start states, [K] start times,
      per leaf [K, B, ...] target velocities ``(x_end - x_start) / (t_end - t_start)``.
    """
    grid = jnp.asarray(fine_grid, jnp.float32)
    i0, i1 = indices[:-1], indices[1:]
    dt = grid[i1] - grid[i0]  # [K]
    x_start = {k: v[i0] for k, v in trajectories.items()}
    target = {
        k: (v[i1] - v[i0]) / dt.reshape((-1,) + (1,) * (v.ndim - 1))
        for k, v in trajectories.items()
    }
    return x_start, grid[i0], target


def straightening_batch(
    key: Array, trajectories: State, fine_grid: Array, indices: Array
) -> tuple[State, Array, State]:
    """One straightening example per trajectory: a random BOSS step for each sample.

    Keeps the batch axis of ``trajectories`` (so masks in ``ctx`` still apply), drawing
    the segment ``k ~ U{0..K-1}`` independently per example, like the repo's shuffled
    dataset of ``(z0, z1, t0, t1)`` pairs.

    Returns:
      ``(x [B, ...] per leaf, t [B], target [B, ...] per leaf)``.
    """
    x_start, t_start, target = straightening_pairs(trajectories, fine_grid, indices)
    num_k = t_start.shape[0]
    b = next(iter(trajectories.values())).shape[1]
    k = jax.random.randint(key, (b,), 0, num_k)  # [B]
    rows = jnp.arange(b)
    x = {name: v[k, rows] for name, v in x_start.items()}
    tgt = {name: v[k, rows] for name, v in target.items()}
    return x, t_start[k], tgt


def straightening_loss(pred: State, target: State, ctx: Context | None = None) -> Array:
    """BOSS straightening loss: mean squared error of the velocity vs the target slope.

    Args:
      pred: model velocities at the inputs of :func:`straightening_batch`.
      target: the target velocities.
      ctx: context (masks): padding is excluded from the mean.

    Returns:
      [B] per-example loss, summed over leaves.
    """
    total = 0.0
    for k in target:
        total = total + masked_mean((pred[k] - target[k]) ** 2, get_mask(ctx, k))
    return jnp.asarray(total)
