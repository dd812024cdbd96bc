"""BOSS on MNIST: FID against NFE for uniform Euler, BOSS grids, and BOSS + straightening.

    python benchmarks/boss.py                                   # pretrained flow_mnist / boss_mnist
    python benchmarks/boss.py --flow-checkpoint runs/flow_mnist --boss-checkpoint runs/boss_mnist
    python benchmarks/boss.py --num 5000 --inception            # + Inception FID (slow on CPU)
    python benchmarks/boss.py --quick --flow-checkpoint init --boss-checkpoint init  # smoke test
    python benchmarks/boss.py --help                            # all options

For every step budget K (default 2..10; NFE = K), three samplers draw ``--num`` images from
the same prior noise (one seed for all rows, so differences are not sampling noise of the
starting points):

- ``uniform``: the flow model (``--flow-recipe``, default flow_mnist) with Euler on the
  uniform grid ``1, 1 - 1/K, ..., 0`` (the rectified-flow sampler);
- ``boss``: the same model with Euler on its Bellman-optimal K-step grid (Nguyen et al.,
  ICLR 2024). Grids come from ``boss_grids.json`` in the flow checkpoint folder (made by
  ``genmodels boss-grids``); if the folder has none (or lacks a K, or
  ``--recompute-grids``), they are computed here with ``--grid-samples`` draws on a fine
  grid of ``--fine-steps`` (not written anywhere);
- ``straightened``: the BOSS-straightened model (``--boss-recipe``, default boss_mnist,
  ``--boss-checkpoint``) with Euler on the grids stored in its folder (the teacher's grids,
  the one it was straightened for marked in the table); ``none`` skips the row.

Quality: the classifier FID of :func:`genmodels.metrics.images.image_metrics` (features of
a small MNIST classifier, against the test split); ``--inception`` adds the Inception-v3
FID. With ``--ref-steps S`` (default 100, 0 = off) the flow model's S-step uniform Euler
samples give a reference FID (the quality the few-step samplers approach). Also reported:
the dynamic program's predicted improvement (the optimal path's summed one-step cost over
the uniform path's, from the grid file), and sampling wall time per point.

``--checkpoint init`` (either model) is a fresh ``init_model(PRNGKey(0))``: meaningless
quality, for the smoke test. ``--quick``: K in (2, 4), 64 images, 8 grid draws on a
12-step fine grid, a 12-step reference.

Writes JSON (default ``benchmarks/results/boss.json``; meta with device, JAX version,
arguments and where the grids came from), a PNG next to it (FID against NFE) and prints
a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

QUICK_KS = (2, 4)
QUICK_NUM = 64
QUICK_BATCH = 32
ROWS = ("uniform", "boss", "straightened")


def load(recipe: str, checkpoint: str):
    """``(config, method, model, folder or None)`` for a recipe and a checkpoint spec."""
    from flax import nnx

    from genmodels.models.run import load_recipe_model
    from genmodels.recipes import load_recipe

    cfg, info = load_recipe(recipe)
    if checkpoint == "init":
        method = cfg.build()
        model = nnx.jit(method.init_model)(jax.random.PRNGKey(0))
        return cfg, method, model, None
    folder = info.pretrained_dir if checkpoint == "pretrained" else Path(checkpoint)
    if checkpoint == "pretrained" and not info.has_pretrained:
        raise SystemExit(
            f"recipe {recipe!r} ships no pretrained model ({folder}); pass a run folder or 'init'"
        )
    method, model, _ = load_recipe_model(cfg, folder)
    return cfg, method, model, folder


def stored_grids(folder: Path | None, ks: Sequence[int]) -> tuple[dict | None, dict]:
    """Grids (and the file's metadata) from a checkpoint folder, if it has every K."""
    from genmodels.samplers.boss import find_boss_grids, read_boss_grids

    path = find_boss_grids(folder) if folder is not None else None
    if path is None:
        return None, {}
    grids = read_boss_grids(path)
    meta = json.loads(path.read_text())
    meta = {k: v for k, v in meta.items() if k != "grids"} | {"source": str(path)}
    if not set(ks) <= set(grids):
        return None, meta | {"missing": sorted(set(ks) - set(grids))}
    return {k: grids[k] for k in ks}, meta


def flow_grids(method, model, folder, args, ks) -> tuple[dict, dict]:
    """The flow model's BOSS grids: stored ones, else computed in memory."""
    from genmodels.samplers.boss import compute_boss_grids, grids_meta

    if not args.recompute_grids:
        grids, meta = stored_grids(folder, ks)
        if grids is not None:
            return grids, meta
    grids, info = compute_boss_grids(
        method.boss_problem(model),
        jax.random.PRNGKey(args.seed + 1),
        num_samples=args.grid_samples,
        fine_steps=args.fine_steps,
        ks=ks,
        batch_size=min(args.batch, args.grid_samples),
    )
    return grids, grids_meta(info) | {"source": "computed"}


def fid_of(images: np.ndarray, inception: bool) -> dict[str, float]:
    from genmodels.metrics.images import image_metrics

    out = image_metrics(images, dataset="mnist", inception=inception)
    return {k: float(v) for k, v in out.items() if k in ("fid", "fid_classifier")}


def run_point(method, model, args, **kw) -> dict[str, Any]:
    """Sample ``--num`` images with one sampler setting; FID and wall time."""
    t0 = time.perf_counter()
    images = method.sample(
        model,
        jax.random.PRNGKey(args.seed),
        args.num,
        batch_size=args.batch,
        progress=False,
        **kw,
    )
    sample_s = time.perf_counter() - t0
    return fid_of(images, args.inception) | {"sample_s": sample_s}


def _dp_ratio(meta: dict, k: int) -> float | None:
    c, u = meta.get("cost", {}).get(str(k)), meta.get("uniform_cost", {}).get(str(k))
    return None if c is None or not u else float(c) / float(u)


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    key = "fid_classifier"
    sk = meta.get("straightened_k")
    head = "| K = NFE | uniform Euler | BOSS grid | BOSS + straightening | DP cost BOSS / uniform |"
    lines = [f"Classifier FID (lower is better), {meta['args']['num']} samples per point.", ""]
    lines += [head, "|---|---|---|---|---|"]
    for r in result["rows"]:
        cells = []
        for name in ROWS:
            v = r.get(name)
            cells.append("-" if v is None else f"{v[key]:.2f}")
        if sk is not None and r["k"] == sk and cells[2] != "-":
            cells[2] += " (straightened K)"
        ratio = r.get("dp_cost_ratio")
        lines.append(
            f"| {r['k']} | {' | '.join(cells)} | {'-' if ratio is None else f'{ratio:.3f}'} |"
        )
    if result.get("reference"):
        ref = result["reference"]
        lines.append(f"\nReference: {ref['steps']}-step uniform Euler, FID {ref[key]:.2f}.")
    if meta["args"]["inception"]:
        lines += [
            "",
            "Inception FID:",
            "",
            head.replace(" | DP cost BOSS / uniform", ""),
            "|---|---|---|---|",
        ]
        for r in result["rows"]:
            cells = ["-" if r.get(n) is None else f"{r[n]['fid']:.2f}" for n in ROWS]
            lines.append(f"| {r['k']} | {' | '.join(cells)} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["fid_classifier"] + (["fid"] if result["meta"]["args"]["inception"] else [])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    labels = {
        "uniform": "uniform Euler",
        "boss": "BOSS grid",
        "straightened": "BOSS + straightening",
    }
    for ax, m in zip(axes[0], metrics):
        for name in ROWS:
            pts = [(r["k"], r[name][m]) for r in result["rows"] if r.get(name)]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=labels[name])
        if result.get("reference"):
            ref = result["reference"]
            ax.axhline(ref[m], color="gray", ls="--", label=f"{ref['steps']}-step Euler")
        sk = result["meta"].get("straightened_k")
        if sk in [r["k"] for r in result["rows"]]:
            ax.axvline(sk, color="gray", ls=":", lw=0.8)
        ax.set_xlabel("NFE (Euler steps K)")
        ax.set_ylabel("classifier FID" if m == "fid_classifier" else "Inception FID")
        ax.set_yscale("log")
        ax.legend()
    fig.suptitle(f"BOSS on MNIST ({result['meta']['args']['num']} samples per point)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--flow-recipe", default="flow_mnist")
    p.add_argument("--flow-checkpoint", default="pretrained", help="pretrained | DIR | init")
    p.add_argument("--boss-recipe", default="boss_mnist")
    p.add_argument("--boss-checkpoint", default="pretrained", help="pretrained | DIR | init | none")
    p.add_argument("--ks", type=int, nargs="+", default=list(range(2, 11)))
    p.add_argument("--num", type=int, default=2000, help="samples per point")
    p.add_argument("--batch", type=int, default=500, help="images per jitted sampler call")
    p.add_argument("--inception", action="store_true", help="also the Inception-v3 FID")
    p.add_argument("--ref-steps", type=int, default=100, help="reference Euler steps (0: off)")
    p.add_argument("--grid-samples", type=int, default=100)
    p.add_argument("--fine-steps", type=int, default=100)
    p.add_argument("--recompute-grids", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/boss.json")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(list(argv))
    if a.quick:
        a.ks, a.num, a.batch = list(QUICK_KS), QUICK_NUM, QUICK_BATCH
        a.grid_samples, a.fine_steps = 8, 12
        a.ref_steps = 12 if a.ref_steps else 0
    return a


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ks = sorted(set(args.ks))
    t_start = time.perf_counter()
    _, flow_method, flow_model, flow_folder = load(args.flow_recipe, args.flow_checkpoint)
    grids, grid_meta = flow_grids(flow_method, flow_model, flow_folder, args, ks)

    boss = None
    boss_meta: dict[str, Any] = {}
    if args.boss_checkpoint != "none":
        bcfg, _, boss_model, boss_folder = load(args.boss_recipe, args.boss_checkpoint)
        if bcfg.net != flow_method.config.net:
            raise SystemExit("the straightened model's network differs from the flow model's")
        bgrids, boss_meta = stored_grids(boss_folder, ks)
        if bgrids is None:
            # an 'init' model or a folder without grids: the flow model's (= the teacher's
            # when the boss recipe straightens this flow model)
            bgrids, boss_meta = grids, boss_meta | {"source": "flow grids"}
        boss = (boss_model, bgrids)
        boss_meta["straightened_k"] = boss_meta.get(
            "straightened_k", getattr(bcfg, "steps_k", None)
        )

    rows = []
    for k in ks:
        row: dict[str, Any] = {"k": k, "nfe": k, "dp_cost_ratio": _dp_ratio(grid_meta, k)}
        # uniform Euler through the boss sampler with the uniform grid: the same numbers
        # as sampler="euler", and one compiled sampler per K for all three rows
        uni = np.linspace(1.0, 0.0, k + 1, dtype=np.float32)
        row["uniform"] = run_point(flow_method, flow_model, args, sampler="boss", grid=uni)
        row["boss"] = run_point(flow_method, flow_model, args, sampler="boss", grid=grids[k])
        row["grid"] = [float(t) for t in grids[k]]
        if boss is not None:
            # the straightened model has the flow model's architecture: sampling it through
            # the flow method reuses the compiled samplers
            row["straightened"] = run_point(
                flow_method, boss[0], args, sampler="boss", grid=boss[1][k]
            )
            row["straightened_grid"] = [float(t) for t in boss[1][k]]
        else:
            row["straightened"] = None
        rows.append(row)
        print(
            f"K={k}: "
            + ", ".join(
                f"{n} {row[n]['fid_classifier']:.2f}" for n in ROWS if row.get(n) is not None
            ),
            flush=True,
        )
    reference = None
    if args.ref_steps:
        reference = {"steps": args.ref_steps} | run_point(
            flow_method, flow_model, args, sampler="euler", steps=args.ref_steps
        )

    result = {
        "benchmark": "boss",
        "meta": {
            "device": str(jax.devices()[0].device_kind),
            "platform": jax.default_backend(),
            "jax": jax.__version__,
            "args": vars(args),
            "flow": {
                "recipe": args.flow_recipe,
                "checkpoint": args.flow_checkpoint,
                "grids": grid_meta,
            },
            "boss": {
                "recipe": args.boss_recipe,
                "checkpoint": args.boss_checkpoint,
                "grids": {k: v for k, v in boss_meta.items() if k != "straightened_k"},
            },
            "straightened_k": boss_meta.get("straightened_k"),
            "total_s": time.perf_counter() - t_start,
        },
        "rows": rows,
        "reference": reference,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    plot(result, out.with_suffix(".png"))
    print(markdown(result))
    print(f"\nwrote {out} and {out.with_suffix('.png')}")
    return json.loads(json.dumps(result))


if __name__ == "__main__":
    main()
