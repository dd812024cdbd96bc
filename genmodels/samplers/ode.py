"""Deterministic samplers: Euler for flows, EDM's Heun (and Euler), a diffrax probability-flow ODE.

All three follow the sampler contract of the package: pure functions
``sampler(field_fn, processes, ctx, key, *, shapes, ...) -> (state, info)`` whose step loop
is a ``lax.scan`` (or a diffrax ``while_loop``), so the whole call can sit under
``jax.jit`` with the field closed over. ``info["nfe"]`` counts network evaluations.

The ``constrain`` hook (``constrain(apply_masks(state, ctx), ctx)``) is applied to the
prior draw and after every step; padded entries are held at exactly 0 (the prior and
every update are masked).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.grids import edm_sigma_grid, uniform_grid
from genmodels.core.masks import apply_masks, get_mask
from genmodels.core.random import split_like
from genmodels.core.types import Array, ConstrainFn, Context, FieldFn, State, identity_constrain
from genmodels.processes.base import Processes, prior_state


def _batch_size(shapes: Mapping[str, tuple[int, ...]]) -> int:
    return int(next(iter(shapes.values()))[0])


def _project(state: State, ctx: Context, constrain: ConstrainFn) -> State:
    return constrain(apply_masks(state, ctx), ctx)


def _axpy(x: State, h: Array, v: State) -> State:
    """``x + h v`` leaf by leaf, over the keys of ``x`` (extra keys of ``v`` ignored)."""
    return {k: x[k] + (h * v[k]).astype(x[k].dtype) for k in x}


def _with_initial(x0: State, traj: State) -> State:
    """Prepend the initial state to a scanned trajectory: [K, B, ...] -> [K + 1, B, ...]."""
    return {k: jnp.concatenate([x0[k][None], traj[k]], axis=0) for k in x0}


def euler_sample(
    velocity_fn: FieldFn,
    processes: Processes,
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    grid: Array | None = None,
    steps: int = 100,
    constrain: ConstrainFn = identity_constrain,
    return_trajectory: bool = False,
    init: State | None = None,
) -> tuple[State, dict]:
    """Euler integration of a flow ``dx/dt = v(x, t)`` from ``t = 1`` (prior) to ``t = 0``.

    ``x_{k+1} = x_k + (t_{k+1} - t_k) v(x_k, t_k)`` on any decreasing grid, e.g. the
    uniform one of rectified flow (Liu et al. 2023) or a BOSS grid
    (:mod:`genmodels.samplers.boss`). The velocity is never evaluated at the last time.

    Args:
      velocity_fn: ``(state, t [B], ctx) -> dict`` velocity for every leaf.
      processes: leaf name -> process (its ``prior`` gives the start at ``t = 1``).
      ctx: context (masks).
      key: PRNG key of the prior draw.
      shapes: leaf name -> full shape (batch first).
      grid: [K + 1] times from ``grid[0]`` (usually 1) to ``grid[-1]`` (usually 0);
        ``None`` uses the uniform grid with ``steps`` steps.
      steps: number of uniform steps when ``grid`` is ``None``.
      constrain: domain hook applied to the prior draw and after every step.
      return_trajectory: also return the states at every grid time.
      init: the start state (default: the processes' priors, drawn with ``key``).

    Returns:
      ``(state, info)``; ``info["nfe"] = K``; ``info["trajectory"]`` [K + 1, B, ...]
      per leaf when requested.
    """
    grid = uniform_grid(steps) if grid is None else jnp.asarray(grid, jnp.float32)
    num = grid.shape[0] - 1
    b = _batch_size(shapes)
    if init is None:
        init = prior_state(processes, key, shapes, ctx)
    x0 = _project(init, ctx, constrain)

    def step(x: State, tt: tuple[Array, Array]) -> tuple[State, State | None]:
        t_cur, t_next = tt
        v = velocity_fn(x, jnp.full((b,), t_cur, jnp.float32), ctx)
        x = _project(_axpy(x, t_next - t_cur, v), ctx, constrain)
        return x, (x if return_trajectory else None)

    x, traj = jax.lax.scan(step, x0, (grid[:-1], grid[1:]))
    info: dict = {"nfe": num}
    if return_trajectory:
        info["trajectory"] = _with_initial(x0, traj)
    return x, info


def _prior_at_sigma(
    processes: Processes,
    key: Array,
    shapes: Mapping[str, tuple[int, ...]],
    ctx: Context,
    sigma: float,
) -> State:
    """Each leaf's prior at noise level ``sigma`` for PFGM++ processes (``prior_at``),
    otherwise its plain ``prior``."""
    keys = split_like(key, dict(processes))
    out = {}
    for k, p in processes.items():
        mask = get_mask(ctx, k)
        if p.kind == "pfgmpp":
            out[k] = p.prior_at(keys[k], tuple(shapes[k]), sigma, mask=mask)
        else:
            out[k] = p.prior(keys[k], tuple(shapes[k]), mask=mask)
    return apply_masks(out, ctx)


def heun_sample(
    denoise_fn: FieldFn,
    processes: Processes,
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    steps: int = 18,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    constrain: ConstrainFn = identity_constrain,
    return_trajectory: bool = False,
) -> tuple[State, dict]:
    """EDM's deterministic second-order sampler (Karras et al. 2022, Alg. 1; S_churn = 0).

    Solves ``dx/dsigma = (x - D(x; sigma)) / sigma`` on :func:`edm_sigma_grid` (eq. 5):
    Heun steps between consecutive noise levels and a plain Euler step for the last one
    (to ``sigma = 0``), hence ``2 * steps - 1`` denoiser calls (35 for 18 steps). The
    same ODE is the PFGM++ sampler once ``r = sigma sqrt(D)`` (Xu et al. 2023;
    ``edm_sampler`` of Newbeeer/pfgmpp), so only the prior differs: each leaf starts from
    its process's ``prior_at(key, shape, sigma_max, mask)`` when the process has one
    (:class:`genmodels.processes.pfgmpp.PFGMPP`: Beta-prime radius for finite D, Gaussian
    for D = inf), otherwise from its ``prior``.

    The Euler predictor is masked (so the second call sees exact zeros in the padding);
    ``constrain`` is applied once per completed step.

    Args:
      denoise_fn: ``(state, sigma [B], ctx) -> dict`` denoised estimate D(x; sigma).
      processes: leaf name -> process.
      ctx: context (masks).
      key: PRNG key of the prior draw.
      shapes: leaf name -> full shape (batch first).
      steps: number of noise levels above 0 (EDM: 18).
      sigma_min, sigma_max, rho: the EDM grid (0.002, 80, 7).
      constrain: domain hook.
      return_trajectory: also return the state at every noise level.

    Returns:
      ``(state, info)``; ``info["nfe"] = 2 * steps - 1``, ``info["sigmas"]`` the grid
      [steps + 1], and ``info["trajectory"]`` [steps + 1, B, ...] when requested.
    """
    sig = edm_sigma_grid(steps, sigma_min, sigma_max, rho)  # [steps + 1], sig[-1] = 0
    b = _batch_size(shapes)
    x0 = _project(_prior_at_sigma(processes, key, shapes, ctx, sigma_max), ctx, constrain)

    def slope(x: State, s: Array) -> State:
        d = denoise_fn(x, jnp.full((b,), s, jnp.float32), ctx)
        return {k: (x[k] - d[k]) / s for k in x}

    def heun_step(x: State, ss: tuple[Array, Array]) -> tuple[State, State | None]:
        s_cur, s_next = ss
        h = s_next - s_cur
        d_cur = slope(x, s_cur)
        x_pred = apply_masks(_axpy(x, h, d_cur), ctx)
        d_next = slope(x_pred, s_next)
        avg = {k: 0.5 * (d_cur[k] + d_next[k]) for k in x}
        x = _project(_axpy(x, h, avg), ctx, constrain)
        return x, (x if return_trajectory else None)

    x, traj = jax.lax.scan(heun_step, x0, (sig[: steps - 1], sig[1:steps]))
    # Last step to sigma = 0: Euler only (the slope is undefined at 0).
    x = _project(_axpy(x, sig[steps] - sig[steps - 1], slope(x, sig[steps - 1])), ctx, constrain)
    info: dict = {"nfe": 2 * steps - 1, "sigmas": sig}
    if return_trajectory:
        full = _with_initial(x0, traj)
        info["trajectory"] = {k: jnp.concatenate([full[k], x[k][None]], 0) for k in x}
    return x, info


def edm_euler_sample(
    denoise_fn: FieldFn, processes: Processes, ctx: Context, key: Array, *, shapes, steps=18,
    constrain: ConstrainFn = identity_constrain, **grid: float,
) -> tuple[State, dict]:  # fmt: skip
    """First-order companion of :func:`heun_sample`: Euler steps of
    ``dx/dsigma = (x - D(x; sigma)) / sigma`` on the same grid (``steps`` denoiser calls).

    The sigma grid plays the role of :func:`euler_sample`'s decreasing time; the start is
    drawn at the grid's first level ``sigma_max`` (a PFGM++ process's ``prior_at``, as in
    :func:`heun_sample`; other processes' plain ``prior``) and the last step lands on
    ``sigma = 0``.

    Args:
      denoise_fn: ``(state, sigma [B], ctx) -> dict`` denoised estimate D(x; sigma).
      processes, ctx, key, shapes, constrain: as for :func:`euler_sample`.
      steps, grid: the EDM grid (:func:`edm_sigma_grid`: ``sigma_min``, ``sigma_max``,
        ``rho``; EDM's 0.002, 80, 7 by default).

    Returns:
      ``(state, info)`` with ``info["nfe"] = steps``.
    """

    def slope(state: State, sigma: Array, ctx: Context) -> State:
        d = denoise_fn(state, sigma, ctx)
        return {
            k: (state[k] - d[k]) / sigma.reshape(-1, *([1] * (state[k].ndim - 1))) for k in state
        }

    sigmas = edm_sigma_grid(steps, **grid)
    sigma_max = grid.get(
        "sigma_max", inspect.signature(edm_sigma_grid).parameters["sigma_max"].default
    )
    init = _prior_at_sigma(processes, key, shapes, ctx, sigma_max)
    return euler_sample(
        slope, processes, ctx, key, shapes=shapes, grid=sigmas, constrain=constrain, init=init
    )


def _evals_per_step(solver: diffrax.AbstractSolver) -> tuple[int, bool]:
    """``(stages, fsal)`` of an explicit diffrax solver: vector-field calls per step and
    whether the first stage reuses the last one of the previous step."""
    tab = getattr(solver, "tableau", None)
    if isinstance(solver, diffrax.AbstractERK) and tab is not None:
        return int(tab.c.shape[0]) + 1, bool(tab.fsal)
    if isinstance(solver, diffrax.Euler):
        return 1, False
    raise TypeError(
        f"probability_flow_sample counts NFE for explicit Runge-Kutta solvers and Euler; "
        f"got {type(solver).__name__}"
    )


def probability_flow_sample(
    drift_fn: FieldFn,
    processes: Processes,
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    solver: diffrax.AbstractSolver | None = None,
    steps: int | None = None,
    t0: float = 1.0,
    t1: float = 1e-3,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    dt0: float | None = None,
    max_steps: int = 4096,
    constrain: ConstrainFn = identity_constrain,
    return_trajectory: bool = False,
    trajectory_ts: Array | None = None,
) -> tuple[State, dict]:
    """Integrate a given ODE drift from ``t0`` (prior) to ``t1`` with a diffrax solver.

    For a score SDE ``dx = f dt + g dW`` the caller passes the probability-flow drift
    ``f(x, t) - g(t)^2 / 2 * score(x, t)`` (Song et al. 2021, eq. 13); any other ODE drift
    (a flow velocity, ...) works the same way. The drift is masked inside the vector
    field, so padded entries stay exactly 0.

    Two modes:

    - ``steps`` given: fixed steps on ``linspace(t0, t1, steps + 1)``, driven by
      ``solver.step`` inside ``lax.scan`` so that ``constrain`` runs after every step.
      When ``constrain`` is not :func:`identity_constrain` each step is flagged as a jump,
      so FSAL solvers re-evaluate their first stage at the constrained state.
    - ``steps=None``: adaptive steps with ``diffrax.PIDController(rtol, atol)``; diffrax
      owns the loop, so ``constrain`` is applied to the prior draw and to the result only.

    Args:
      drift_fn: ``(state, t [B], ctx) -> dict`` ODE drift dx/dt.
      processes: leaf name -> process (its ``prior`` is the start at ``t0``).
      ctx: context (masks).
      key: PRNG key of the prior draw.
      shapes: leaf name -> full shape (batch first).
      solver: explicit diffrax solver (default ``diffrax.Tsit5()``).
      steps: fixed number of steps, or ``None`` for adaptive stepping.
      t0, t1: start and end times (1 and 1e-3 as in score_sde's ODE sampler).
      rtol, atol: adaptive tolerances.
      dt0: initial step size for the adaptive mode (``None``: diffrax's choice).
      max_steps: cap on adaptive steps (diffrax raises if it is reached).
      constrain: domain hook.
      return_trajectory: also return intermediate states.
      trajectory_ts: adaptive mode only: times to save (default 11 evenly spaced).

    Returns:
      ``(state, info)``; ``info["nfe"]`` (vector-field calls, from diffrax's step counts
      and the solver's tableau), ``info["num_steps"]`` and, adaptive,
      ``info["num_accepted_steps"]`` / ``info["num_rejected_steps"]``;
      ``info["trajectory"]`` ([steps + 1, B, ...] fixed; [len(trajectory_ts), B, ...]
      adaptive) and ``info["trajectory_ts"]`` when requested.
    """
    solver = diffrax.Tsit5() if solver is None else solver
    stages, fsal = _evals_per_step(solver)
    b = _batch_size(shapes)
    x0 = _project(prior_state(processes, key, shapes, ctx), ctx, constrain)

    def vf(t: Array, y: State, args: None) -> State:
        del args
        d = drift_fn(y, jnp.full((b,), t, jnp.float32), ctx)
        return apply_masks({k: d[k].astype(y[k].dtype) for k in y}, ctx)

    term = diffrax.ODETerm(vf)
    info: dict = {}

    if steps is not None:
        grid = jnp.linspace(t0, t1, steps + 1, dtype=jnp.float32)
        jump = constrain is not identity_constrain
        solver_state = solver.init(term, grid[0], grid[1], x0, None)

        def step(carry, tt):
            y, st = carry
            ta, tb = tt
            y, _, _, st, _ = solver.step(term, ta, tb, y, None, st, made_jump=jump)
            y = _project(y, ctx, constrain)
            return (y, st), (y if return_trajectory else None)

        (x, _), traj = jax.lax.scan(step, (x0, solver_state), (grid[:-1], grid[1:]))
        fresh_first = fsal and not jump
        info["nfe"] = 1 + (stages - 1) * steps if fresh_first else stages * steps
        info["num_steps"] = steps
        if return_trajectory:
            info["trajectory"] = _with_initial(x0, traj)
            info["trajectory_ts"] = grid
        return x, info

    if return_trajectory:
        ts = jnp.linspace(t0, t1, 11) if trajectory_ts is None else jnp.asarray(trajectory_ts)
        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(ts=ts)])
    else:
        saveat = diffrax.SaveAt(t1=True)
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0=t0,
        t1=t1,
        dt0=None if dt0 is None else (abs(dt0) if t1 > t0 else -abs(dt0)),
        y0=x0,
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    ys = sol.ys[0] if return_trajectory else sol.ys
    x = _project({k: v[-1] for k, v in ys.items()}, ctx, constrain)
    n = sol.stats["num_steps"]
    # diffrax: the first step evaluates every stage; FSAL solvers then reuse the last stage
    # of the previous accepted step (rejected steps cost stages - 1 calls too). Exact except
    # for FSAL solvers whose very first attempt is rejected (+1 call per such rejection,
    # not visible in the stats). diffrax 0.7 does not call the field to pick dt0 here
    # (its search is skipped for wrapped terms), which the counting test checks.
    info["nfe"] = (1 + (stages - 1) * n) if fsal else stages * n
    info["num_steps"] = n
    info["num_accepted_steps"] = sol.stats["num_accepted_steps"]
    info["num_rejected_steps"] = sol.stats["num_rejected_steps"]
    if return_trajectory:
        info["trajectory"] = sol.ys[1]
        info["trajectory_ts"] = ts
    return x, info


def sigma_grid_sample(
    slope_fn: FieldFn,
    sigmas: Array | np.ndarray,
    ctx: Context,
    *,
    init: State,
    method: str = "heun",
    constrain: ConstrainFn = identity_constrain,
    assign: Sequence[str] = (),
    return_trajectory: bool = False,
) -> tuple[State, dict]:
    """Integrate ``dx/dsigma = slope(x, sigma)`` from a given state over a given noise grid.

    The EDM / PFGM++ backward ODE ``dx/dsigma = (x - D(x; sigma)) / sigma`` (Karras et al.
    2022, eq. 4 with sigma(t) = t; Xu et al. 2023, the aligned form of
    ``dx/dr = (x - E[y | x]) / r`` with ``r = sigma sqrt(D)``) on any decreasing grid
    ``sigma_0 > ... > sigma_K >= 0`` (e.g. NCSN/CDVAE's geometric levels followed by 0),
    from a caller-supplied start (e.g. a prior that only the domain knows, such as
    uniform fractional coordinates on a torus). ``method="heun"``: EDM's Algorithm 1
    without churn, ``x' = x + h (f(x, s) + f(x + h f(x, s), s')) / 2`` with
    ``h = s' - s``, except that a step ending at ``sigma = 0`` (where the slope is
    undefined) is a plain Euler step; ``method="euler"``: ``x' = x + h f(x, s)``.

    Assigned leaves (``assign``, as in
    :func:`~genmodels.samplers.langevin.annealed_langevin_sample`) are not integrated:
    after every step they are set to ``slope_fn``'s output for them at the step's last
    evaluation (e.g. CDVAE's argmax atom types); both evaluations of a Heun step see
    their value from the start of the step.

    Args:
      slope_fn: ``(state, sigma [B], ctx) -> dict`` the slope dx/dsigma of every leaf
        (and the new value of each assigned leaf).
      sigmas: [K + 1] decreasing noise levels (concrete: the loop length and the final
        Euler step depend on them); ``sigmas[0]`` is the level of ``init``.
      ctx: context (masks).
      init: the state at ``sigmas[0]`` (batch first; every leaf, assigned ones included).
      method: ``"heun"`` or ``"euler"``.
      constrain: domain hook applied (after masking) to ``init`` and after every step.
      assign: names of assigned leaves.
      return_trajectory: also return the state at every level.

    Returns:
      ``(state, info)``; ``info["nfe"]`` the number of ``slope_fn`` calls (Euler ``K``;
      Heun ``2 K``, minus one when the grid ends at 0), ``info["sigmas"]`` the grid and,
      when requested, ``info["trajectory"]`` [K + 1, B, ...] per leaf.
    """
    if method not in ("heun", "euler"):
        raise ValueError(f"unknown ODE method {method!r}; choose heun or euler")
    assign = tuple(assign)
    unknown = sorted(set(assign) - set(init))
    if unknown:
        raise ValueError(f"assigned leaves {unknown} are not in init {sorted(init)}")
    try:
        grid = np.asarray(sigmas, np.float32)  # [K + 1]
    except jax.errors.TracerArrayConversionError as e:
        raise ValueError("sigma_grid_sample needs a concrete noise grid") from e
    num = int(grid.shape[0]) - 1
    if num < 1 or np.any(np.diff(grid) >= 0) or grid[-1] < 0:
        raise ValueError(f"the noise grid must decrease to a value >= 0, got {grid}")
    to_zero = bool(grid[-1] == 0.0)
    b = int(next(iter(init.values())).shape[0])
    x0 = _project({k: jnp.asarray(v) for k, v in init.items()}, ctx, constrain)

    def move(x: State, h: Array, v: State, out: State) -> State:
        """``x + h v`` on integrated leaves, ``out`` on assigned ones (masked)."""
        new = {k: out[k] if k in assign else x[k] + (h * v[k]).astype(x[k].dtype) for k in x}
        return apply_masks(new, ctx)

    def slope(x: State, s: Array) -> State:
        return slope_fn(x, jnp.full((b,), s, jnp.float32), ctx)

    def step(x: State, ss: tuple[Array, Array]) -> tuple[State, State | None]:
        s_cur, s_next = ss
        h = s_next - s_cur
        f_cur = slope(x, s_cur)
        if method == "euler":
            x = constrain(move(x, h, f_cur, f_cur), ctx)
            return x, (x if return_trajectory else None)
        # the predictor keeps the assigned leaves of the step's start
        x_pred = move(x, h, f_cur, x)
        # a step to sigma = 0 stays Euler (f_next := f_cur); lax.cond runs one branch,
        # so that step costs one call, and the network is traced twice, not three times
        f_next = jax.lax.cond(
            s_next > 0,
            lambda: {k: v for k, v in slope(x_pred, s_next).items() if k in x},
            lambda: {k: f_cur[k] for k in x},
        )
        avg = {k: f_next[k] if k in assign else 0.5 * (f_cur[k] + f_next[k]) for k in x}
        x = constrain(move(x, h, avg, f_next), ctx)
        return x, (x if return_trajectory else None)

    sig = jnp.asarray(grid)
    x, traj = jax.lax.scan(step, x0, (sig[:-1], sig[1:]))
    nfe = num if method == "euler" else 2 * num - int(to_zero)
    info: dict = {"nfe": nfe, "sigmas": sig}
    if return_trajectory:
        info["trajectory"] = _with_initial(x0, traj)
    return x, info


__all__ = ["euler_sample", "heun_sample", "probability_flow_sample", "sigma_grid_sample"]
