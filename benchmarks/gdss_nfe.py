"""Quality per network call of the pretrained GDSS models across the shared samplers.

    python benchmarks/gdss_nfe.py                       # both models, the default sweep
    python benchmarks/gdss_nfe.py --only gdss_qm9 --num 1000
    python benchmarks/gdss_nfe.py --only gdss_community_small --seeds 0 1 2

Each point samples the shipped model (``recipes/pretrained/<recipe>``) with one sampler
at one step count and scores it with the method's ``evaluate`` against the test split,
exactly as ``genmodels sample`` + ``genmodels evaluate`` would:

- ``gdss_qm9``: ``--num`` molecules (default 1,000) per seed; validity without
  correction, FCD, NSPDK, uniqueness and novelty. The reference quality is the recipe's
  own sampler (reverse diffusion + Langevin, 1,000 steps = 2,000 NFE), run here with the
  same seeds and count.
- ``gdss_community_small``: as many graphs as the test split (20) per seed, 3 seeds;
  degree / clustering / orbit MMD. The reference is the recipe's sampler (Euler +
  Langevin, 1,000 steps).

A setting "keeps the quality" when (molecules) validity without correction is within 1
point of the reference and FCD within 10 %, or (graphs) each MMD's mean over the seeds is
at most the reference mean plus the reference's spread (population standard deviation
over the seeds). NFE is the network calls per sample the sampler reports (the adaptive
ODE's mean over the batch). Writes ``results/gdss_nfe.json`` and ``results/gdss_nfe.png``
(quality against NFE, log scale) and prints a table with the fewest-NFE setting that
keeps the quality.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from genmodels.models.run import load_recipe_model, resolve_checkpoint
from genmodels.recipes import load_recipe

HERE = Path(__file__).resolve().parent

#: (sampler, steps; None = adaptive) per recipe; the first entry is the reference setting
SWEEPS = {
    "gdss_qm9": [
        ("reverse_langevin", 1000),
        ("reverse_langevin", 100),
        ("s4", 25),
        ("s4", 50),
        ("s4", 100),
        ("s4", 200),
        ("ode", 10),
        ("ode", 25),
        ("ode", None),
    ],
    "gdss_community_small": [
        ("euler_langevin", 1000),
        ("euler_langevin", 100),
        ("s4", 50),
        ("s4", 100),
        ("s4", 200),
        ("ode", 10),
        ("ode", 25),
        ("ode", None),
    ],
}
#: metrics that decide "keeps the quality", and whether higher is better
KEYS = {
    "gdss_qm9": {"validity_wo_correction": True, "fcd": False},
    "gdss_community_small": {"degree": False, "clustering": False, "orbit": False},
}


def run_point(method, model, sampler, steps, seed: int, num: int) -> dict:
    """Sample ``num`` with one setting and ``seed``; the method's metrics plus NFE and
    the sampling seconds."""
    key = jax.random.PRNGKey(seed)
    _, _, info = method.sample_states(model, key, 8, sampler=sampler, steps=steps)
    nfe = float(np.mean(np.asarray(info["nfe"])))  # compiles; adaptive ODE: per-batch mean
    t0 = time.perf_counter()
    kw = dict(sampler=sampler, steps=steps, batch_size=num, progress=False)
    if method.task.__class__.__name__ == "MoleculeTask":
        samples, raw = method.task.pairs(method.sample_parts(model, key, num, **kw), num)
        wall = time.perf_counter() - t0
        m = method.evaluate(samples, split="test", raw=raw)
    else:
        samples = method.sample(model, key, num, **kw)
        wall = time.perf_counter() - t0
        m = method.evaluate(samples, split="test")
    out = {k: float(v) for k, v in m.items() if isinstance(v, int | float)}
    if sampler == "ode" and steps is None:  # the NFE of this very run's batch
        _, _, info = method.sample_states(model, key, num, sampler=sampler, steps=steps)
        nfe = float(np.mean(np.asarray(info["nfe"])))
    out.update(nfe=nfe, sample_s=wall, seed=seed)
    return out


def summarize(recipe: str, points: list[dict]) -> None:
    """Mark each point's ``keeps_quality`` against the first (reference) setting."""
    ref = points[0]
    for p in points:
        keep = True
        for k, higher in KEYS[recipe].items():
            mean = p["mean"][k]
            r_mean, r_sd = ref["mean"][k], ref["std"][k]
            if recipe == "gdss_qm9":
                ok = mean >= r_mean - 0.01 if higher else mean <= 1.10 * r_mean
            else:
                ok = mean <= r_mean + r_sd
            keep &= bool(ok)
        p["keeps_quality"] = keep


def plot(results: dict, path: Path) -> None:
    """One panel per (recipe, metric): the metric against NFE (log), a line per sampler,
    the reference setting dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = max(len(KEYS[r]) for r in results)
    fig, axes = plt.subplots(
        len(results), ncol, figsize=(4.2 * ncol, 3.4 * len(results)), squeeze=False
    )
    for row, (recipe, points) in enumerate(results.items()):
        ref = points[0]
        for col, key in enumerate(KEYS[recipe]):
            ax = axes[row, col]
            for sampler in dict.fromkeys(p["sampler"] for p in points):
                ps = sorted((p for p in points if p["sampler"] == sampler), key=lambda p: p["nfe"])
                ax.plot([p["nfe"] for p in ps], [p["mean"][key] for p in ps], "o-", label=sampler)
            ax.axhline(ref["mean"][key], ls="--", c="gray", lw=1, label="reference")
            ax.set_xscale("log")
            ax.set_xlabel("network calls per sample (NFE)")
            ax.set_title(f"{recipe}: {key}", fontsize=9)
            if recipe != "gdss_qm9":
                ax.set_yscale("log")
            ax.legend(fontsize=7)
        for col in range(len(KEYS[recipe]), ncol):
            axes[row, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--only", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    p.add_argument("--num", type=int, default=None, help="samples per seed (QM9: 1000)")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--out", default=str(HERE / "results" / "gdss_nfe.json"))
    a = p.parse_args(argv)

    results: dict[str, list[dict]] = {}
    for recipe in a.only:
        cfg, info = load_recipe(recipe)
        method, model, _ = load_recipe_model(cfg, resolve_checkpoint(info, "pretrained"))
        molecules = recipe == "gdss_qm9"
        num = a.num or (1000 if molecules else method.task.default_num_samples())
        seeds = a.seeds or ([0] if molecules else [0, 1, 2])
        points = []
        for sampler, steps in SWEEPS[recipe]:
            runs = [run_point(method, model, sampler, steps, s, num) for s in seeds]
            keys = [k for k in runs[0] if k != "seed"]
            pt = {
                "sampler": sampler,
                "steps": steps,
                "nfe": statistics.mean(r["nfe"] for r in runs),
                "num": num,
                "seeds": seeds,
                "mean": {k: statistics.mean(r[k] for r in runs) for k in keys},
                "std": {k: statistics.pstdev(r[k] for r in runs) for k in keys},
                "runs": runs,
            }
            points.append(pt)
            shown = ", ".join(f"{k} {pt['mean'][k]:.4g}" for k in KEYS[recipe])
            print(f"{recipe} {sampler} steps={steps}: NFE {pt['nfe']:.0f}, {shown}", flush=True)
        summarize(recipe, points)
        results[recipe] = points

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"args": {r: vars(a) for r in results}, "jax": jax.__version__, "keys": KEYS}
    if out.exists():  # keep the other recipes' curves (``--only`` reruns one)
        old = json.loads(out.read_text())
        results = {**old["results"], **results}
        meta["args"] = {**old["meta"].get("args", {}), **meta["args"]}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    plot(results, out.with_suffix(".png"))
    for recipe, points in results.items():
        print(f"\n{recipe} (first row: the recipe's sampler)")
        print("| sampler | steps | NFE | " + " | ".join(KEYS[recipe]) + " | keeps quality |")
        print("|---|---|---|" + "---|" * len(KEYS[recipe]) + "---|")
        for pt in points:
            vals = " | ".join(f"{pt['mean'][k]:.4g}" for k in KEYS[recipe])
            print(
                f"| {pt['sampler']} | {pt['steps'] or 'adaptive'} | {pt['nfe']:.0f} | {vals} | "
                f"{'yes' if pt['keeps_quality'] else 'no'} |"
            )
        best = min((pt for pt in points if pt["keeps_quality"]), key=lambda pt: pt["nfe"])
        print(f"fewest NFE keeping the quality: {best['sampler']} at {best['nfe']:.0f} NFE")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
