"""GDSS side by side with the reference PyTorch code (harryjo97/GDSS) on this machine.

    python benchmarks/vs_reference.py --reference-dir ~/src/GDSS
    python benchmarks/vs_reference.py --reference-dir ~/src/GDSS --sample-steps 200 --rounds 1

The reference is run from its own work tree (``--reference-dir``, a clone of the public
repository; nothing of it is copied here): its networks (``load_model_params`` /
``load_model_optimizer`` of its configs), its loss (``load_loss_fn``), its EMA and its
predictor-corrector sampler (``solver.get_pc_sampler``), at its configs' network sizes,
batch sizes and sampler settings:

- QM9 (``config/qm9.yaml``, sampler of ``config/sample_qm9.yaml``): batch 1024, reverse
  diffusion + Langevin;
- community_small (``config/community_small.yaml``): batch 128, Euler + Langevin.

Ours is the matching recipe (``gdss_qm9``, ``gdss_community_small``) through
``benchmarks/gdss.py``'s ``bench_dataset``. Both train on the same real batches (ours
from the data set, written once for the reference in its dense ``x, adj`` layout) and
sample the same number of steps (``--sample-steps``; time is linear in it). Each
measurement runs in its own subprocess, reference and ours alternating, ``--rounds``
times; the JSON keeps every round and the ratios of the medians.

Training is timed as the reference ``Trainer.train`` inner loop does it per batch (both
networks' losses, backward passes, gradient clipping, Adam steps, EMA updates and the two
``.item()`` calls); ours is the jitted train step (``genmodels.train.loop``).

Set-up: the ``metrics`` extra brings torch; the reference imports a few packages it does
not use on this path (``pyemd``, ``easydict``, ``moses``, ``dill``), which are stubbed
when they are missing. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: recipe, reference training config, reference sampler config (None: in the training one)
CASES = {
    "qm9": ("gdss_qm9", "config/qm9.yaml", "config/sample_qm9.yaml"),
    "community_small": ("gdss_community_small", "config/community_small.yaml", None),
}


# ----------------------------------------------------------------------- reference side
def _attrs(d):
    """A YAML mapping as nested attribute access (what the reference gets from EasyDict)."""
    if isinstance(d, dict):
        return types.SimpleNamespace(**{k: _attrs(v) for k, v in d.items()})
    return d


def _stub_missing(names) -> None:
    import importlib.util

    for name in names:
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)


def reference_worker(a) -> dict:
    """Time the reference's training step and sampler (runs inside ``--reference-dir``)."""
    ref = Path(a.reference_dir).resolve()
    os.chdir(ref)
    sys.path.insert(0, str(ref))
    _stub_missing(["pyemd", "easydict", "moses", "dill"])
    import numpy as np
    import torch
    import yaml
    from solver import get_pc_sampler
    from utils.loader import (
        load_ema,
        load_loss_fn,
        load_model_optimizer,
        load_model_params,
        load_sde,
    )

    _, train_yaml, sample_yaml = CASES[a.case]
    config = _attrs(yaml.safe_load(open(train_yaml)))
    sampler_cfg = config if sample_yaml is None else _attrs(yaml.safe_load(open(sample_yaml)))
    data = np.load(a.batches)
    torch.manual_seed(0)
    out: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    # training: the Trainer.train inner loop
    params_x, params_adj = load_model_params(config)
    model_x, opt_x, _ = load_model_optimizer(params_x, config.train, "cpu")
    model_adj, opt_adj, _ = load_model_optimizer(params_adj, config.train, "cpu")
    ema_x = load_ema(model_x, decay=config.train.ema)
    ema_adj = load_ema(model_adj, decay=config.train.ema)
    loss_fn = load_loss_fn(config)
    xs, adjs = torch.from_numpy(data["x"]), torch.from_numpy(data["adj"])

    def train_step(i):
        opt_x.zero_grad()
        opt_adj.zero_grad()
        loss_x, loss_adj = loss_fn(model_x, model_adj, xs[i], adjs[i])
        loss_x.backward()
        loss_adj.backward()
        torch.nn.utils.clip_grad_norm_(model_x.parameters(), config.train.grad_norm)
        torch.nn.utils.clip_grad_norm_(model_adj.parameters(), config.train.grad_norm)
        opt_x.step()
        opt_adj.step()
        ema_x.update(model_x.parameters())
        ema_adj.update(model_adj.parameters())
        return loss_x.item(), loss_adj.item()

    train_step(0)  # warm-up (allocator, first-call overheads)
    t0 = time.perf_counter()
    for i in range(a.train_iters):
        train_step(i % len(xs))
    out["train_steps_per_s"] = a.train_iters / (time.perf_counter() - t0)

    # sampling: the reference PC sampler at ``--sample-steps`` steps
    model_x.eval()
    model_adj.eval()
    flags = torch.from_numpy(data["flags"])
    b, n, f = len(flags), xs.shape[2], xs.shape[3]

    def sampler(steps):
        config.sde.x.num_scales = config.sde.adj.num_scales = steps
        s, c = sampler_cfg.sampler, sampler_cfg.sample
        return get_pc_sampler(
            sde_x=load_sde(config.sde.x),
            sde_adj=load_sde(config.sde.adj),
            shape_x=(b, n, f),
            shape_adj=(b, n, n),
            predictor=s.predictor,
            corrector=s.corrector,
            snr=s.snr,
            scale_eps=s.scale_eps,
            n_steps=s.n_steps,
            probability_flow=c.probability_flow,
            continuous=True,
            denoise=c.noise_removal,
            eps=c.eps,
            device="cpu",
        )

    sampler(2)(model_x, model_adj, flags)  # warm-up
    run = sampler(a.sample_steps)
    t0 = time.perf_counter()
    _, _, nfe = run(model_x, model_adj, flags)
    dt = time.perf_counter() - t0
    out.update(sample_s=dt, nfe=int(nfe), sample_graphs_per_s=b / dt, batch=b)
    out["sampler"] = f"{sampler_cfg.sampler.predictor} + {sampler_cfg.sampler.corrector}"
    return out


# ----------------------------------------------------------------------------- our side
def ours_worker(a) -> dict:
    sys.path.insert(0, str(HERE))
    from gdss import bench_dataset

    r = bench_dataset(a.case, a.sample_steps, a.batch, a.train_iters, anchors={})
    keep = ("train_steps_per_s", "sample_s", "nfe", "sample_graphs_per_s", "batch", "sampler")
    out = {k: r[k] for k in keep}
    out.update(sample_compile_s=r["sample_compile_s"], train_compile_s=r["train_compile_s"])
    # the few-step setting (--sampler fast: quality kept, benchmarks/gdss_nfe.py)
    from genmodels.recipes import load_recipe

    fast_sampler, fast_steps = load_recipe(CASES[a.case][0])[0].fast
    f = bench_dataset(a.case, fast_steps, a.batch, 0, anchors={}, sampler=fast_sampler)
    out["fast"] = {"sampler": fast_sampler, "steps": fast_steps, "nfe": f["nfe"]}
    out["fast"]["sample_graphs_per_s"] = f["sample_graphs_per_s"]
    import jax

    out["jax"] = jax.__version__
    return out


def write_batches(case: str, batch: int, iters: int, path: Path) -> None:
    """The training batches (dense ``x [I, B, N, F]``, ``adj [I, B, N, N]``) and sampling
    node flags ``[B, N]`` from our data set, as both sides use them."""
    import dataclasses

    import jax
    import numpy as np

    from genmodels.recipes import load_recipe
    from genmodels.train.data import ArrayLoader

    cfg, _ = load_recipe(CASES[case][0])
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch))
    method = cfg.build()
    loader = ArrayLoader(method.loader().arrays, batch_size=batch, seed=0)
    xs, adjs = [], []
    for i in range(iters):
        x0, ctx = method.task.dense_batch(jax.tree.map(np.asarray, loader.batch(i)))
        xs.append(np.asarray(x0["x"], np.float32))
        adjs.append(np.asarray(x0["adj"], np.float32))
    flags = np.asarray(ctx["node_mask"], np.float32)
    np.savez(path, x=np.stack(xs), adj=np.stack(adjs), flags=flags)


# ------------------------------------------------------------------------------ driver
def _run_worker(side: str, a, case: str, batch: int, batches: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", side, "--case", case]
    cmd += ["--batch", str(batch), "--batches", str(batches)]
    cmd += ["--sample-steps", str(a.sample_steps), "--train-iters", str(a.train_iters)]
    if a.reference_dir:
        cmd += ["--reference-dir", str(a.reference_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode or not lines:
        tail = (r.stderr or r.stdout).strip().splitlines()[-15:]
        raise SystemExit(f"error: the {side} worker for {case} failed:\n" + "\n".join(tail))
    return json.loads(lines[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--reference-dir", default=None, help="a work tree of harryjo97/GDSS")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    p.add_argument("--sample-steps", type=int, default=1000)
    p.add_argument("--train-iters", type=int, default=20)
    p.add_argument("--out", default=str(HERE / "results" / "vs_reference.json"))
    p.add_argument("--worker", choices=["reference", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batches", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.worker:
        fn = reference_worker if a.worker == "reference" else ours_worker
        print(json.dumps(fn(a)))
        return 0
    if not a.reference_dir or not (Path(a.reference_dir) / "solver.py").is_file():
        p.error("--reference-dir must be a work tree of harryjo97/GDSS (it holds solver.py)")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in a.cases:
            import yaml

            train_yaml = Path(a.reference_dir) / CASES[case][1]
            batch = int(yaml.safe_load(train_yaml.read_text())["data"]["batch_size"])
            batches = Path(tmp) / f"{case}.npz"
            write_batches(case, batch, a.train_iters, batches)
            runs: dict[str, list[dict]] = {"reference": [], "ours": []}
            for rnd in range(a.rounds):
                for side in ("reference", "ours"):
                    r = _run_worker(side, a, case, batch, batches)
                    runs[side].append(r)
                    print(
                        f"{case} round {rnd + 1} {side:>9}: train {r['train_steps_per_s']:.2f}"
                        f" steps/s, sample {r['sample_graphs_per_s']:.3f} graphs/s "
                        f"({a.sample_steps} steps, NFE {r['nfe']})",
                        flush=True,
                    )
            med = {
                side: {
                    k: statistics.median(r[k] for r in rs)
                    for k in ("train_steps_per_s", "sample_graphs_per_s")
                }
                for side, rs in runs.items()
            }
            # ours at the few-step setting vs the reference's sampler at the full 1000 steps
            # (its rate is linear in the steps: scaled from --sample-steps)
            fast = statistics.median(r["fast"]["sample_graphs_per_s"] for r in runs["ours"])
            ref_1000 = med["reference"]["sample_graphs_per_s"] * a.sample_steps / 1000
            rows.append(
                {
                    "case": case,
                    "recipe": CASES[case][0],
                    "batch": batch,
                    "sample_steps": a.sample_steps,
                    "sampler": runs["reference"][0]["sampler"],
                    "median": med,
                    "train_ratio": med["ours"]["train_steps_per_s"]
                    / med["reference"]["train_steps_per_s"],
                    "sample_ratio": med["ours"]["sample_graphs_per_s"]
                    / med["reference"]["sample_graphs_per_s"],
                    "fast": {**runs["ours"][0]["fast"], "sample_graphs_per_s": fast},
                    "reference_graphs_per_s_at_1000_steps": ref_1000,
                    "fast_ratio_vs_reference_1000_steps": fast / ref_1000,
                    "rounds": runs,
                }
            )
    import platform

    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "args": vars(a)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(
        "\n| case | batch | sampler | train steps/s ref / ours | ratio | "
        "sample graphs/s ref / ours | ratio | ours few-step vs ref at 1000 steps |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["median"]
        print(
            f"| {r['case']} | {r['batch']} | {r['sampler']} | "
            f"{m['reference']['train_steps_per_s']:.2f} / {m['ours']['train_steps_per_s']:.2f} | "
            f"{r['train_ratio']:.2f}x | {m['reference']['sample_graphs_per_s']:.3f} / "
            f"{m['ours']['sample_graphs_per_s']:.3f} | {r['sample_ratio']:.2f}x | "
            f"{r['fast']['sampler']} x {r['fast']['steps']}: "
            f"{r['fast_ratio_vs_reference_1000_steps']:.0f}x |"
        )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
