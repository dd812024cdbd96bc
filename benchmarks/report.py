"""The speed report: every method's sampling and training speed, next to its network alone.

    python benchmarks/report.py                 # the full report (about 30-40 min on 2 CPU cores)
    python benchmarks/report.py --quick         # sampling only, batch 16, few steps, 2 processes
    python benchmarks/report.py --only gdss_qm9 pard_qm9 --quick
    python benchmarks/report.py --help

For each recipe of :data:`SPECS` (one per method x domain pair, freshly initialised: speed
does not depend on the weights), one run measures

- **network alone**: the jitted loss forward pass (corruption, one network call, the loss)
  at the sampling batch and at the training batch. It is the same-run baseline: every
  other time is also given as a multiple of it, a ratio that holds on a loaded machine
  where absolute times do not;
- **sampling**: one jitted batch of the recipe's default sampler (``sample_states``, or
  CDVAE's Langevin decoding) at ``--steps`` of the spec, its compile time (the first
  call), its time (the second call), its NFE (network evaluations per sample, from the
  sampler's own count) and samples/s. ``sample / (NFE x net)`` is the sampler's cost per
  network evaluation in units of one network call: near 1 means the sampler adds little
  beyond its network calls. The baseline is the training forward, so it can cost more
  than one sampling call (PARD trains on a doubled graph: its ratio is well below 1) or
  less (the sampler's per-step random draws and bookkeeping add to the ratio at small
  batches);
- **training**: the compile time of the jitted optimizer step and steps/s over
  ``--train-iters`` steps at the recipe's batch (capped by the spec), and
  ``step / net``, the step's time in units of the loss forward at that batch (backward
  and optimizer update included: about 3 is typical).

``--quick`` times sampling and the network only (no training), at batch 16 with few
sampler steps, two recipes at a time in separate processes: it is dominated by XLA
compile times and takes a few minutes on 2 CPU cores. Samples/s are for the steps
actually run. Methods whose NFE is fixed by the data (the
first-hitting sampler: one call per token; PARD: steps per block times blocks) report
what they ran. Results go to ``benchmarks/results.json`` (``--out``), a markdown table to
``benchmarks/results.md`` and a plot to ``benchmarks/results.png`` (the ratios per method);
the table is printed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from genmodels.recipes import load_recipe
from genmodels.train.config import OptimConfig
from genmodels.train.loop import init_state, make_train_step
from genmodels.train.optim import make_optimizer


@dataclass(frozen=True)
class Spec:
    """One row of the report: a recipe and the sizes it is timed at.

    Attributes:
      recipe: recipe name (``genmodels recipes``).
      method: method label in the table.
      domain: domain label in the table.
      sample_batch: samples per jitted sampling batch (full report).
      steps: sampler steps of the full report (``None``: the recipe's default).
      train_batch: training batch cap (full report).
      quick_steps: sampler steps under ``--quick`` (``None``: the recipe's default, for
        samplers whose NFE is fixed by the data).
      sampler: sampler name (``None``: the recipe's default).
    """

    recipe: str
    method: str
    domain: str
    sample_batch: int = 128
    steps: int | None = None
    train_batch: int = 128
    quick_steps: int | None = 4
    sampler: str | None = None


#: the report's rows; recipes missing from this checkout are skipped with a note
SPECS: tuple[Spec, ...] = (
    Spec("gdss_community_small", "GDSS", "graphs", steps=1000, quick_steps=10),
    Spec(
        "gdss_qm9",
        "GDSS",
        "molecules",
        sample_batch=1024,
        steps=1000,
        train_batch=1024,
        quick_steps=10,
    ),
    Spec("pard_qm9", "PARD", "molecules", sample_batch=256, quick_steps=2),
    Spec("pard_community_small", "PARD", "graphs", sample_batch=64, train_batch=32, quick_steps=2),
    Spec("cdvae_perov5", "CDVAE", "crystals", sample_batch=128, steps=10, quick_steps=1),
    Spec(
        "pfgmpp_perov5",
        "PFGM++ (CDVAE coords)",
        "crystals",
        sample_batch=128,
        quick_steps=10,
    ),
    Spec("mdm_qm9", "masked diffusion + FHS", "molecules", sample_batch=512, quick_steps=None),
    Spec("mdm_perov5", "masked diffusion + FHS", "crystals", sample_batch=512, quick_steps=None),
    Spec(
        "mdm_mnist",
        "masked diffusion + FHS",
        "images",
        sample_batch=64,
        train_batch=64,
        quick_steps=None,
    ),
    Spec("flow_mnist", "flow matching", "images", sample_batch=250, train_batch=64),
    Spec("pfgmpp_mnist", "PFGM++ (D=128)", "images", sample_batch=250, train_batch=64),
    Spec("edm_mnist", "EDM + PC sampler", "images", sample_batch=250, train_batch=64),
    Spec("pfgmpp_qm9", "PFGM++ (D=128)", "molecules", sample_batch=1024, train_batch=1024),
    Spec("flow_qm9", "flow matching", "molecules", sample_batch=1024, train_batch=1024),
    Spec("pfgmpp_community_small", "PFGM++ (D=128)", "graphs", train_batch=80),
    Spec("flow_community_small", "flow matching", "graphs", train_batch=80),
    Spec(
        "mdm_community_small",
        "masked diffusion + FHS",
        "graphs",
        train_batch=80,
        quick_steps=None,
    ),
    Spec(
        "flow_perov5",
        "flow matching (CDVAE coords)",
        "crystals",
        sample_batch=128,
        quick_steps=10,
    ),
)

QUICK = {"sample_batch": 16, "train_batch": 16, "train_iters": 3, "repeats": 3}


def _median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` (which must block until its result is ready)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _replace_batch(cfg: Any, batch: int) -> Any:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch))


def _loader_batch(method: Any, batch: int, index: int = 0) -> dict:
    """Batch ``index`` of ``batch`` real training examples: the method's loader rebuilt at
    that size (the examples repeated when the training split is smaller than ``batch``)."""
    import numpy as np

    from genmodels.train.data import ArrayLoader

    loader = method.loader()
    inner = getattr(loader, "inner", loader)  # CDVAE wraps an ArrayLoader
    if not hasattr(inner, "arrays"):
        return loader.batch(index)
    n = inner.num_examples
    arrays = (
        inner.arrays
        if n >= batch
        else {k: v[np.arange(batch) % n] for k, v in inner.arrays.items()}
    )
    new = ArrayLoader(arrays, batch_size=batch, seed=0)
    if inner is not loader:
        new = dataclasses.replace(loader, inner=new)
    return new.batch(index)


#: jitted loss forwards, one per method object (see _net_time)
_FWD_CACHE: dict[int, Any] = {}


def _net_time(method: Any, model: nnx.Module, batch: dict, repeats: int) -> tuple[float, float]:
    """``(compile_s, seconds)`` of the jitted loss forward pass on ``batch``.

    The jitted function is cached on the method, so a second batch of the same shapes
    reuses its compilation (``compile_s`` is then the first call's time, near zero)."""
    graphdef, state = nnx.split(model)
    fwd = _FWD_CACHE.get(id(method))
    if fwd is None:

        @jax.jit
        def fwd(state, batch, key):
            return method.loss_fn(nnx.merge(graphdef, state), batch, key)[0]

        _FWD_CACHE[id(method)] = fwd
    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    fwd(state, batch, key).block_until_ready()
    compile_s = time.perf_counter() - t0
    return compile_s, _median_time(lambda: fwd(state, batch, key).block_until_ready(), repeats)


def _sample_once(method: Any, model: nnx.Module, key, batch: int, steps, sampler) -> int:
    """One jitted sampling batch; returns its NFE per sample (blocks until ready)."""
    kw: dict[str, Any] = {}
    if steps is not None:
        kw["steps"] = steps
    if sampler is not None:
        kw["sampler"] = sampler
    if hasattr(method, "sample_states"):
        out = method.sample_states(model, key, batch, **kw)
        jax.block_until_ready(out[0])
        nfe = out[-1].get("nfe")
        return int(jax.device_get(nfe).max()) if hasattr(nfe, "shape") else int(nfe)
    # CDVAE: Langevin decoding of latents; NFE = levels x steps per level
    arrays = method.sample_arrays(model, key, batch, batch_size=batch, progress=False, **kw)
    jax.block_until_ready(arrays["frac"])
    c = method.config
    name = sampler or getattr(c, "sampler", "langevin")
    if name == "langevin":  # annealed Langevin: levels x steps per level
        return int(c.num_noise_level) * int(steps or c.n_step_each)
    levels = int(steps or c.num_noise_level)  # the PFGM++ / EDM backward ODE over levels
    return 2 * levels - 1 if name == "heun" else levels


def bench(
    spec: Spec, quick: bool, train_iters: int, repeats: int, train: bool = True
) -> dict[str, Any]:
    """Time one recipe (see the module docstring); ``train=False`` skips training."""
    cfg, _ = load_recipe(spec.recipe)
    sb = QUICK["sample_batch"] if quick else spec.sample_batch
    tb = QUICK["train_batch"] if quick else min(spec.train_batch, cfg.train.batch_size)
    steps = spec.quick_steps if quick else spec.steps
    cfg = _replace_batch(cfg, tb)
    method = cfg.build()
    model = method.init_model(jax.random.PRNGKey(0))
    row: dict[str, Any] = {
        "recipe": spec.recipe,
        "method": spec.method,
        "domain": spec.domain,
        "sampler": spec.sampler or getattr(cfg, "sampler", None),
        "steps": steps,
        "sample_batch": sb,
        "train_batch": tb,
    }
    # sampling: first call compiles, then the median of `repeats` calls
    t0 = time.perf_counter()
    nfe = _sample_once(method, model, jax.random.PRNGKey(1), sb, steps, spec.sampler)
    row["sample_compile_s"] = time.perf_counter() - t0
    row["nfe"] = nfe
    row["sample_s"] = _median_time(
        lambda: _sample_once(method, model, jax.random.PRNGKey(2), sb, steps, spec.sampler),
        max(1, repeats // 2),
    )
    row["samples_per_s"] = sb / row["sample_s"]
    # network alone at the sampling batch
    row["net_compile_s"], row["net_s"] = _net_time(
        method, model, _loader_batch(method, sb), repeats
    )
    if nfe > 0:
        row["sample_per_nfe_over_net"] = row["sample_s"] / (nfe * row["net_s"])
    if not train:
        return row
    # training at the training batch
    tx, _ = make_optimizer(
        cfg.optim if isinstance(cfg.optim, OptimConfig) else OptimConfig(), 10_000
    )
    graphdef, st = init_state(model, tx)
    step = jax.jit(make_train_step(graphdef, method.loss_fn, tx, 0.999, jax.random.PRNGKey(0)))
    batches = [_loader_batch(method, tb, i) for i in range(train_iters + 1)]
    t0 = time.perf_counter()
    st, m = step(st, batches[0], 0)
    jax.block_until_ready(m["loss"])
    row["train_compile_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, b in enumerate(batches[1:], start=1):
        st, m = step(st, b, i)
    jax.block_until_ready(m["loss"])
    row["train_step_s"] = (time.perf_counter() - t0) / train_iters
    row["train_steps_per_s"] = 1.0 / row["train_step_s"]
    _, row["net_train_batch_s"] = _net_time(method, model, batches[0], repeats)
    row["train_step_over_net"] = row["train_step_s"] / row["net_train_batch_s"]
    return row


def bench_safe(spec: Spec, quick: bool, train_iters: int, repeats: int, train: bool) -> dict:
    """:func:`bench`, with a failure recorded in the row instead of raised (one broken
    recipe must not hide the others' figures)."""
    t0 = time.perf_counter()
    print(f"[report] {spec.recipe} ...", flush=True)
    try:
        row = bench(spec, quick, train_iters, repeats, train)
    except Exception as e:
        row = {
            "recipe": spec.recipe,
            "method": spec.method,
            "domain": spec.domain,
            "error": f"{type(e).__name__}: {e}",
        }
        print(f"[report] {spec.recipe} FAILED: {row['error']}", flush=True)
    row["wall_s"] = time.perf_counter() - t0
    print(f"[report] {spec.recipe} done in {row['wall_s']:.0f} s", flush=True)
    return row


def markdown(result: dict[str, Any]) -> str:
    """The report's table (one row per recipe)."""
    meta = result["meta"]
    lines = [
        f"Speed report ({'quick' if meta['quick'] else 'full'}; {meta['device']}, "
        f"{meta['devices']} device(s), JAX {meta['jax']}). Times in seconds; "
        "`net` = the jitted loss forward at the same batch, measured in the same run.",
        "",
        "| method | domain | recipe | sampler (steps) | NFE | batch | samples/s | "
        "sample / (NFE x net) | compile sample (s) | train steps/s (batch) | "
        "step / net | compile train (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['domain']} | `{r['recipe']}` | {r['error']} |")
            continue
        ratio = r.get("sample_per_nfe_over_net")
        lines.append(
            f"| {r['method']} | {r['domain']} | `{r['recipe']}` | {r['sampler']} "
            f"({r['steps'] if r['steps'] is not None else 'default'}) | {r['nfe']} | "
            f"{r['sample_batch']} | {r['samples_per_s']:.2f} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {r['sample_compile_s']:.1f} | "
            + (
                f"{r['train_steps_per_s']:.2f} ({r['train_batch']}) | "
                f"{r['train_step_over_net']:.2f} | {r['train_compile_s']:.1f} |"
                if "train_steps_per_s" in r
                else "- | - | - |"
            )
        )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Bar charts of the two same-run ratios per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if "error" not in r]
    names = [r["recipe"] for r in rows]
    panels = [
        ("sample_per_nfe_over_net", "sampling time / (NFE x network alone)"),
        ("train_step_over_net", "training step / loss forward"),
    ]
    panels = [p for p in panels if any(p[0] in r for r in rows)]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(6 * len(panels), 0.35 * len(rows) + 1.5), squeeze=False
    )
    for ax, (key, label) in zip(axes[0], panels):
        vals = [r.get(key, float("nan")) for r in rows]
        ax.barh(names, vals, color="tab:blue")
        ax.axvline(1.0, color="gray", ls="--", lw=0.8)
        ax.set_xlabel(label)
        ax.invert_yaxis()
    fig.suptitle(f"genmodels speed report ({'quick' if result['meta']['quick'] else 'full'})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="batch 16, few steps, 3 train steps")
    p.add_argument("--only", nargs="+", default=None, help="recipes to run (default: all)")
    p.add_argument("--train-iters", type=int, default=10)
    p.add_argument("--no-train", action="store_true", help="skip the training timings")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="recipes timed in parallel processes (default: 2 with --quick, else 1)",
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results.json")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from genmodels.recipes import list_recipes

    known = set(list_recipes())
    specs = [s for s in SPECS if args.only is None or s.recipe in args.only]
    if args.only:
        unknown = sorted(set(args.only) - {s.recipe for s in SPECS})
        if unknown:
            raise SystemExit(f"--only: not in the report: {', '.join(unknown)}")
    if args.workers is None:
        args.workers = 2 if args.quick else 1
    train_iters = QUICK["train_iters"] if args.quick else args.train_iters
    repeats = QUICK["repeats"] if args.quick else args.repeats
    rows = []
    t_all = time.perf_counter()
    skipped = [s.recipe for s in specs if s.recipe not in known]
    for name in skipped:
        print(f"[report] {name}: no such recipe in this checkout, skipped", flush=True)
    specs = [s for s in specs if s.recipe in known]
    train = not args.quick and not args.no_train
    jobs = [(s, args.quick, train_iters, repeats, train) for s in specs]
    if args.workers > 1 and len(jobs) > 1:
        # one process per recipe at a time: XLA compiles mostly on one core, so two
        # workers roughly halve a report dominated by compile time. The ratios to the
        # network alone stay valid: both sides of each ratio run in the same process.
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as ex:
            rows = list(ex.map(bench_safe, *zip(*jobs)))
    else:
        rows = [bench_safe(*job) for job in jobs]
    result = {
        "meta": {
            "quick": args.quick,
            "device": str(jax.devices()[0].device_kind),
            "devices": jax.device_count(),
            "jax": jax.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "train_iters": train_iters,
            "workers": args.workers,
            "skipped": skipped,
            "repeats": repeats,
            "wall_s": time.perf_counter() - t_all,
        },
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    table = markdown(result)
    out.with_suffix(".md").write_text(table + "\n")
    plot(result, out.with_suffix(".png"))
    print(table)
    print(f"\nwrote {out}, {out.with_suffix('.md')} and {out.with_suffix('.png')}")
    failed = [r["recipe"] for r in rows if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
