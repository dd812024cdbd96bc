"""The sampler registry: one entry per sampler name, shared by every method and domain.

An entry is a name, a one-line description, a frozen options dataclass (its defaults are
the entry's safe defaults) and one implementation per *process kind* it can integrate
(``Process.kind``: ``"sde"``, ``"pfgmpp"``, ``"flow"``, ``"masked"``, ...). Every
implementation has one signature,

    impl(model_fn, processes, ctx, key, *, shapes, steps, options, constrain)
        -> (state, info)      # info["nfe"]: network evaluations

where ``model_fn(state, t [B], ctx) -> dict`` is the network's prediction for the
process (a score for an SDE, a denoised state for PFGM++, a velocity for a flow, logits
for masked diffusion) and ``steps`` is ``None`` when the entry steps adaptively. A
method asks :func:`samplers_for` which entries cover its processes; the command line's
``--sampler`` choices and ``genmodels samplers RECIPE`` come from there. A new sampler is
a function in its own ``samplers/`` file plus a :func:`register` call below, and every
method whose processes it accepts can use it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import diffrax
import jax.numpy as jnp

from genmodels.core.grids import uniform_grid
from genmodels.core.types import Array, ConstrainFn, Context, FieldFn, State

#: ``impl(model_fn, processes, ctx, key, *, shapes, steps, options, constrain)``
SampleImpl = Callable[..., tuple[State, dict]]


@dataclass(frozen=True)
class SamplerEntry:
    """One registered sampler.

    Attributes:
      name: the ``--sampler`` name.
      description: one line for ``genmodels samplers``.
      options: frozen dataclass type of the sampler's options (all fields defaulted).
      impls: process kind -> implementation.
      adaptive: ``True`` when the sampler picks its own steps unless ``steps`` is
        given (the method's default step count is then not passed).
    """

    name: str
    description: str
    options: type
    impls: Mapping[str, SampleImpl]
    adaptive: bool = False

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self.impls))

    def make_options(self, **overrides: Any) -> Any:
        """The options dataclass with the known ``overrides`` applied (unknown names are
        ignored: a method passes its whole config's sampler settings to every entry)."""
        names = {f.name for f in dataclasses.fields(self.options)}
        return self.options(**{k: v for k, v in overrides.items() if k in names})


REGISTRY: dict[str, SamplerEntry] = {}


def register(entry: SamplerEntry) -> SamplerEntry:
    """Add ``entry`` (a name may be registered once)."""
    if entry.name in REGISTRY:
        raise ValueError(f"sampler {entry.name!r} is registered twice")
    REGISTRY[entry.name] = entry
    return entry


def process_kind(processes: Mapping[str, Any]) -> str:
    """The kind shared by every leaf's process (``Process.kind``)."""
    kinds = {p.kind for p in processes.values()}
    if len(kinds) != 1:
        raise ValueError(f"the leaves' processes are of different kinds {sorted(kinds)}")
    return kinds.pop()


def samplers_for(processes: Mapping[str, Any] | str) -> dict[str, SamplerEntry]:
    """Entries that can integrate ``processes`` (or a process kind), by name."""
    kind = processes if isinstance(processes, str) else process_kind(processes)
    return {n: e for n, e in REGISTRY.items() if kind in e.impls}


def get_sampler(name: str, processes: Mapping[str, Any] | str) -> SamplerEntry:
    """The entry ``name`` if it accepts ``processes``.

    Raises:
      ValueError: unknown name, or one that cannot integrate these processes (the
        message lists the ones that can).
    """
    ok = samplers_for(processes)
    if name not in ok:
        kind = processes if isinstance(processes, str) else process_kind(processes)
        why = "unknown sampler" if name not in REGISTRY else f"sampler {name!r} cannot integrate"
        raise ValueError(
            f"{why} {name!r} for {kind} processes; choose one of {', '.join(sorted(ok))}"
            if name not in REGISTRY
            else f"{why} {kind} processes; choose one of {', '.join(sorted(ok))}"
        )
    return ok[name]


def run_sampler(
    name: str,
    model_fn: FieldFn,
    processes: Mapping[str, Any],
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    steps: int | None,
    options: Any = None,
    constrain: ConstrainFn,
) -> tuple[State, dict]:
    """Run the registered sampler ``name`` on ``processes`` (traceable).

    Args:
      name: registry name.
      model_fn: ``(state, t [B], ctx) -> dict`` the network prediction.
      processes: leaf name -> process (one kind).
      ctx: context (masks).
      key: PRNG key.
      shapes: leaf name -> full shape (batch first).
      steps: number of steps (``None``: adaptive, for adaptive entries).
      options: the entry's options dataclass (default: its defaults).
      constrain: the domain hook.

    Returns:
      ``(state, info)`` with ``info["nfe"]``.
    """
    entry = get_sampler(name, processes)
    impl = entry.impls[process_kind(processes)]
    opts = entry.options() if options is None else options
    return impl(
        model_fn, processes, ctx, key, shapes=shapes, steps=steps, options=opts, constrain=constrain
    )


def describe(entry: SamplerEntry, options: Any = None) -> str:
    """``description (options: a=1, b=2)`` for listings; ``options`` (default: the
    entry's defaults) gives the values shown."""
    opts = entry.options() if options is None else options
    shown = ", ".join(f"{f.name}={getattr(opts, f.name)!r}" for f in dataclasses.fields(opts))
    return entry.description + (f" (options: {shown})" if shown else "")


# ------------------------------------------------------------------ options


@dataclass(frozen=True)
class NoOptions:
    """A sampler without options."""


@dataclass(frozen=True)
class PCOptions:
    """Predictor-corrector settings (GDSS / score_sde).

    Attributes:
      snr: Langevin signal-to-noise ratio.
      scale_eps: multiplies the corrector's noise (1: plain Langevin).
      corrector_steps: Langevin steps per time step.
      sample_eps: last time of the grid ``linspace(T, eps, steps)``.
    """

    snr: float = 0.16
    scale_eps: float = 1.0
    corrector_steps: int = 1
    sample_eps: float = 1e-3


@dataclass(frozen=True)
class ODEOptions:
    """Probability-flow ODE through diffrax.

    Attributes:
      solver: ``tsit5``, ``dopri5``, ``heun`` or ``euler`` (diffrax solvers).
      rtol, atol: tolerances of the adaptive step-size controller.
      sample_eps: last time of a score SDE's ODE (the flow and PFGM++ ODEs end at their
        own smallest time / noise level).
      max_steps: cap on adaptive steps.
    """

    solver: str = "tsit5"
    rtol: float = 1e-5
    atol: float = 1e-5
    sample_eps: float = 1e-3
    max_steps: int = 4096


@dataclass(frozen=True)
class BossOptions:
    """Euler on a Bellman-optimal time grid (Nguyen et al., ICLR 2024).

    Attributes:
      grid: times from 1 to 0, ``steps + 1`` of them (a method reads them from
        ``boss_grids.json`` next to its checkpoint).
    """

    grid: tuple[float, ...] | None = None


@dataclass(frozen=True)
class MaskedOptions:
    """Masked-diffusion sampling.

    Attributes:
      precision: ``float64`` or ``float32`` categorical draws (the first-hitting paper
        shows float32 Gumbel draws lower the temperature).
      time_conditioning: whether the network reads ``t`` (the ancestral sampler's logit
        cache is exact only without it).
    """

    precision: str = "float64"
    time_conditioning: bool = False


@dataclass(frozen=True)
class AncestralOptions(MaskedOptions):
    """Ancestral masked-diffusion sampling (:class:`MaskedOptions` plus the step's draw).

    Attributes:
      draw: ``split`` (an unmask test, then a K-way categorical) or ``joint`` (one draw
        over the K classes and the mask, MDLM's ``_ddpm_update``; at ``float32`` with
        MDLM's float32 noise); see :func:`genmodels.samplers.masked.ancestral_update`.
    """

    draw: str = "split"


PRECISIONS = {"float64": jnp.float64, "float32": jnp.float32}

# ------------------------------------------------------------------ implementations


def _score_problem(model_fn, processes, steps: int, edm: bool):
    """``(processes, score_fn)`` for the SDE samplers: as given, or EDM (PFGM++ at
    D = inf) as its VE SDE with the score ``(D(x; sigma) - x) / sigma^2``."""
    if not edm:
        return processes, model_fn
    from genmodels.processes.pfgmpp import edm_score_fn, edm_ve_sde

    sdes = {k: edm_ve_sde(p, steps) for k, p in processes.items()}
    return sdes, edm_score_fn(model_fn, next(iter(sdes.values())))


def _pc(predictor: str, langevin: bool, edm: bool = False) -> SampleImpl:
    """Predictor-corrector: Euler-Maruyama or reverse diffusion, optional Langevin."""

    def impl(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
        from genmodels.samplers import pc

        procs, score = _score_problem(model_fn, processes, steps, edm)
        o = options
        corr = pc.LangevinCorrector(o.snr, o.scale_eps, o.corrector_steps) if langevin else None
        pred = pc.EulerMaruyama() if predictor == "euler" else pc.ReverseDiffusion()
        kw = dict(shapes=shapes, steps=steps, eps=o.sample_eps, constrain=constrain)
        return pc.pc_sample(score, procs, ctx, key, predictor=pred, corrector=corr, **kw)

    return impl


def _s4(edm: bool = False) -> SampleImpl:
    """GDSS's S4 solver."""

    def impl(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
        from genmodels.samplers.pc import s4_sample

        procs, score = _score_problem(model_fn, processes, steps, edm)
        o = options
        kw = dict(shapes=shapes, steps=steps, eps=o.sample_eps, constrain=constrain)
        return s4_sample(score, procs, ctx, key, snr=o.snr, scale_eps=o.scale_eps, **kw)

    return impl


def _edm_grid(sampler: str) -> SampleImpl:
    def impl(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
        from genmodels.samplers.ode import edm_euler_sample, heun_sample

        del options
        p = next(iter(processes.values()))
        grid = dict(sigma_min=p.sigma_min, sigma_max=p.sigma_max, rho=p.rho)
        fn = heun_sample if sampler == "heun" else edm_euler_sample
        kw = dict(shapes=shapes, steps=steps, constrain=constrain)
        return fn(model_fn, processes, ctx, key, **kw, **grid)

    return impl


def _flow_euler(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
    from genmodels.samplers.ode import euler_sample

    del options
    return euler_sample(
        model_fn, processes, ctx, key, shapes=shapes, grid=uniform_grid(steps), constrain=constrain
    )


def _flow_boss(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
    from genmodels.samplers.ode import euler_sample

    if options.grid is None:
        raise ValueError("the boss sampler needs a time grid (BossOptions.grid)")
    grid = jnp.asarray(options.grid, jnp.float32)
    if steps is not None and int(steps) != grid.shape[0] - 1:
        raise ValueError(f"a BOSS grid of {grid.shape[0] - 1} steps was given with steps={steps}")
    return euler_sample(
        model_fn, processes, ctx, key, shapes=shapes, grid=grid, constrain=constrain
    )


def _flow_heun(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
    from genmodels.samplers.ode import probability_flow_sample

    del options
    return probability_flow_sample(
        model_fn,
        processes,
        ctx,
        key,
        shapes=shapes,
        solver=diffrax.Heun(),
        steps=steps,
        t0=1.0,
        t1=0.0,
        constrain=constrain,
    )


_SOLVERS = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "heun": diffrax.Heun,
    "euler": diffrax.Euler,
}


def _ode(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
    """The probability-flow ODE of any continuous process: each process's
    ``ode_drift(pred, x, t)`` over its ``ode_span(eps)`` (the network sees
    ``ode_time(t)``), integrated by diffrax."""
    from genmodels.samplers.ode import probability_flow_sample

    if options.solver not in _SOLVERS:
        raise ValueError(f"unknown ODE solver {options.solver!r}; choose one of {list(_SOLVERS)}")
    spans = {p.ode_span(options.sample_eps) for p in processes.values()}
    if len(spans) != 1:
        raise ValueError(f"the leaves' processes have different ODE time spans {spans}")
    t0, t1 = spans.pop()
    clock = next(iter(processes.values())).ode_time  # ODE time -> the network's time

    def drift(state: State, t: Array, c: Context) -> State:
        pred = model_fn(state, clock(t), c)
        return {k: processes[k].ode_drift(pred[k], state[k], t) for k in state}

    return probability_flow_sample(
        drift,
        processes,
        ctx,
        key,
        shapes=shapes,
        solver=_SOLVERS[options.solver](),
        steps=steps,
        t0=t0,
        t1=t1,
        rtol=options.rtol,
        atol=options.atol,
        max_steps=options.max_steps,
        constrain=constrain,
    )


def _masked(name: str) -> SampleImpl:
    def impl(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
        from genmodels.samplers.masked import (
            ANCESTRAL_DRAWS,
            ancestral_sample,
            first_hitting_sample,
        )

        if options.precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {options.precision!r}; choose one of {list(PRECISIONS)}"
            )
        dtype = PRECISIONS[options.precision]
        if name == "fhs":
            return first_hitting_sample(
                model_fn,
                processes,
                ctx,
                key,
                shapes=shapes,
                precision=dtype,
                constrain=constrain,
            )
        if options.draw not in ANCESTRAL_DRAWS:
            raise ValueError(
                f"unknown draw {options.draw!r}; choose one of {list(ANCESTRAL_DRAWS)}"
            )
        return ancestral_sample(
            model_fn,
            processes,
            ctx,
            key,
            shapes=shapes,
            steps=steps,
            precision=dtype,
            draw=options.draw,
            cache=not options.time_conditioning,
            constrain=constrain,
        )

    return impl


def _edm_only(impl: SampleImpl, name: str) -> SampleImpl:
    def checked(model_fn, processes, ctx, key, **kw):
        d = next(iter(processes.values())).D
        if not math.isinf(d):
            raise ValueError(
                f"sampler {name!r} integrates the reverse diffusion SDE of a Gaussian kernel, "
                f"which PFGM++ has only for D = inf (EDM); with D = {d:g} use --sampler heun, "
                "euler or ode, or set D to inf"
            )
        return impl(model_fn, processes, ctx, key, **kw)

    return checked


#: one-line descriptions shown by ``genmodels samplers``
DESCRIPTIONS = {
    "euler": "Euler steps: Euler-Maruyama on a score SDE, Euler on EDM's sigma grid or on a "
    "flow's uniform time grid",
    "euler_langevin": "reverse-time SDE: Euler-Maruyama predictor + Langevin corrector (GDSS)",
    "reverse": "reverse-time SDE: reverse-diffusion predictor (score_sde)",
    "reverse_langevin": "reverse-time SDE: reverse-diffusion predictor + Langevin corrector",
    "pc": "EDM (PFGM++ at D = inf) as a VE SDE: reverse diffusion + Langevin, 2 NFE a step",
    "s4": "GDSS's S4 solver: one score call a step for a Langevin and a split reverse step",
    "heun": "Heun (2nd order): EDM's Algorithm 1 on its sigma grid, or diffrax Heun on a flow",
    "boss": "Euler on a Bellman-optimal step grid computed for the checkpoint (BOSS)",
    "ode": "probability-flow ODE through diffrax; adaptive steps unless --steps K (NFE reported)",
    "fhs": "first-hitting sampler: exactly one token unmasked per network call (no time grid)",
    "ancestral": "ancestral masked-diffusion sampler on a uniform time grid (MDLM's cache)",
}


def _add(name: str, options: type, impls: dict[str, SampleImpl], adaptive: bool = False):
    return register(SamplerEntry(name, DESCRIPTIONS[name], options, impls, adaptive))


_pc_edm = _edm_only(_pc("reverse", True, edm=True), "pc")
_add(
    "euler",
    PCOptions,
    {"sde": _pc("euler", False), "pfgmpp": _edm_grid("euler"), "flow": _flow_euler},
)
_add("euler_langevin", PCOptions, {"sde": _pc("euler", True)})
_add("reverse", PCOptions, {"sde": _pc("reverse", False)})
_add("reverse_langevin", PCOptions, {"sde": _pc("reverse", True)})
_add("pc", PCOptions, {"pfgmpp": _pc_edm})
_add("s4", PCOptions, {"sde": _s4(), "pfgmpp": _edm_only(_s4(edm=True), "s4")})
_add("heun", NoOptions, {"pfgmpp": _edm_grid("heun"), "flow": _flow_heun})
_add("boss", BossOptions, {"flow": _flow_boss})
_add("ode", ODEOptions, {"sde": _ode, "pfgmpp": _ode, "flow": _ode}, adaptive=True)
_add("fhs", MaskedOptions, {"masked": _masked("fhs")}, adaptive=True)
_add("ancestral", AncestralOptions, {"masked": _masked("ancestral")})

__all__ = [
    "REGISTRY",
    "AncestralOptions",
    "BossOptions",
    "MaskedOptions",
    "NoOptions",
    "ODEOptions",
    "PCOptions",
    "SamplerEntry",
    "describe",
    "get_sampler",
    "process_kind",
    "register",
    "run_sampler",
    "samplers_for",
]


# ------------------------------------------------------------------ annealed Langevin (levels)


@dataclass(frozen=True)
class LangevinOptions:
    """Annealed Langevin dynamics (NCSN, Song & Ermon 2019, Alg. 1; CDVAE's decoder).

    Attributes:
      step_lr: step at the smallest level; ``step_lr (sigma / sigma_L)^2`` at ``sigma``.
      min_sigma: levels below it are skipped.
      denoise: a final Tweedie step ``x + sigma_L^2 score`` (one more network call).
    """

    step_lr: float = 1e-4
    min_sigma: float = 0.0
    denoise: bool = False


def _annealed_langevin(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
    """Annealed Langevin over the leaves' shared geometric levels, ``steps`` per level;
    ``model_fn`` returns the score at the level ``sigma`` [B]."""
    from genmodels.processes.coords import geometric_sigmas
    from genmodels.samplers.langevin import annealed_langevin_sample

    levels = {(p.sigma_begin, p.sigma_end, p.num_levels) for p in processes.values()}
    if len(levels) != 1:
        raise ValueError(f"annealed Langevin needs one noise schedule for all leaves, got {levels}")
    o, sigmas = options, geometric_sigmas(*levels.pop())
    kw = dict(n_steps_each=steps, step_lr=o.step_lr, min_sigma=o.min_sigma, denoise=o.denoise)
    return annealed_langevin_sample(
        model_fn, sigmas, ctx, key, shapes=shapes, constrain=constrain, **kw
    )


register(
    SamplerEntry(
        "langevin",
        "annealed Langevin dynamics over geometric noise levels, --steps per level (NCSN, CDVAE)",
        LangevinOptions,
        {"levels": _annealed_langevin},
    )
)


@dataclass(frozen=True)
class BlockwiseOptions:
    """Block-by-block discrete diffusion (PARD).

    Attributes:
      precision: ``float64`` or ``float32`` categorical draws.
    """

    precision: str = "float64"


def _blockwise(model_fn, processes, ctx, key, *, shapes, steps, options, constrain):
    from genmodels.samplers.blockwise import one_block_sample

    dtype = PRECISIONS[options.precision]
    kw = dict(shapes=shapes, steps=steps, precision=dtype, constrain=constrain)
    return one_block_sample(model_fn, processes, ctx, key, **kw)


# PARD draws block after block with its next-block head (samplers.blockwise.slot_block_sample);
# through this generic signature the whole state is one block
register(
    SamplerEntry(
        "blockwise",
        "discrete diffusion, T ancestral steps per block; blocks one after another (PARD)",
        BlockwiseOptions,
        {"discrete": _blockwise},
    )
)
