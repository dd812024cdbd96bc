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

The drivers (:func:`compute_boss_grids`, :func:`boss_trajectories`,
:func:`grids_for_checkpoint`) take a :class:`FlowProblem`: the field as a function of
its parameters, the processes, a per-batch setup (context and prior key) and the domain
hook, so this layer needs no network or domain. Grids are stored next to a checkpoint as
``boss_grids.json`` (:func:`write_boss_grids`), which the ``boss`` sampler's method reads.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from genmodels.core.grids import uniform_grid
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


# ------------------------------------------------------------------ drivers and files

#: the grid file next to a checkpoint, and the averaged cost matrix next to it
BOSS_GRIDS_FILE = "boss_grids.json"
COST_MATRIX_FILE = "boss_cost_matrix.npy"
#: step budgets grids are computed for by default (the NFE range of the paper's tables)
DEFAULT_KS = tuple(range(2, 11))
#: the time convention written into (and checked in) grid files
TIME_CONVENTION = "t=1 noise (prior), t=0 data; times decrease along a grid"


class FlowProblem(NamedTuple):
    """A flow model as the BOSS drivers need it.

    Attributes:
      make_field: ``params -> field``, ``field(state, t [B], ctx) -> velocities``.
      params: the parameters (a traced argument of every jitted batch).
      processes: leaf -> process (the prior at ``t = 1``).
      setup: ``(key, batch) -> (ctx, prior key, shapes)`` of one batch (traced; e.g.
        node counts drawn from the training set).
      constrain: the domain hook.
    """

    make_field: Callable[[Any], FieldFn]
    params: Any
    processes: Processes
    setup: Callable[[Array, int], tuple[Context, Array, Mapping[str, tuple[int, ...]]]]
    constrain: ConstrainFn = identity_constrain


def _batches(
    problem: FlowProblem, key: Array, num: int, batch: int, fine_steps: int, body, desc: str,
    progress: bool,
) -> Iterator[Any]:  # fmt: skip
    """Host outputs of ``body(field, trajectories, ctx)`` on equal jitted batches (one
    compile) of at least ``num`` fine Euler trajectories; batch ``r`` uses
    ``fold_in(key, r)``."""
    if num < 1 or batch < 1:
        raise ValueError(f"need num >= 1 and batch >= 1, got num={num}, batch={batch}")
    rounds = math.ceil(num / batch)
    per_round = math.ceil(num / rounds)
    fine = uniform_grid(fine_steps)

    @jax.jit
    def run(params, key):
        field = problem.make_field(params)
        ctx, k, shapes = problem.setup(key, per_round)
        traj = reference_trajectories(
            field, problem.processes, ctx, k, shapes=shapes, fine_grid=fine,
            constrain=problem.constrain,
        )  # fmt: skip
        return body(field, traj, ctx)

    for r in tqdm(range(rounds), desc=desc, disable=not progress, unit="batch"):
        yield per_round, jax.device_get(run(problem.params, jax.random.fold_in(key, r)))


def uniform_indices(k: int, fine_steps: int) -> np.ndarray:
    """Fine-grid indices of the uniform ``k``-step grid (rounded to the nearest fine point;
    exact when ``k`` divides ``fine_steps``). Returns int [k + 1]."""
    return np.rint(np.arange(k + 1) * fine_steps / k).astype(np.int64)


def grid_indices(times: np.ndarray, fine_steps: int) -> np.ndarray:
    """Fine-grid indices of a grid's times (``t_i = 1 - i / fine_steps``).

    Raises:
      ValueError: a time is not on the uniform fine grid of ``fine_steps`` steps.
    """
    times = np.asarray(times, np.float64)
    idx = np.rint((1.0 - times) * fine_steps).astype(np.int64)
    if not np.allclose(1.0 - idx / fine_steps, times, atol=1e-5):
        raise ValueError(
            f"grid {times.tolist()} is not on the uniform fine grid of {fine_steps} steps"
        )
    return idx


def compute_boss_grids(
    problem: FlowProblem,
    key: Array,
    *,
    num_samples: int = 100,
    fine_steps: int = 100,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 100,
    map_batch: int = 4,
    progress: bool = True,
) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Bellman-optimal Euler time grids of a flow for several step budgets.

    The cost matrix ``c[i, j] = E ||x_i + (t_j - t_i) v(x_i, t_i) - x_j||^2`` (against the
    fine Euler trajectory; module docstring, 2.) is averaged over equal batches of prior
    draws, then the dynamic program (:func:`optimal_grid`) runs for every ``K``. Each
    draw costs ``2 fine_steps`` network calls. BOSS's defaults: ``Kmax = 100``, 100 draws.

    Args:
      problem: the flow (:class:`FlowProblem`).
      key: PRNG key of the draws (batch ``r`` uses ``fold_in(key, r)``).
      num_samples: prior draws (rounded up to equal batches).
      fine_steps: ``Kmax``, steps of the uniform fine grid.
      ks: step budgets ``K`` (each ``1 <= K <= fine_steps``).
      batch_size: draws per jitted call.
      map_batch: start points of the cost matrix evaluated together (memory:
        ``map_batch * (fine_steps + 1) * batch * entries`` floats).
      progress: tqdm bar over the batches.

    Returns:
      ``(grids, info)``: ``grids[K]`` float32 [K + 1] times from 1 down to 0; ``info``
      holds ``cost_matrix`` (float64 [Kmax + 1, Kmax + 1]), ``fine_steps``,
      ``num_samples`` (draws used), ``indices[K]``, ``cost[K]`` (the optimal path's),
      ``uniform_cost[K]`` (the uniform path's, rounded to the fine grid by
      :func:`uniform_indices`), ``uniform_exact[K]`` (``K`` divides ``Kmax``) and
      ``seconds``.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > fine_steps:
        raise ValueError(f"every K must be in [1, fine_steps={fine_steps}], got {ks}")
    t0 = time.perf_counter()
    fine = uniform_grid(fine_steps)

    def body(field, traj, ctx):
        return cost_matrix(field, traj, fine, ctx, map_batch=map_batch)

    total, used, rounds = 0.0, 0, 0
    for per_round, c in _batches(
        problem, key, num_samples, batch_size, fine_steps, body, "boss cost matrix", progress
    ):
        total, used, rounds = total + c.astype(np.float64), used + per_round, rounds + 1
    cost = total / rounds  # inf (j <= i) stays inf
    paths = jax.jit(lambda c: [optimal_grid(c, k, fine) for k in ks])(
        jnp.asarray(cost, jnp.float32)
    )
    info: dict[str, Any] = {"cost_matrix": cost, "fine_steps": int(fine_steps), "num_samples": used}
    info |= {name: {} for name in ("indices", "cost", "uniform_cost", "uniform_exact")}
    grids = {}
    for k, p in zip(ks, paths):
        idx = np.asarray(p.indices, np.int64)
        grids[k] = np.asarray(p.times, np.float32)
        info["indices"][k] = idx.tolist()
        info["cost"][k] = float(path_cost(cost, idx))
        info["uniform_cost"][k] = float(path_cost(cost, uniform_indices(k, fine_steps)))
        info["uniform_exact"][k] = fine_steps % k == 0
    info["seconds"] = time.perf_counter() - t0
    return grids, info


def boss_trajectories(
    problem: FlowProblem,
    key: Array,
    times: np.ndarray,
    *,
    num: int,
    fine_steps: int = 100,
    batch_size: int = 100,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Fine Euler trajectories read at the times of a BOSS grid (straightening data).

    Args:
      problem: the teacher flow.
      key: PRNG key (batch ``r`` uses ``fold_in(key, r)``).
      times: [K + 1] a grid on the fine grid (:func:`grid_indices`).
      num: trajectories kept.
      fine_steps, batch_size, progress: as :func:`compute_boss_grids`.

    Returns:
      Per leaf float32 [num, K + 1, ...]: the states at the grid's times.
    """
    idx = jnp.asarray(grid_indices(times, fine_steps))

    def body(field, traj, ctx):
        return {k: jnp.moveaxis(v[idx], 0, 1) for k, v in traj.items()}  # [B, K + 1, ...]

    parts = [
        out
        for _, out in _batches(
            problem, key, num, batch_size, fine_steps, body, "boss pairs", progress
        )
    ]
    return {k: np.concatenate([p[k] for p in parts])[:num] for k in parts[0]}


def grids_meta(info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The JSON-serialisable part of :func:`compute_boss_grids`'s ``info`` (per-K entries
    keyed by ``str(K)``; the cost matrix goes to its own ``.npy``), plus ``extra``."""
    out = {k: info[k] for k in ("fine_steps", "num_samples", "seconds") if k in info} | {
        k: {str(kk): v for kk, v in info[k].items()}
        for k in ("indices", "cost", "uniform_cost", "uniform_exact")
        if k in info
    }
    return out | extra


def grid_table(grids: dict[int, np.ndarray], info: dict[str, Any]) -> str:
    """A markdown table of the grids with their cost next to the uniform grid's."""
    lines = [
        "| K | BOSS grid (t from 1 to 0) | BOSS cost | uniform cost | BOSS / uniform |",
        "|---|---|---|---|---|",
    ]
    for k, g in sorted(grids.items()):
        c, u = info["cost"][k], info["uniform_cost"][k]
        star = "" if info["uniform_exact"][k] else "*"
        ratio = c / u if u > 0 else float("nan")
        times = ", ".join(f"{t:.3f}" for t in g)
        lines.append(f"| {k} | {times} | {c:.4g} | {u:.4g}{star} | {ratio:.3f} |")
    if not all(info["uniform_exact"].values()):
        lines.append(
            f"\n\\* K does not divide Kmax = {info['fine_steps']}: the uniform grid is "
            "rounded to the nearest fine-grid points."
        )
    return "\n".join(lines)


def check_grid(g: Any, k: int | None = None, where: str = "<grid>") -> np.ndarray:
    """``g`` as float32 [K + 1], checked to decrease strictly from 1 (noise) to 0 (data).

    Raises:
      ValueError: another length than ``k + 1``, or not such a grid (names ``where``).
    """
    g = np.asarray(g, np.float32)
    k = g.size - 1 if k is None else k
    if g.shape != (k + 1,):
        raise ValueError(f"{where}: grid for K={k} has {g.size} times, expected K + 1 = {k + 1}")
    if not (abs(g[0] - 1.0) < 1e-6 and abs(g[-1]) < 1e-6 and np.all(np.diff(g) < 0)):
        raise ValueError(
            f"{where}: grid for K={k} must decrease strictly from t=1 (noise) to t=0 (data), "
            f"got {g.tolist()}"
        )
    return g


def write_boss_grids(path: str | Path, grids: Mapping[int, Any], **meta: Any) -> Path:
    """Write grids as JSON: ``{"convention": TIME_CONVENTION, "grids": {"K": [1, ..., 0]},
    ...meta}`` (e.g. ``fine_steps``, ``num_samples``, ``cost``). Returns the path."""
    path = Path(path)
    out = {
        "convention": TIME_CONVENTION,
        "grids": {str(int(k)): check_grid(g, int(k), str(path)).tolist() for k, g in grids.items()},
        **meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return path


def read_boss_grids(path: str | Path) -> dict[int, np.ndarray]:
    """Grids of a :func:`write_boss_grids` file: ``K -> float32 [K + 1]``.

    Raises:
      FileNotFoundError: no file.
      ValueError: not that format (the message names the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no BOSS grid file")
    try:
        d = json.loads(path.read_text())
        grids, conv = d["grids"], d.get("convention", TIME_CONVENTION)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(
            f'{path}: not a BOSS grid file ({e}); expected {{"grids": {{"K": [1, ..., 0]}}}}'
        ) from e
    if conv != TIME_CONVENTION:
        raise ValueError(f"{path}: time convention {conv!r}, expected {TIME_CONVENTION!r}")
    return {int(k): check_grid(g, int(k), str(path)) for k, g in grids.items()}


def run_folder(checkpoint: str | Path) -> Path:
    """The folder holding ``checkpoints/`` (where sampler artefacts live)."""
    p = Path(checkpoint)
    return p.parent if p.name == "checkpoints" else p


def find_boss_grids(folder: str | Path | None) -> Path | None:
    """``boss_grids.json`` of a checkpoint folder (or of the run folder above a
    ``checkpoints`` folder), if there is one."""
    if folder is None:
        return None
    path = run_folder(folder) / BOSS_GRIDS_FILE
    return path if path.is_file() else None


def grids_for_checkpoint(
    problem: FlowProblem,
    folder: str | Path,
    *,
    seed: int = 0,
    out: str | Path | None = None,
    num_samples: int = 100,
    fine_steps: int = 100,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 100,
    progress: bool = True,
    **meta: Any,
) -> tuple[Path, dict[int, np.ndarray], dict[str, Any]]:
    """Compute the grids of a checkpoint's flow and store them next to it.

    Args:
      problem: the checkpoint's flow.
      folder: the run or pretrained folder (or its ``checkpoints`` folder).
      seed: seed of the prior draws.
      out: the grid file (default ``<folder>/boss_grids.json``); the cost matrix goes
        next to it as ``boss_cost_matrix.npy``.
      num_samples, fine_steps, ks, batch_size, progress: :func:`compute_boss_grids`'s.
      meta: extra JSON-serialisable entries of the file.

    Returns:
      ``(path written, grids, info)``.
    """
    grids, info = compute_boss_grids(
        problem, jax.random.PRNGKey(seed), num_samples=num_samples, fine_steps=fine_steps,
        ks=ks, batch_size=batch_size, progress=progress,
    )  # fmt: skip
    path = Path(out) if out is not None else run_folder(folder) / BOSS_GRIDS_FILE
    write_boss_grids(path, grids, **grids_meta(info, seed=seed, checkpoint=str(folder), **meta))
    np.save(path.parent / COST_MATRIX_FILE, info["cost_matrix"])
    return path, grids, info
