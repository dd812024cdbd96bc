"""PARD: blocks per molecule across max_hops, training and sampling speed.

    python benchmarks/pard.py                               # pard_qm9, pretrained model
    python benchmarks/pard.py --checkpoint runs/pard_qm9 --batch 512
    python benchmarks/pard.py --checkpoint init --quick     # tiny run for the smoke test
    python benchmarks/pard.py --help

Part 1 (partial order). The mean and largest number of blocks per QM9 training molecule
for ``max_hops`` 0..4 (:func:`genmodels.core.partial_order.partition_batch`), next to
PARD's figures (``run.sh`` of LingxiaoShawn/Pard: 4.32 / 5.66 / 7.20 / 7.75 for 1..4).
PARD's QM9 keeps explicit hydrogens (``remove_h: False``, up to 29 nodes); ours follows
GDSS (heavy atoms, up to 9), so both are reported: heavy atoms, and the same molecules
with RDKit's ``AddHs`` (``--no-hydrogens`` skips that, about 30 s).

Part 2 (training speed). The recipe's loss and gradient, jitted, on a training batch of
``--train-batch`` molecules (median of ``--repeats`` calls after a compiling one), next
to the same-run baseline of one forward pass of the network on the doubled graph: the
figure to compare across machines is the ratio.

Part 3 (sampling speed). One jitted batch of ``--batch`` molecules (median of
``--repeats`` timed calls after the compiling call): molecules/s, NFE (denoising calls:
``steps`` per block, for as many blocks as the slowest molecule needs), blocks per
molecule, and next to it the same-run baseline of one network call on ``N`` nodes at the
same batch, so that ``sample_time / (NFE x call_time)`` shows the sampler's overhead
(the block-size calls, the categorical draws and the while loop).

Writes JSON (default ``benchmarks/results/pard.json``) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.core.partial_order import partition_batch
from genmodels.models.run import load_recipe_model
from genmodels.models.tasks.molecules import MoleculeTask
from genmodels.nets.ppgn import PPGNTransformerConfig
from genmodels.recipes import load_recipe

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pard.json"
#: PARD run.sh, "Average number of blocks in training set" (QM9 with hydrogens)
PARD_BLOCKS = {
    1: 4.316677421545986,
    2: 5.656101412851514,
    3: 7.200592650455101,
    4: 7.752029275913599,
}


def _median_time(fn, repeats: int) -> tuple[float, float]:
    """``(first_call_s, median_s)`` of a function returning JAX arrays."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        runs.append(time.perf_counter() - t0)
    return first, statistics.median(runs)


def blocks_table(method, hydrogens: bool) -> list[dict[str, Any]]:
    """Part 1: blocks per training molecule for max_hops 0..4."""
    types, bonds = method.raw_arrays()
    rows = []
    h_adj = h_mask = None
    if hydrogens:
        from rdkit import Chem

        smiles = method.task.splits[0]
        mats = [Chem.GetAdjacencyMatrix(Chem.AddHs(Chem.MolFromSmiles(s))) for s in smiles]
        nmax = max(len(a) for a in mats)
        h_adj = np.zeros((len(mats), nmax, nmax), np.int8)
        h_mask = np.zeros((len(mats), nmax), bool)
        for i, a in enumerate(mats):
            h_adj[i, : len(a), : len(a)] = a
            h_mask[i, : len(a)] = True
    for hops in range(5):
        p = partition_batch(bonds > 0, types >= 0, hops)
        row = {
            "max_hops": hops,
            "mean_blocks": float(p["num_blocks"].mean()),
            "max_blocks": int(p["num_blocks"].max()),
            "max_block_size": int(p["block_size"].max()),
            "pard_reference": PARD_BLOCKS.get(hops, 1.0 if hops == 0 else None),
        }
        if hydrogens:
            ph = partition_batch(h_adj, h_mask, hops)
            row["mean_blocks_with_h"] = float(ph["num_blocks"].mean())
            row["max_blocks_with_h"] = int(ph["num_blocks"].max())
        rows.append(row)
    return rows


def train_speed(cfg, method, model, batch: int, repeats: int) -> dict[str, Any]:
    """Part 2: loss + gradient per second, and the doubled-graph forward pass alone."""
    loader = dataclasses.replace(method.loader(), batch_size=batch)
    data = {k: jnp.asarray(v) for k, v in loader.batch(0).items()}
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def grad(params, key):
        def f(p):
            return method.loss_fn(nnx.merge(graphdef, p, rest), data, key)[0]

        return jax.value_and_grad(f)(params)

    n = data["types"].shape[1]
    nodes = jnp.zeros((batch, 2 * n), jnp.int32)
    edges = jnp.zeros((batch, 2 * n, 2 * n), jnp.int32)
    bid = jnp.concatenate([data["block_id"], data["block_id"]], 1)
    virt = jnp.concatenate([jnp.zeros_like(bid[:, :n], bool), data["block_id"] >= 0], 1)
    t = jnp.ones((batch,))

    @jax.jit
    def forward(params):
        m = nnx.merge(graphdef, params, rest)
        return m(nodes, edges, bid, virt, jnp.zeros_like(bid), t, cfg.steps)[2]

    key = jax.random.PRNGKey(0)
    g_first, g_med = _median_time(lambda: grad(params, key), repeats)
    f_first, f_med = _median_time(lambda: forward(params), repeats)
    return {
        "batch": batch,
        "grad_s": g_med,
        "steps_per_s": 1.0 / g_med,
        "graphs_per_s": batch / g_med,
        "compile_s": g_first - g_med,
        "forward_s": f_med,
        "grad_over_forward": g_med / f_med,
    }


def sample_speed(cfg, method, model, batch: int, repeats: int) -> dict[str, Any]:
    """Part 3: one jitted batch of samples, and one network call at the same batch."""
    keys = iter(range(10_000))
    last = {}

    def run():
        out = method.sample_states(model, jax.random.PRNGKey(next(keys)), batch)
        last["out"] = out
        return out

    s_first, s_med = _median_time(run, repeats)
    state, ctx, info = jax.device_get(last["out"])
    n = method.max_nodes
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    bid = jnp.asarray(ctx["block_id"])
    nodes = jnp.asarray(state["nodes"])
    edges = jnp.zeros((batch, n, n), jnp.int32)
    virt = bid == jnp.max(bid, 1, keepdims=True)
    t = jnp.ones((batch,))

    @jax.jit
    def call(params):
        m = nnx.merge(graphdef, params, rest)
        return m(nodes, edges, bid, virt, jnp.zeros_like(bid), t, cfg.steps)[:2]

    _, c_med = _median_time(lambda: call(params), max(repeats, 3))
    nfe = int(info["nfe"])
    molecules = isinstance(method.task, MoleculeTask)
    raw = method.task.pairs([method.decode(state, ctx)], batch)[1] if molecules else []
    return {
        "batch": batch,
        "sample_s": s_med,
        "molecules_per_s": batch / s_med,
        "compile_s": s_first - s_med,
        "nfe": nfe,
        "blocks_mean": float(np.mean(info["blocks"])),
        "blocks_max": int(np.max(info["blocks"])),
        "overflow": int(np.sum(info["overflow"])),
        "net_call_s": c_med,
        "sample_over_nfe_calls": s_med / (nfe * c_med),
        "validity_wo_correction_last_batch": float(np.mean([bool(s) for s in raw]))
        if raw
        else None,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| max_hops | blocks/molecule (heavy atoms) | max | with H | PARD (with H) |",
        "|---|---|---|---|---|",
    ]
    for r in result["blocks"]:
        wh = r.get("mean_blocks_with_h")
        ref = r["pard_reference"]
        lines.append(
            f"| {r['max_hops']} | {r['mean_blocks']:.3f} | {r['max_blocks']} | "
            f"{'' if wh is None else f'{wh:.3f}'} | {'' if ref is None else f'{ref:.2f}'} |"
        )
    tr, sa = result["train"], result["sample"]
    lines += [
        "",
        "| training (batch {b}) | loss+grad s | steps/s | graphs/s | forward s | grad / forward |".format(
            b=tr["batch"]
        ),
        "|---|---|---|---|---|---|",
        f"| {result['meta']['recipe']} | {tr['grad_s']:.3f} | {tr['steps_per_s']:.2f} | "
        f"{tr['graphs_per_s']:.0f} | {tr['forward_s']:.4f} | {tr['grad_over_forward']:.1f} |",
        "",
        "| sampling (batch {b}) | s/batch | molecules/s | NFE | blocks (mean/max) | net call s | time / (NFE x call) |".format(
            b=sa["batch"]
        ),
        "|---|---|---|---|---|---|---|",
        f"| {result['meta']['recipe']} | {sa['sample_s']:.2f} | {sa['molecules_per_s']:.1f} | "
        f"{sa['nfe']} | {sa['blocks_mean']:.2f} / {sa['blocks_max']} | {sa['net_call_s']:.4f} | "
        f"{sa['sample_over_nfe_calls']:.2f} |",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--recipe", default="pard_qm9")
    p.add_argument("--checkpoint", default="pretrained", help="pretrained, a run folder, or init")
    p.add_argument("--batch", type=int, default=256, help="sampling batch")
    p.add_argument("--train-batch", type=int, default=128, help="training batch")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after the compiling one")
    p.add_argument("--no-hydrogens", action="store_true", help="part 1 without the AddHs column")
    p.add_argument("--quick", action="store_true", help="tiny net, small batches, one repeat")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON path")
    args = p.parse_args(list(argv))
    if args.batch < 1 or args.train_batch < 1 or args.repeats < 1:
        p.error("--batch, --train-batch and --repeats must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cfg, info = load_recipe(args.recipe)
    if args.quick:
        cfg = dataclasses.replace(
            cfg, net=PPGNTransformerConfig(hidden=16, edge_hidden=8, layers=1, heads=2), steps=4
        )
        args.batch, args.train_batch, args.repeats = 8, 8, 1
    if args.checkpoint == "init" or args.quick:
        method = cfg.build()
        model = method.init_model(jax.random.PRNGKey(0))
    else:
        if args.checkpoint == "pretrained" and not info.has_pretrained:
            raise SystemExit(f"{args.recipe} ships no pretrained model; pass --checkpoint")
        path = info.pretrained_dir if args.checkpoint == "pretrained" else Path(args.checkpoint)
        method, model, _ = load_recipe_model(cfg, path)
    result = {
        "meta": {
            "recipe": args.recipe,
            "checkpoint": args.checkpoint,
            "quick": args.quick,
            "device": str(jax.devices()[0]),
            "jax": jax.__version__,
            "cpus": os.cpu_count(),
            "argv": list(sys.argv[1:] if argv is None else argv),
        },
        "blocks": blocks_table(method, hydrogens=not (args.no_hydrogens or args.quick)),
        "train": train_speed(cfg, method, model, args.train_batch, args.repeats),
        "sample": sample_speed(cfg, method, model, args.batch, args.repeats),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
