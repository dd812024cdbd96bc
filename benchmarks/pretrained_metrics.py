"""Metrics of a recipe's pretrained model over several sampling seeds -> ``metrics.json``.

    python benchmarks/pretrained_metrics.py gdss_community_small --train-run runs/gdss_community_small

For each seed the pretrained model (``recipes/pretrained/<recipe>``) is sampled with the
key ``PRNGKey(seed)``, as ``genmodels sample --seed S`` does, and scored by the method's
``evaluate`` (what ``genmodels evaluate`` prints); molecules are decoded with and without
valency correction from the same samples. The file holds every seed's metrics, their mean and (population) standard deviation, the
sampling wall time, the training wall time and steps (read from the training run's
``metrics.jsonl``, or given with ``--train-wall-s``) and the commands that reproduce it.

The number of samples defaults to the method's evaluation protocol: GDSS generic graphs
sample as many graphs as the test split holds (the reference ``sampler.py`` truncates
its samples to ``len(test_graph_list)``); GDSS molecules 10,000; CDVAE 1,000; images 10,000.

Images (flow matching, PFGM++, BOSS) get the classifier FID of all samples and the
Inception FID of the first ``--inception-num`` (default all; Inception-v3 runs at about 2-4
images/s on two CPU cores), the sampler's NFE, and the first seed's samples in
``--samples-out`` (``.npz`` plus a PNG grid of the first 100 next to it).

CDVAE also reconstructs the whole test split (``reconstruct_arrays`` with the seed's key,
CDVAE's ``scripts/evaluate.py`` protocol) and adds ``match_rate`` and ``rmse``. Its
decoded arrays can come from another machine (an accelerator host, which needs no
pymatgen: ``CDVAE.sample_arrays`` / ``reconstruct_arrays`` with the same keys):
``--generated G.npz --reconstructed R.npz --arrays-from "where they were made"``.
With a property model shipped for the dataset its ``evaluate`` adds ``prop_wdist``; with
``--optimize`` (a model trained with ``predict_property``) CDVAE's property optimisation
runs with the reference settings (:func:`genmodels.optimization.optimize_and_score`: 100
test crystals, 5,000 Adam steps, 10 snapshots) and adds SR5, SR10, SR15 and the
optimised crystals' validity (``opt_validity``, ``opt_validity_final``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from genmodels.models.run import load_recipe_model, resolve_checkpoint
from genmodels.models.tasks.crystals import CrystalTask
from genmodels.models.tasks.images import ImageTask
from genmodels.models.tasks.molecules import MoleculeTask
from genmodels.recipes import load_recipe
from genmodels.train.logging import read_metrics


def default_num(method) -> int:
    """The evaluation sample count of the method's task (GDSS graphs: the test split size;
    molecules and images: 10,000; crystals: 1,000)."""
    return method.task.default_num_samples()


def check_against(shipped: dict, record: dict) -> int:
    """Print each seed's figures next to the shipped ones; 1 when any differs by > 1e-6
    (sampling with the same seeds and count must reproduce them exactly)."""
    old = {p["seed"]: p for p in shipped["per_seed"]}
    bad = 0
    for new in record["per_seed"]:
        ref = old.get(new["seed"], {})
        for k, v in new.items():
            if k == "seed" or k not in ref or not isinstance(v, float) or k.endswith("_s"):
                continue
            same = abs(v - float(ref[k])) <= 1e-6 * max(1.0, abs(v))
            bad += not same
            print(
                f"seed {new['seed']} {k:>24}: {v:.6g} (shipped {float(ref[k]):.6g}) {'same' if same else 'DIFFERENT'}"
            )
    print("reproduced" if not bad else f"{bad} figures differ")
    return 1 if bad else 0


def train_record(run: str | None, wall_s: float | None) -> dict:
    out: dict = {}
    if run:
        log = read_metrics(run)
        if log:
            last = log[-1]
            out["steps"] = int(last["step"])
            out["final_loss"] = float(last["loss"])
            if "elapsed_s" in last:
                out["wall_s"] = float(last["elapsed_s"])
    if wall_s is not None:
        out["wall_s"] = float(wall_s)
    return out


def optimize_record(method, model, key) -> dict:
    """SR5 / SR10 / SR15 and validity of CDVAE's property optimisation (reference settings)
    scored with the property model shipped for the dataset."""
    from genmodels.metrics.property_model import shipped_property_model
    from genmodels.optimization import optimize_and_score

    scorer = shipped_property_model(method.config.dataset)
    if scorer is None or model.fc_property is None:
        raise SystemExit("error: --optimize needs a property head and a shipped property model")
    rec = optimize_and_score(method, model, scorer, key)
    return {("opt_" + k if k.startswith("validity") else k): v for k, v in rec["metrics"].items()}


def image_record(method, model, key, num: int, args, first: bool) -> dict:
    """Sample ``num`` images; classifier FID of all, Inception FID of the first
    ``--inception-num``, NFE and the sampling wall time (``sample_s``)."""
    from genmodels.metrics.images import fid, fid_classifier

    t0 = time.perf_counter()
    samples, nfe = method.sample(model, key, num, return_nfe=True)
    m: dict = {"sample_s": time.perf_counter() - t0}
    if first and args.samples_out:
        method.write_samples(samples, Path(args.samples_out))
    m["fid_classifier"] = float(fid_classifier(samples, method.config.dataset, "test"))
    n_inc = num if args.inception_num is None else min(args.inception_num, num)
    if n_inc:
        m["fid"] = float(fid(samples[:n_inc], method.config.dataset, "test"))
        m["num_inception"] = float(n_inc)
    m["nfe"] = float(nfe)
    m["num_samples"] = float(len(samples))
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--num", type=int, default=None, help="samples per seed")
    ap.add_argument("--train-run", default=None, help="training run folder (its metrics.jsonl)")
    ap.add_argument("--train-wall-s", type=float, default=None, help="training wall time")
    ap.add_argument("--train-command", default=None, help="how the run was trained")
    ap.add_argument(
        "--train-from",
        default=None,
        help="an earlier metrics.json whose training record and command to keep "
        "(re-scoring a model whose run folder is gone)",
    )
    ap.add_argument("--out", default=None, help="default: recipes/pretrained/<recipe>/metrics.json")
    ap.add_argument(
        "--check",
        action="store_true",
        help="compare with the shipped metrics.json (same seeds and sample count) instead "
        "of writing it; exit 1 when a figure differs by more than 1e-6",
    )
    ap.add_argument("--generated", nargs="+", default=None, help="CDVAE: arrays, one per seed")
    ap.add_argument("--reconstructed", nargs="+", default=None, help="CDVAE: one per seed")
    ap.add_argument(
        "--reconstruct-num",
        type=int,
        default=None,
        help="CDVAE: reconstruct only the first N test crystals (default: all)",
    )
    ap.add_argument("--arrays-from", default=None, help="where --generated were decoded")
    ap.add_argument(
        "--optimize",
        action="store_true",
        help="CDVAE with a property head: also SR5/SR10/SR15 of property optimisation",
    )
    ap.add_argument(
        "--inception-num",
        type=int,
        default=None,
        help="images: Inception FID of the first N samples (default all, 0: none)",
    )
    ap.add_argument("--samples-out", default=None, help="images: the first seed's samples (.npz)")
    ap.add_argument(
        "--array-wall-s",
        type=float,
        nargs="+",
        default=None,
        help="sampling seconds of each --generated file, as measured there",
    )
    args = ap.parse_args(argv)

    cfg, info = load_recipe(args.recipe)
    try:
        folder = resolve_checkpoint(info, "pretrained")
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    # the loaded method knows its checkpoint folder (BOSS reads its time grids there)
    method, model, _ = load_recipe_model(cfg, folder)
    num = args.num or default_num(method)
    if args.check:  # the shipped file's protocol: its seeds and sample count
        shipped = json.loads((Path(args.out or info.pretrained_dir / "metrics.json")).read_text())
        args.seeds, num = shipped["seeds"], int(shipped["num_samples_per_seed"])
    per_seed, sample_s = [], []
    crystals = isinstance(method.task, CrystalTask)
    for i, seed in enumerate(args.seeds):
        key = jax.random.PRNGKey(seed)
        t0 = time.perf_counter()
        if isinstance(method.task, MoleculeTask):
            # molecules: validity with and without correction from the same samples
            samples, raw = method.task.pairs(method.sample_parts(model, key, num), num)
            sample_s.append(time.perf_counter() - t0)
            m = method.evaluate(samples, split="test", raw=raw)
        elif crystals:
            if args.generated:
                gen = dict(np.load(args.generated[i]))
                sample_s.append(args.array_wall_s[i] if args.array_wall_s else float("nan"))
            else:
                gen = method.sample_arrays(model, key, num)
                sample_s.append(time.perf_counter() - t0)
            if i == 0:  # the arrays behind the figures, for plots (notebooks/crystals.ipynb)
                out_dir = Path(args.out).parent if args.out else info.pretrained_dir
                np.savez_compressed(out_dir / "generated.npz", **gen)
            m = method.evaluate(method.decode_arrays(gen), split="test")
            if args.reconstructed:
                rec = dict(np.load(args.reconstructed[i]))
            else:
                rec = method.reconstruct_arrays(model, key, "test", num=args.reconstruct_num)
            m.update(method.evaluate_reconstruction(method.decode_arrays(rec), split="test"))
            m["num_reconstructed"] = float(rec["num_atoms"].shape[0])
            if args.optimize:
                m.update(optimize_record(method, model, key))
            m = {k: float(v) for k, v in m.items()}
        elif isinstance(method.task, ImageTask):
            m = image_record(method, model, key, num, args, first=i == 0)
            sample_s.append(m.pop("sample_s"))
        else:
            samples = method.sample(model, key, num)
            sample_s.append(time.perf_counter() - t0)
            m = method.evaluate(samples, split="test")
        per_seed.append({"seed": seed, **m})
        print(json.dumps(per_seed[-1]), flush=True)

    keys = [k for k, v in per_seed[0].items() if k != "seed" and isinstance(v, float)]
    summary = {
        k: {
            "mean": float(np.mean([p[k] for p in per_seed])),
            "std": float(np.std([p[k] for p in per_seed])),
        }
        for k in keys
    }
    train_cmd = args.train_command or f"genmodels train {args.recipe} --workdir runs/{args.recipe}"
    train = train_record(args.train_run, args.train_wall_s)
    if args.train_from:  # read before ``out`` (possibly the same file) is overwritten
        prev = json.loads(Path(args.train_from).read_text())
        train = {**prev.get("train", {}), **train}
        train_cmd = args.train_command or prev["commands"][0]
    record = {
        "recipe": args.recipe,
        "split": "test",
        "num_samples_per_seed": num,
        "seeds": args.seeds,
        "sampler": getattr(cfg, "sampler", None),
        "sample_steps": getattr(cfg, "sample_steps", None),
        "metrics": summary,
        "per_seed": per_seed,
        "sample_wall_s_per_seed": sample_s,
        "train": train,
        "commands": [
            train_cmd,
            f"genmodels export {args.recipe} --checkpoint runs/{args.recipe}",
            "python benchmarks/pretrained_metrics.py "
            + args.recipe
            + (
                f" --train-from {args.train_from}"
                if args.train_from
                else f" --train-run runs/{args.recipe}"
            )
            + " --seeds "
            + " ".join(map(str, args.seeds))
            + (f" --reconstruct-num {args.reconstruct_num}" if args.reconstruct_num else "")
            + (" --optimize" if args.optimize else "")
            + (f" --inception-num {args.inception_num}" if args.inception_num is not None else ""),
        ],
        "arrays_from": args.arrays_from,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "device": str(jax.devices()[0]),
        },
    }
    out = Path(args.out) if args.out else info.pretrained_dir / "metrics.json"
    if args.check:
        return check_against(json.loads(out.read_text()), record)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    for k, v in summary.items():
        print(f"{k:>12}: {v['mean']:.4f} +- {v['std']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
