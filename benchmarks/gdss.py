"""GDSS speed: sampling throughput, training steps/s and compile time per dataset config.

    python benchmarks/gdss.py                       # community_small + ego_small, 1000 steps
    python benchmarks/gdss.py --datasets community_small --steps 100 --quick
    python benchmarks/gdss.py --datasets community_small ego_small enzymes grid --steps 100
    python benchmarks/gdss.py --devices 2      # the batch split over 2 CPU devices

Sampling uses each recipe's reference sampler (community_small: Euler + Langevin, 2 NFE per
step) at batch 128 for ``--steps`` steps; training times jitted optimizer steps at batch
128 (the reference setting) on random-but-valid batches from the training set. Network
sizes are the recipes' (the reference configs). Anchor (the issue, reference PyTorch code on
this machine kind, 2 cores): community_small sampling 128 graphs in 128 s for 1000 steps
(1.0 graph/s), training 4.9 steps/s at batch 128. The JSON records the anchors and ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import jax

from genmodels.recipes import load_recipe
from genmodels.train.config import OptimConfig
from genmodels.train.data import ArrayLoader
from genmodels.train.loop import init_state, make_train_step
from genmodels.train.optim import make_optimizer
from genmodels.train.sharding import data_mesh, replicated, shard_batch

ANCHORS = {"community_small": {"sample_graphs_per_s": 1.0, "train_steps_per_s": 4.9}}


def bench_dataset(
    name: str,
    steps: int,
    batch: int,
    train_iters: int,
    anchors: dict = ANCHORS,
    sampler: str | None = None,
) -> dict:
    """Sampling and training speed of recipe ``gdss_<name>`` at batch ``batch`` (its own
    sampler unless ``sampler`` is given; ``train_iters=0``: sampling only)."""
    cfg, _ = load_recipe(f"gdss_{name.lower()}")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch))
    if sampler is not None:
        cfg = dataclasses.replace(cfg, sampler=sampler)
    method = cfg.build()
    model = method.init_model(jax.random.PRNGKey(0))
    out: dict = {
        "dataset": name,
        "batch": batch,
        "sampler": cfg.sampler,
        "steps": steps,
        "devices": jax.device_count(),
    }
    mesh = data_mesh()

    # sampling: first call compiles, the second is timed
    t0 = time.perf_counter()
    state, _, info = method.sample_states(model, jax.random.PRNGKey(1), batch, steps=steps)
    jax.block_until_ready(state)
    out["sample_compile_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, _, info = method.sample_states(model, jax.random.PRNGKey(2), batch, steps=steps)
    jax.block_until_ready(state)
    dt = time.perf_counter() - t0
    out["sample_s"] = dt
    out["nfe"] = int(info["nfe"])
    out["sample_graphs_per_s"] = batch / dt
    # scale to 1000 steps when fewer were run (time is linear in steps)
    out["sample_graphs_per_s_at_1000_steps"] = batch / (dt * 1000 / steps)

    if train_iters == 0:
        return out
    # training: jitted steps on real batches (wrapping around the small training set)
    base = method.loader()
    loader = ArrayLoader(base.arrays, batch_size=batch, seed=0)
    tx, _ = make_optimizer(
        cfg.optim if isinstance(cfg.optim, OptimConfig) else OptimConfig(), 10_000
    )
    graphdef, st = init_state(model, tx)
    # as the training loop: parameters replicated, the batch split over the devices
    st = jax.device_put(st, replicated(mesh))
    step = jax.jit(make_train_step(graphdef, method.loss_fn, tx, 0.999, jax.random.PRNGKey(0)))
    b0 = shard_batch(loader.batch(0), mesh)
    t0 = time.perf_counter()
    st, m = step(st, b0, 0)
    jax.block_until_ready(m["loss"])
    out["train_compile_s"] = time.perf_counter() - t0
    batches = [shard_batch(loader.batch(i), mesh) for i in range(train_iters)]
    t0 = time.perf_counter()
    for i, b in enumerate(batches):
        st, m = step(st, b, i)
    jax.block_until_ready(m["loss"])
    out["train_steps_per_s"] = train_iters / (time.perf_counter() - t0)
    if name in anchors:
        a = anchors[name]
        out["anchor"] = a
        out["sample_speedup_vs_reference"] = (
            out["sample_graphs_per_s_at_1000_steps"] / a["sample_graphs_per_s"]
        )
        out["train_speedup_vs_reference"] = out["train_steps_per_s"] / a["train_steps_per_s"]
    return out


def default_batch(name: str) -> int:
    """128 (the reference anchors' batch), or the recipe's batch when smaller (grid: 8)."""
    cfg, _ = load_recipe(f"gdss_{name.lower()}")
    return min(128, cfg.train.batch_size if name not in ANCHORS else 128)


def set_host_devices(n: int | None) -> None:
    """Expose ``n`` CPU devices (must run before JAX initialises its backend)."""
    if n:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
        if jax.device_count() != n:
            raise SystemExit(f"asked for {n} devices, JAX sees {jax.device_count()}")


def write_report(rows: list[dict], args: dict, out: str, unit: str) -> None:
    """Write ``rows`` (with the run's arguments and device) to ``out`` and print a table."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": str(jax.devices()[0]), "jax": jax.__version__, "args": args}
    Path(out).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(
        f"| dataset | sampler | NFE | {unit} (1000 steps) | train steps/s | "
        "compile sample / train (s) | vs reference (sample, train) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ref = (
            f"{r['sample_speedup_vs_reference']:.2f}x, {r['train_speedup_vs_reference']:.2f}x"
            if "anchor" in r
            else "n/a"
        )
        print(
            f"| {r['dataset']} | {r['sampler']} | {r['nfe']} | "
            f"{r['sample_graphs_per_s_at_1000_steps']:.3f} | {r['train_steps_per_s']:.2f} | "
            f"{r['sample_compile_s']:.1f} / {r['train_compile_s']:.1f} | {ref} |"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--datasets", nargs="+", default=["community_small", "ego_small"])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help="default: 128 (the anchors' setting), or the recipe's batch when smaller",
    )
    p.add_argument("--train-iters", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="10 sampling steps, 3 training steps")
    p.add_argument("--out", default="benchmarks/results/gdss.json")
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        help="split the batch over this many CPU devices (XLA host devices, one thread each)",
    )
    a = p.parse_args(argv)
    set_host_devices(a.devices)
    if a.quick:
        a.steps, a.train_iters = 10, 3
    rows = [
        bench_dataset(d, a.steps, a.batch or default_batch(d), a.train_iters) for d in a.datasets
    ]
    write_report(rows, vars(a), a.out, unit="graphs/s")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
