"""PFGM++ on MNIST across the augmentation dimension D, at equal sampling budget.

    python benchmarks/pfgmpp_d.py --model 128=runs/pfgmpp_mnist --model inf=runs/pfgmpp_mnist_Dinf
    python benchmarks/pfgmpp_d.py --model 64=runs/D64 --model 128=runs/pfgmpp_mnist \\
        --model 2048=runs/D2048 --model inf=runs/pfgmpp_mnist_Dinf --num 5000 --inception
    python benchmarks/pfgmpp_d.py --model 128=pretrained ...     # the recipe's shipped model
    python benchmarks/pfgmpp_d.py --quick --model 128=init --model inf=init   # smoke test
    python benchmarks/pfgmpp_d.py --help                          # all options

Target (the issue): PFGM++ with a finite D at least matches EDM (D = infinity) at equal
training budget. For reference only (GPU runs of the 56M DDPM++ at full budget, not
comparable to these numbers): the paper's CIFAR-10 FIDs at 35 NFE are 1.92 (D = 128),
1.91 (D = 2048) and 1.98 (EDM) (Xu et al., ICML 2023, Table).

Each ``--model D=CHECKPOINT`` is one PFGM++ model: the recipe's config (``--recipe``,
default pfgmpp_mnist) with its ``D`` replaced (``inf`` = EDM), and CHECKPOINT one of

- ``pretrained``: the recipe's shipped model (an error if the recipe ships none);
- a run folder of ``genmodels train`` (its stored config must record the same D, else
  the benchmark stops);
- ``init``: a fresh ``init_model(PRNGKey(0))``, meaningless quality, for the smoke test.

The checkpoints compared by the target are trained with the same recipe and budget:

    genmodels train pfgmpp_mnist --workdir runs/pfgmpp_mnist                # D = 128
    genmodels train pfgmpp_mnist --D inf --workdir runs/pfgmpp_mnist_Dinf   # EDM
    genmodels train pfgmpp_mnist --D 2048 --workdir runs/pfgmpp_mnist_D2048

Every model draws ``--num`` images (default 2000) from the same ``PRNGKey(--seed)`` with
the same sampler: EDM's Heun (``--sampler heun``, ``--steps`` 18 noise levels, i.e.
2 * 18 - 1 = 35 NFE, read from the sampler's ``info["nfe"]``). The rounds are those of
``method.sample`` (keys ``fold_in(key, round)``, batches of ``--batch``), so the images
equal ``method.sample(model, PRNGKey(seed), num, batch_size=batch)``. Reported per model:
the classifier FID of :func:`genmodels.metrics.images.image_metrics` (features of a small
MNIST classifier, against the test split), with ``--inception`` the Inception-v3 FID too
(slow on CPU), the sampling wall time (the first round includes the XLA compile;
``s_per_image`` is measured on the later rounds) and the checkpoint's training step and
batch size (the table says when the budgets differ). ``--save-samples DIR`` writes each
model's images (``DIR/D<D>.npz``, e.g. ``D128.npz``, ``Dinf.npz``, and a PNG grid, by
``method.write_samples``), e.g. for notebooks.

``--quick``: 32 images in batches of 16, 3 Heun levels (5 NFE), for the smoke test.

Writes JSON (default ``benchmarks/results/pfgmpp_d.json``; meta with device, JAX version,
arguments and each model's checkpoint and training steps; ``rows`` sorted by D, EDM last;
D = inf is written as ``Infinity``, which Python's ``json`` reads back), a PNG next to it
(FID against D) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

QUICK_NUM = 32
QUICK_BATCH = 16
QUICK_STEPS = 3
#: the paper's CIFAR-10 FIDs (Heun, 35 NFE; Xu et al. 2023): a GPU reference only
PAPER_CIFAR10 = {"128": 1.92, "2048": 1.91, "inf": 1.98}
METRICS = ("fid_classifier", "fid")


def parse_model(spec: str) -> tuple[float, str]:
    """``"D=CHECKPOINT"`` -> ``(D, CHECKPOINT)``; ``D`` a positive float or ``inf``."""
    d, sep, ckpt = spec.partition("=")
    if not sep or not d.strip() or not ckpt.strip():
        raise argparse.ArgumentTypeError(
            f"--model takes D=CHECKPOINT (e.g. 128=pretrained, inf=runs/pfgmpp_mnist_Dinf, "
            f"2048=init), got {spec!r}"
        )
    try:
        value = float(d)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--model {spec!r}: D must be a number or 'inf', got {d!r}"
        ) from None
    if math.isnan(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"--model {spec!r}: D must be positive (or inf)")
    return value, ckpt.strip()


def label(d: float) -> str:
    """The D as the tables and the plot write it: ``128``, ``0.5``, ``inf (EDM)``."""
    if math.isinf(d):
        return "inf (EDM)"
    return str(int(d)) if d == int(d) else f"{d:g}"


def short(d: float) -> str:
    """The D in file names and the JSON's keys: ``128``, ``inf``."""
    return "inf" if math.isinf(d) else label(d)


def stored_d(meta: dict) -> float | None:
    """The D recorded in a checkpoint's config (JSON ``Infinity`` or a string), if any."""
    d = (meta.get("config") or {}).get("D")
    if d is None:
        return None
    try:
        return float(d)  # float('inf'), float('Infinity'), float('inf') from JSON Infinity
    except (TypeError, ValueError):
        return None


def load(recipe: str, d: float, checkpoint: str) -> dict[str, Any]:
    """The model of one ``--model`` entry and what its checkpoint says.

    Returns:
      ``{"method", "model", "info"}`` with ``info`` the JSON-able checkpoint record
      (checkpoint, folder, training step and batch size, the stored D).
    """
    from flax import nnx

    from genmodels.models.run import load_recipe_model
    from genmodels.recipes import load_recipe
    from genmodels.train.export import EXPORT_KEY

    base, rinfo = load_recipe(recipe)
    if not any(f.name == "D" for f in dataclasses.fields(base)):
        raise SystemExit(f"recipe {recipe!r} has no field D (not a PFGM++ recipe)")
    cfg = dataclasses.replace(base, D=float(d))
    info: dict[str, Any] = {"recipe": recipe, "D": d, "checkpoint": checkpoint}
    if checkpoint == "init":
        method = cfg.build()
        model = nnx.jit(method.init_model)(jax.random.PRNGKey(0))
        return {"method": method, "model": model, "info": info | {"folder": None}}
    folder = rinfo.pretrained_dir if checkpoint == "pretrained" else Path(checkpoint)
    if checkpoint == "pretrained" and not rinfo.has_pretrained:
        raise SystemExit(
            f"recipe {recipe!r} ships no pretrained model ({folder}); pass a run folder "
            f"(--model {short(d)}=runs/...) or 'init'"
        )
    if not folder.is_dir():
        raise SystemExit(f"--model {short(d)}={checkpoint}: no such checkpoint folder")
    method, model, meta = load_recipe_model(cfg, folder)
    got = stored_d(meta)
    if got is not None and not (got == d or math.isclose(got, d, rel_tol=1e-9)):
        raise SystemExit(
            f"--model {short(d)}={checkpoint}: the checkpoint was trained with "
            f"D = {short(got)}, not {short(d)}; pass --model {short(got)}={checkpoint}"
        )
    train = meta.get("train") or {}
    info |= {
        "folder": str(folder),
        "stored_D": got,
        "train_step": meta.get("step"),
        "train_steps_config": train.get("steps"),
        "train_batch_size": train.get("batch_size"),
        "train_elapsed_s": meta.get("elapsed_s"),
        "exported": meta.get(EXPORT_KEY),  # "ema" / "raw" for a pretrained export
    }
    return {"method": method, "model": model, "info": info}


def draw(method, model, args) -> tuple[np.ndarray, int, dict[str, Any]]:
    """``--num`` images the way ``method.sample`` draws them, the NFE and wall times.

    Returns:
      ``(images uint8 [num, H, W, C], nfe, times)``.
    """
    from genmodels.domains.images import decode

    key = jax.random.PRNGKey(args.seed)
    batch = min(args.batch, max(args.num, 1))
    rounds = math.ceil(args.num / batch)
    out, nfes, times = [], set(), []
    for r in range(rounds):
        t0 = time.perf_counter()
        state, _, info = method.sample_states(
            model, jax.random.fold_in(key, r), batch, sampler=args.sampler, steps=args.steps
        )
        out.append(decode(state))  # to the host: waits for the round
        times.append(time.perf_counter() - t0)
        nfes.add(int(info["nfe"]))
    if len(nfes) != 1:
        raise RuntimeError(f"the sampler reported varying NFE {sorted(nfes)}")
    later = times[1:]
    return (
        np.concatenate(out)[: args.num],
        nfes.pop(),
        {
            "sample_s": float(sum(times)),
            "first_round_s": times[0],
            "s_per_image": float(sum(later) / (batch * len(later))) if later else None,
        },
    )


def fid_of(images: np.ndarray, dataset: str, inception: bool) -> dict[str, float]:
    from genmodels.metrics.images import image_metrics

    out = image_metrics(images, dataset=dataset, inception=inception)
    return {k: float(v) for k, v in out.items() if k in METRICS}


def run_point(entry: dict[str, Any], args) -> dict[str, Any]:
    """Sample one model, FID and wall time: the JSON row."""
    method, info = entry["method"], entry["info"]
    images, nfe, times = draw(method, entry["model"], args)
    row: dict[str, Any] = {
        "D": info["D"],
        "label": label(info["D"]),
        "checkpoint": info["checkpoint"],
        "train_step": info.get("train_step"),
        "sampler": args.sampler,
        "steps": args.steps,
        "nfe": nfe,
        "num": int(len(images)),
    }
    row |= fid_of(images, method.config.dataset, args.inception) | times
    if args.save_samples:
        path = Path(args.save_samples) / f"D{short(info['D'])}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        method.write_samples(images, path)
        row["samples"] = str(path)
    return row


def metrics_of(result: dict[str, Any]) -> list[str]:
    rows = result["rows"]
    return [m for m in METRICS if rows and m in rows[0]]


def target(rows: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The issue's target on one metric: the best finite D against EDM (lower is better)."""
    edm = [r for r in rows if math.isinf(r["D"])]
    finite = [r for r in rows if not math.isinf(r["D"])]
    if not edm or not finite or metric not in edm[0]:
        return None
    best = min(finite, key=lambda r: r[metric])
    return {
        "metric": metric,
        "edm": edm[0][metric],
        "best_finite_D": best["D"],
        "best_finite": best[metric],
        "finite_matches_edm": bool(best[metric] <= edm[0][metric]),
    }


def budgets(models: list[dict[str, Any]]) -> dict[str, Any]:
    """Training steps and batch size per trained model, and whether they are all equal."""
    trained = [m for m in models if m.get("folder") is not None]
    per = {short(m["D"]): [m.get("train_step"), m.get("train_batch_size")] for m in trained}
    equal = None if not trained else len({tuple(v) for v in per.values()}) == 1
    return {"per_model": per, "equal": equal}


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    a = meta["args"]
    metrics = metrics_of(result)
    names = {"fid_classifier": "classifier FID", "fid": "Inception FID"}
    lines = [
        f"PFGM++ on {meta['dataset']} across D: {a['num']} samples per model, sampler "
        f"{a['sampler']} with {a['steps']} levels, seed {a['seed']} (lower FID is better).",
        "",
        "| D | checkpoint | training steps | NFE | "
        + " | ".join(names[m] for m in metrics)
        + " | sampling s |",
        "|---|---|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for r in result["rows"]:
        step = "-" if r.get("train_step") is None else str(r["train_step"])
        fids = " | ".join(f"{r[m]:.2f}" for m in metrics)
        lines.append(
            f"| {r['label']} | {r['checkpoint']} | {step} | {r['nfe']} | {fids} | "
            f"{r['sample_s']:.1f} |"
        )
    b = meta["training_budget"]
    if b["equal"] is False:
        lines += ["", f"Training budgets differ (step, batch size): {b['per_model']}."]
    for t in result["target"]:
        verdict = "met" if t["finite_matches_edm"] else "not met"
        lines += [
            "",
            f"Target (finite D at least matches EDM), {names[t['metric']]}: best finite "
            f"D = {label(t['best_finite_D'])} {t['best_finite']:.2f} vs EDM {t['edm']:.2f}: "
            f"{verdict}.",
        ]
    paper = ", ".join(f"{label(float(k))} {v}" for k, v in PAPER_CIFAR10.items())
    lines += ["", f"Paper reference (CIFAR-10, GPU, 35 NFE; not comparable): {paper}."]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    metrics = metrics_of(result)
    names = {"fid_classifier": "classifier FID", "fid": "Inception FID"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    xs = np.arange(len(rows))
    for ax, m in zip(axes[0], metrics):
        finite = [(i, r[m]) for i, r in enumerate(rows) if not math.isinf(r["D"])]
        if finite:
            ax.plot(*zip(*finite), marker="o", label="PFGM++ (finite D)")
        for i, r in enumerate(rows):
            if math.isinf(r["D"]):
                ax.plot([i], [r[m]], marker="s", color="C3", ls="", label="EDM (D = inf)")
                ax.axhline(r[m], color="C3", ls="--", lw=0.8)
        ax.set_xticks(xs, [r["label"] for r in rows])
        ax.set_xlabel("augmentation dimension D")
        ax.set_ylabel(names[m])
        ax.legend()
    a = result["meta"]["args"]
    fig.suptitle(
        f"PFGM++ on {result['meta']['dataset']}: {a['num']} samples, {a['sampler']} "
        f"{rows[0]['nfe'] if rows else '?'} NFE"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        type=parse_model,
        action="append",
        required=True,
        metavar="D=CHECKPOINT",
        help="D (a number or inf) and pretrained | DIR | init; repeat for each model",
    )
    p.add_argument("--recipe", default="pfgmpp_mnist")
    p.add_argument("--num", type=int, default=2000, help="samples per model")
    p.add_argument("--batch", type=int, default=500, help="images per jitted sampler call")
    p.add_argument("--sampler", default="heun", choices=("heun", "euler"))
    p.add_argument("--steps", type=int, default=18, help="noise levels (heun: 2 K - 1 NFE)")
    p.add_argument("--inception", action="store_true", help="also the Inception-v3 FID")
    p.add_argument(
        "--save-samples", metavar="DIR", help="write DIR/D<D>.npz per model (D128.npz, Dinf.npz)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/pfgmpp_d.json")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(list(argv))
    seen = [d for d, _ in a.model]
    dup = sorted({short(d) for d in seen if seen.count(d) > 1})
    if dup:
        p.error(f"D given more than once: {', '.join(dup)}")
    if a.quick:
        a.num, a.batch, a.steps = QUICK_NUM, QUICK_BATCH, QUICK_STEPS
    if a.num < 2 or a.batch < 1 or a.steps < 1:
        p.error("--num must be at least 2 (for a FID), --batch and --steps positive")
    return a


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.perf_counter()
    # load (and check) every model before sampling any
    entries = [load(args.recipe, d, ckpt) for d, ckpt in sorted(args.model)]
    dataset = entries[0]["method"].config.dataset
    rows = []
    for e in entries:
        row = run_point(e, args)
        rows.append(row)
        print(
            f"D={row['label']}: NFE {row['nfe']}, "
            + ", ".join(f"{m} {row[m]:.2f}" for m in METRICS if m in row)
            + f", {row['sample_s']:.1f} s",
            flush=True,
        )
    models = [e["info"] for e in entries]
    result = {
        "benchmark": "pfgmpp_d",
        "meta": {
            "device": str(jax.devices()[0].device_kind),
            "platform": jax.default_backend(),
            "jax": jax.__version__,
            "args": vars(args),
            "dataset": dataset,
            "models": models,
            "training_budget": budgets(models),
            "paper_cifar10": PAPER_CIFAR10,
            "total_s": time.perf_counter() - t_start,
        },
        "rows": rows,
    }
    result["target"] = [t for m in metrics_of(result) if (t := target(rows, m)) is not None]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    plot(result, out.with_suffix(".png"))
    print(markdown(result))
    print(f"\nwrote {out} and {out.with_suffix('.png')}")
    return json.loads(json.dumps(result))


if __name__ == "__main__":
    main()
