"""Sampler overhead: time per step of every sampler against the network alone.

For each sampler of :mod:`genmodels.samplers`, with a small network (an MLP on a 64-dim
state for the continuous samplers, an MLP producing logits over K categories for L tokens
for the masked ones) at batch 256, this measures

- the network alone: ``steps`` calls inside one jitted ``lax.scan`` (each call's output
  is the next call's input, so XLA cannot hoist the calls out of the loop and both sides
  pay the same per-iteration dispatch costs);
- the sampler: one jitted call of ``steps`` steps, and the number of network evaluations
  (NFE) it reports;
- (optionally) the sampler with a trivial field (a few elementwise operations instead of
  the MLP): a direct estimate of the sampler's own work, independent of the network;
- the compile time of every jitted function (trace + lower + XLA compile, ahead of time).

and reports ``overhead = sampler_time / (nfe * net_time_per_call) - 1``: the sampler's
time beyond its network evaluations, as a fraction of them. Timings block until ready,
follow a warm-up call and are medians over ``--repeats`` runs; the network's and the
sampler's runs are interleaved, so load from other processes on a shared machine hits
both alike. The diagnostics (on by default) add the time per step of the random draws the
samplers make (a normal draw of the state, a categorical draw over the masked state's
logits), which is where the stochastic samplers' overhead goes on CPU.

Run::

    python benchmarks/samplers.py                    # batch 256, 100 steps, 5 repeats
    python benchmarks/samplers.py --quick            # tiny shapes (smoke test / CI)
    python benchmarks/samplers.py --only em,heun_edm --batch 1024 --prng rbg --out /tmp/s.json

Prints a markdown table and writes JSON (default ``benchmarks/results/samplers.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array, State
from genmodels.nets.embed import sinusoidal_embedding
from genmodels.nets.mlp import TimeMLP
from genmodels.processes.flow import LinearFlow
from genmodels.processes.levels import NoiseLevels
from genmodels.processes.masked import MaskedDiffusion
from genmodels.processes.pfgmpp import PFGMPP
from genmodels.processes.sde import VPSDE
from genmodels.samplers.langevin import annealed_langevin_sample
from genmodels.samplers.masked import ancestral_sample, first_hitting_sample
from genmodels.samplers.ode import euler_sample, heun_sample, probability_flow_sample
from genmodels.samplers.pc import (
    EulerMaruyama,
    LangevinCorrector,
    ReverseDiffusion,
    pc_sample,
    s4_sample,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "samplers.json"
#: The overhead the issue aims for (fraction of a small network's time).
TARGET_OVERHEAD = 0.10


@dataclass(frozen=True)
class Config:
    """Benchmark sizes.

    Args:
      batch: examples per sampler call.
      steps: sampler steps (and network calls of the baseline scan).
      dim: continuous state size.
      hidden, depth: MLP width and number of hidden layers.
      tokens, vocab: L and K of the masked samplers' state.
      langevin_each: Langevin steps per noise level of annealed Langevin
        (``steps // langevin_each`` levels).
      repeats: timed runs per function (the median is reported).
      diagnostics: also time every sampler with a trivial field, and the random draws
        the samplers make (``bench_primitives``).
      prng: ``jax.random.key`` implementation of the samplers' key ("threefry2x32",
        JAX's default, "rbg" or "unsafe_rbg"): a caller's choice, the samplers take any.
      seed: PRNG seed.
    """

    batch: int = 256
    steps: int = 100
    dim: int = 64
    hidden: int = 256
    depth: int = 3
    tokens: int = 32
    vocab: int = 16
    langevin_each: int = 10
    repeats: int = 5
    diagnostics: bool = True
    prng: str = "threefry2x32"
    seed: int = 0


#: Tiny shapes for the smoke test. 25 steps, not fewer: the VP SDE is re-discretized to
#: N = steps and its DDPM betas ``beta_max / N`` must stay below 1 (sqrt(1 - beta)).
QUICK = Config(
    batch=8, steps=25, dim=8, hidden=16, depth=1, tokens=6, vocab=4, langevin_each=5, repeats=2
)


# ------------------------------------------------------------------------------------
# Networks (parameters passed explicitly: nnx.split outside, nnx.merge inside jit)
# ------------------------------------------------------------------------------------


class TokenMLP(nnx.Module):
    """Logits ``[B, L, K]`` over K categories for L tokens in ``[0, K]`` (K = mask id):
    one-hot tokens and a sinusoidal time embedding through a SiLU MLP."""

    def __init__(self, tokens: int, vocab: int, hidden: int, depth: int, *, rngs: nnx.Rngs):
        self.tokens, self.vocab, self.time_dim = tokens, vocab, 32
        sizes = [tokens * (vocab + 1) + self.time_dim] + [hidden] * depth
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = nnx.Linear(hidden, tokens * vocab, rngs=rngs)

    def __call__(self, x: Array, t: Array) -> Array:
        b = x.shape[0]
        onehot = jax.nn.one_hot(x, self.vocab + 1, dtype=jnp.float32).reshape(b, -1)
        h = jnp.concatenate([onehot, sinusoidal_embedding(t * 1000.0, self.time_dim)], -1)
        for layer in self.layers:
            h = jax.nn.silu(layer(h))
        return self.out(h).reshape(b, self.tokens, self.vocab)  # [B, L, K]


def make_networks(cfg: Config) -> dict[str, tuple[Any, Any]]:
    """``{"cont": (graphdef, params), "tok": (graphdef, params)}``."""
    rngs = nnx.Rngs(cfg.seed)
    cont = TimeMLP(cfg.dim, hidden=cfg.hidden, depth=cfg.depth, rngs=rngs)
    tok = TokenMLP(cfg.tokens, cfg.vocab, cfg.hidden, cfg.depth, rngs=rngs)
    return {"cont": nnx.split(cont), "tok": nnx.split(tok)}


def _net_field(graphdef, params) -> Callable[[State, Array, Any], State]:
    """``field(state, t, ctx) -> {leaf: network output}`` for the single-leaf states here."""

    def field(state, t, ctx):
        del ctx
        ((name, x),) = state.items()
        return {name: nnx.merge(graphdef, params)(x, t)}

    return field


# ------------------------------------------------------------------------------------
# Samplers under test
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One benchmarked sampler: ``run(field, key, cfg) -> (state, info)`` on network
    ``net`` ("cont" or "tok")."""

    key: str
    name: str
    net: str
    run: Callable[[Callable, Array, Config], tuple[State, dict]]


def _shapes(cfg: Config, net: str) -> dict[str, tuple[int, ...]]:
    if net == "cont":
        return {"x": (cfg.batch, cfg.dim)}
    return {"tokens": (cfg.batch, cfg.tokens)}


def _pc(predictor, corrector):
    def run(f, key, cfg):
        procs = {"x": VPSDE()}
        return pc_sample(
            f,
            procs,
            {},
            key,
            shapes=_shapes(cfg, "cont"),
            steps=cfg.steps,
            predictor=predictor,
            corrector=corrector,
        )

    return run


def _s4(f, key, cfg):
    # eps = 1/steps puts the last step's end at t = 0, as in GDSS (N = 1000, eps = 1e-3).
    # With the default eps = 1e-3 and steps < 1000 the last S4 step's transitions reach
    # t < 0, where the VP transition's variance is negative (NaN noise, and a NaN result
    # for steps <~ 50); the work per step is the same either way.
    return s4_sample(
        f, {"x": VPSDE()}, {}, key, shapes=_shapes(cfg, "cont"), steps=cfg.steps, eps=1 / cfg.steps
    )


def _annealed(f, key, cfg):
    each = min(cfg.langevin_each, cfg.steps)
    # sigma range and step_lr keep the state finite with the random network (CDVAE uses
    # sigma 10 -> 0.01 and step_lr 1e-4 with a trained one); the work per step is the same.
    levels = NoiseLevels(sigma_begin=1.0, sigma_end=0.01, num_levels=max(cfg.steps // each, 1))
    return annealed_langevin_sample(
        f, levels, {}, key, shapes=_shapes(cfg, "cont"), n_steps_each=each, step_lr=1e-5
    )


def _flow_euler(f, key, cfg):
    return euler_sample(
        f, {"x": LinearFlow()}, {}, key, shapes=_shapes(cfg, "cont"), steps=cfg.steps
    )


def _heun(d):
    def run(f, key, cfg):
        return heun_sample(
            f, {"x": PFGMPP(D=d)}, {}, key, shapes=_shapes(cfg, "cont"), steps=cfg.steps
        )

    return run


def _pf_ode(solver):
    def run(f, key, cfg):
        return probability_flow_sample(
            f, {"x": VPSDE()}, {}, key, shapes=_shapes(cfg, "cont"), solver=solver, steps=cfg.steps
        )

    return run


def _masked_procs(cfg):
    return {"tokens": MaskedDiffusion(vocab_size=cfg.vocab)}


def _ancestral(**kw):
    def run(f, key, cfg):
        return ancestral_sample(
            f, _masked_procs(cfg), {}, key, shapes=_shapes(cfg, "tok"), steps=cfg.steps, **kw
        )

    return run


def _first_hitting(**kw):
    def run(f, key, cfg):
        return first_hitting_sample(
            f, _masked_procs(cfg), {}, key, shapes=_shapes(cfg, "tok"), **kw
        )

    return run


SPECS: tuple[Spec, ...] = (
    Spec("em", "Euler-Maruyama (VP)", "cont", _pc(EulerMaruyama(), None)),
    Spec("em_langevin", "EM + Langevin", "cont", _pc(EulerMaruyama(), LangevinCorrector())),
    Spec("rd", "reverse diffusion (VP)", "cont", _pc(ReverseDiffusion(), None)),
    Spec("rd_langevin", "RD + Langevin", "cont", _pc(ReverseDiffusion(), LangevinCorrector())),
    Spec("s4", "S4", "cont", _s4),
    Spec("annealed_langevin", "annealed Langevin", "cont", _annealed),
    Spec("flow_euler", "flow Euler", "cont", _flow_euler),
    Spec("heun_edm", "EDM Heun (D=inf)", "cont", _heun(math.inf)),
    Spec("heun_pfgmpp", "PFGM++ Heun (D=128)", "cont", _heun(128.0)),
    Spec("pf_ode_tsit5", "PF-ODE Tsit5, fixed steps", "cont", _pf_ode(diffrax.Tsit5())),
    Spec("pf_ode_euler", "PF-ODE diffrax Euler, fixed", "cont", _pf_ode(diffrax.Euler())),
    Spec("ancestral", "ancestral masked (f64-grade)", "tok", _ancestral()),
    Spec("ancestral_f32", "ancestral masked (float32)", "tok", _ancestral(precision=jnp.float32)),
    Spec("first_hitting", "first-hitting (f64-grade)", "tok", _first_hitting()),
    Spec(
        "first_hitting_f32",
        "first-hitting (float32)",
        "tok",
        _first_hitting(precision=jnp.float32),
    ),
)


# ------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------


def _compile(fn: Callable, *args) -> tuple[Any, float]:
    """Ahead-of-time compile of ``jax.jit(fn)`` for ``args``: ``(compiled, seconds)``."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _timed(fn: Callable, *args) -> tuple[Any, float]:
    """``(output, wall seconds)`` of one call, blocking until its results are ready."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def _net_scan(graphdef, steps: int, batch: int) -> Callable:
    """``steps`` network calls in one ``lax.scan``; each output feeds the next input."""

    def run(params, x0):
        model = nnx.merge(graphdef, params)
        ts = jnp.linspace(1.0, 1e-3, steps)

        def body(x, t):
            out = model(x, jnp.full((batch,), t, jnp.float32))
            if jnp.issubdtype(x.dtype, jnp.integer):
                out = _tokens_like(x, out)
            return out, None

        return jax.lax.scan(body, x0, ts)[0]

    return run


def _finite(tree) -> bool:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return bool(all(jnp.all(jnp.isfinite(x)) for x in leaves))


def _tokens_like(x: Array, out: Array) -> Array:
    """Next tokens from logits [B, L, K] with elementwise work only (an argmax here would
    add a reduction the network-alone time should not contain)."""
    return (out[..., 0] > 0).astype(x.dtype)


def bench_one(spec: Spec, cfg: Config, nets: dict, key: Array) -> dict[str, Any]:
    """Compile and time one sampler against its network's baseline scan.

    Returns:
      One JSON row: NFE, compile seconds, median times, every run's time and three
      estimates of the overhead: from the medians (``overhead``, the definition above),
      the median over runs of each sampler run against the network run just before it
      (``overhead_paired``: the two share the machine's load at that moment) and from the
      fastest runs (``overhead_min``). With ``cfg.diagnostics`` also the sampler's time
      with a trivial field, over the time of its NFE network calls (``null_overhead``).
    """
    graphdef, params = nets[spec.net]
    (shape,) = _shapes(cfg, spec.net).values()
    x0 = jnp.zeros(shape, jnp.float32 if spec.net == "cont" else jnp.int32)

    net_fn, net_compile = _compile(_net_scan(graphdef, cfg.steps, cfg.batch), params, x0)

    def sampler(p, k):
        return spec.run(_net_field(graphdef, p), k, cfg)

    samp_fn, samp_compile = _compile(sampler, params, key)
    fns = {"net": (net_fn, (params, x0)), "sampler": (samp_fn, (params, key))}
    if cfg.diagnostics:
        vocab = cfg.vocab

        def null_sampler(k):
            return spec.run(_null_field(vocab), k, cfg)

        null_fn, null_compile = _compile(null_sampler, key)
        fns["null"] = (null_fn, (key,))

    # Warm-up (the first execution allocates buffers), and the NFE the sampler reports.
    outs = {name: _timed(fn, *args)[0] for name, (fn, args) in fns.items()}
    state, info = outs["sampler"]
    nfe = int(info["nfe"])

    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(cfg.repeats):
        # Interleaved: a burst of load from other processes hits every side alike.
        for name, (fn, args) in fns.items():
            runs[name].append(_timed(fn, *args)[1])

    calls = max(nfe, 1)
    net_call = statistics.median(runs["net"]) / cfg.steps
    samp = statistics.median(runs["sampler"])
    net_call_min = min(runs["net"]) / cfg.steps
    # Each sampler run against the network run just before it (same load), then the median.
    paired = [s / (calls * n / cfg.steps) for s, n in zip(runs["sampler"], runs["net"])]
    row: dict[str, Any] = {
        "key": spec.key,
        "name": spec.name,
        "network": spec.net,
        "steps": cfg.steps,
        "nfe": nfe,
        "compile_s": samp_compile,
        "net_compile_s": net_compile,
        "sampler_s": samp,
        "sampler_runs_s": runs["sampler"],
        "net_per_call_s": net_call,
        "net_runs_s": runs["net"],
        "sampler_per_nfe_s": samp / calls,
        "overhead": samp / (calls * net_call) - 1.0,
        "overhead_min": min(runs["sampler"]) / (calls * net_call_min) - 1.0,
        "overhead_paired": statistics.median(paired) - 1.0,
        "finite": _finite(state) and _finite(outs["net"]),
    }
    if cfg.diagnostics:
        null = statistics.median(runs["null"])
        row.update(
            null_compile_s=null_compile,
            null_field_s=null,
            null_field_runs_s=runs["null"],
            # The sampler's own work relative to the network calls it makes.
            null_overhead=null / (calls * net_call),
        )
    return row


def _null_field(vocab: int) -> Callable[[State, Array, Any], State]:
    """A trivial field of the right output shape (elementwise work only)."""

    def field(state, t, ctx):
        del ctx
        ((name, x),) = state.items()
        if jnp.issubdtype(x.dtype, jnp.integer):
            # logits depend on the tokens and t, so nothing is constant-folded
            lg = jax.nn.one_hot(x, vocab, dtype=jnp.float32)
            return {name: lg + t.reshape((-1,) + (1,) * x.ndim)}
        return {name: 0.5 * x + 1e-2 * t.reshape((-1,) + (1,) * (x.ndim - 1))}

    return field


def bench_primitives(cfg: Config, nets: dict, key: Array) -> dict[str, Any]:
    """Per-step time of the random draws the samplers make, next to the network's call.

    Each primitive runs ``steps`` times in a ``lax.scan`` whose carry depends on the draw
    (so nothing is hoisted or sliced away): a standard normal draw of the continuous
    state's size (what Euler-Maruyama, Langevin and S4 draw per step) and a categorical
    draw over the masked state's ``[B, L, K]`` logits at both precisions of
    :func:`genmodels.core.precision.categorical` (what the ancestral sampler draws per
    step), plus the network calls as the reference. Times are medians per step.
    """
    from genmodels.core.precision import categorical

    b, n, lk = cfg.batch, cfg.batch * cfg.dim, (cfg.batch, cfg.tokens, cfg.vocab)
    logits = jax.random.normal(jax.random.key(1), lk)  # [B, L, K]

    def loop(draw):
        def run(k, lg):
            def body(c, kk):
                return c + jnp.mean(draw(kk, lg + c).astype(jnp.float32)), None

            return jax.lax.scan(body, jnp.float32(0), jax.random.split(k, cfg.steps))[0]

        return run

    prims = {
        "normal_state": loop(lambda k, lg: jax.random.normal(k, (1, n))),
        "uniform_state": loop(lambda k, lg: jax.random.uniform(k, (1, n))),
        "categorical_f64grade": loop(lambda k, lg: categorical(k, lg, precision=jnp.float64)),
        "categorical_f32": loop(lambda k, lg: categorical(k, lg, precision=jnp.float32)),
    }
    fns = {name: _compile(fn, key, logits)[0] for name, fn in prims.items()}
    for name, (graphdef, params) in nets.items():
        (shape,) = _shapes(cfg, name).values()
        x0 = jnp.zeros(shape, jnp.float32 if name == "cont" else jnp.int32)
        fn = _compile(_net_scan(graphdef, cfg.steps, b), params, x0)[0]
        fns[f"net_{name}"] = (fn, (params, x0))
    fns = {k: v if isinstance(v, tuple) else (v, (key, logits)) for k, v in fns.items()}
    for fn, args in fns.values():
        _timed(fn, *args)
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(cfg.repeats):
        for name, (fn, args) in fns.items():
            runs[name].append(_timed(fn, *args)[1])
    return {name: statistics.median(r) / cfg.steps for name, r in runs.items()}


# ------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Versions, device and load of the machine running the benchmark."""
    dev = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": str(getattr(dev, "device_kind", dev)),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg": _loadavg(),
    }


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The per-sampler table (times in ms; overheads in % of the network's time)."""
    has_null = any("null_overhead" in r for r in rows)
    head = ["sampler", "NFE", "compile s", "sampler ms", "net ms/call", "sampler ms/NFE"]
    head += ["overhead (medians)", "overhead (paired)"]
    if has_null:
        head.append("trivial field / net")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        flag = " !" if r["overhead"] > TARGET_OVERHEAD else ""
        cells = [
            r["name"],
            str(r["nfe"]),
            f"{r['compile_s']:.2f}",
            f"{1e3 * r['sampler_s']:.1f}",
            f"{1e3 * r['net_per_call_s']:.3f}",
            f"{1e3 * r['sampler_per_nfe_s']:.3f}",
            f"{100 * r['overhead']:+.1f}%{flag}",
            f"{100 * r['overhead_paired']:+.1f}%",
        ]
        if has_null:
            cells.append(f"{100 * r['null_overhead']:.1f}%" if "null_overhead" in r else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def primitives_table(prims: dict[str, float]) -> str:
    """Per-step times of the random draws next to the network calls."""
    lines = ["| per step | ms | / cont. net call | / token net call |", "|---|---|---|---|"]
    for name, v in prims.items():
        rel = [f"{100 * v / prims[f'net_{n}']:.1f}%" for n in ("cont", "tok")]
        lines.append(f"| {name} | {1e3 * v:.3f} | {rel[0]} | {rel[1]} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[Config, Path, list[str] | None]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = Config()
    p.add_argument("--quick", action="store_true", help="tiny shapes and 2 repeats (smoke test)")
    p.add_argument("--batch", type=int, help=f"batch size (default {d.batch})")
    p.add_argument("--steps", type=int, help=f"sampler steps (default {d.steps})")
    p.add_argument("--repeats", type=int, help=f"timed runs, median reported ({d.repeats})")
    p.add_argument("--hidden", type=int, help=f"MLP width ({d.hidden})")
    p.add_argument("--depth", type=int, help=f"MLP hidden layers ({d.depth})")
    p.add_argument(
        "--prng",
        choices=["threefry2x32", "rbg", "unsafe_rbg"],
        help=f"PRNG implementation of the samplers' key ({d.prng})",
    )
    p.add_argument(
        "--no-diagnostics",
        action="store_true",
        help="skip the trivial-field runs and the random-draw timings",
    )
    p.add_argument("--only", help="comma-separated sampler keys: " + ",".join(s.key for s in SPECS))
    p.add_argument("--seed", type=int, help=f"PRNG seed ({d.seed})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON path ({DEFAULT_OUT})")
    a = p.parse_args(argv)
    fields = ("batch", "steps", "repeats", "hidden", "depth", "prng", "seed")
    over = {k: getattr(a, k) for k in fields if getattr(a, k) is not None}
    if a.no_diagnostics:
        over["diagnostics"] = False
    cfg = dataclasses.replace(QUICK if a.quick else d, **over)
    only = None if a.only is None else [k.strip() for k in a.only.split(",") if k.strip()]
    if only is not None:
        unknown = sorted(set(only) - {s.key for s in SPECS})
        if unknown:
            p.error(f"unknown sampler keys {unknown}")
    return cfg, a.out, only


def _loadavg() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, write the JSON; returns the JSON object."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, out, only = parse_args(argv)
    env = environment()
    nets = make_networks(cfg)
    key = jax.random.key(cfg.seed, impl=cfg.prng)
    rows = []
    for spec in SPECS:
        if only is not None and spec.key not in only:
            continue
        print(f"[samplers] {spec.key} ...", file=sys.stderr, flush=True)
        rows.append(bench_one(spec, cfg, nets, key))
    prims = None
    if cfg.diagnostics:
        print("[samplers] random draws ...", file=sys.stderr, flush=True)
        prims = bench_primitives(cfg, nets, key)
    result = {
        "benchmark": "samplers",
        "command": " ".join(["python", "benchmarks/samplers.py", *argv]),
        "config": dataclasses.asdict(cfg),
        "target_overhead": TARGET_OVERHEAD,
        "environment": env,
        "loadavg_end": _loadavg(),
        "samplers": rows,
        "primitives_per_step_s": prims,
    }
    print(
        f"\nbatch {cfg.batch}, {cfg.steps} steps, MLP hidden {cfg.hidden} depth {cfg.depth}, "
        f"{cfg.prng} keys; {env['backend']} ({env['device']}, {env['cpu_count']} cores, "
        f"load {env['loadavg'][0] if env['loadavg'] else '?'}); median of {cfg.repeats} runs.\n"
        f"overhead = sampler / (NFE * net per call) - 1 (! above {TARGET_OVERHEAD:.0%}); "
        "trivial field / net = the sampler with a trivial field, over NFE network calls.\n"
    )
    print(markdown_table(rows))
    if prims is not None:
        print()
        print(primitives_table(prims))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
