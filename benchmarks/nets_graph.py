"""GDSS score networks: forward and parameter-gradient time of ScoreNetworkX / ScoreNetworkA.

    python benchmarks/nets_graph.py                          # community_small + QM9, batch 128
    python benchmarks/nets_graph.py --configs QM9 --repeats 3
    python benchmarks/nets_graph.py --compare /tmp/graph_old.py   # old vs current, same run

Times the jitted forward ``net(x, adj, node_mask)`` and the jitted gradient of
``sum(net(...)**2)`` with respect to the parameters, at batch 128 (the GDSS training batch)
with each config's ``max_node_num`` nodes, symmetric zero-diagonal adjacency and random node
counts. Each entry is the median of ``--repeats`` timed calls after one warm-up call.
``--compare FILE`` loads another version of ``genmodels/nets/graph.py`` and times it
interleaved with the current one on the same inputs and parameters (the machine is noisy:
compare ratios within one run), and checks that both compute the same outputs.

Issue anchor (reference PyTorch GDSS, 2 cores): one joint forward of both community_small
networks at batch 128 takes about 64 ms (1000 Euler + Langevin steps = 2000 calls in 128 s).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.nets import graph as current

ANCHOR_JOINT_FWD_MS = {"community_small": 64.0}


def _load(path: str):
    spec = importlib.util.spec_from_file_location("graph_compare", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _params(make, seed: int):
    """Graph definition and host-drawn parameters (no XLA init kernels to compile)."""
    graphdef, state = nnx.split(nnx.eval_shape(make))
    rng = np.random.default_rng(seed)

    def draw(s):
        scale = 1.0 / np.sqrt(s.shape[-2]) if len(s.shape) >= 2 else 0.1
        return jnp.asarray(rng.uniform(-scale, scale, s.shape), s.dtype)

    return graphdef, jax.tree.map(draw, state)


def _inputs(batch: int, n: int, f: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(max(1, n // 2), n + 1, size=batch)
    mask = (np.arange(n)[None] < counts[:, None]).astype(np.float32)
    a = np.triu(rng.normal(size=(batch, n, n)), 1)
    a = (a + a.transpose(0, 2, 1)) * mask[:, :, None] * mask[:, None, :]
    x = rng.normal(size=(batch, n, f)) * mask[..., None]
    return jnp.asarray(x, jnp.float32), jnp.asarray(a, jnp.float32), jnp.asarray(mask)


def _fns(graphdef):
    def fwd(state, x, adj, mask):
        return nnx.merge(graphdef, state)(x, adj, mask)

    def loss(state, x, adj, mask):
        return jnp.sum(fwd(state, x, adj, mask) ** 2)

    return jax.jit(fwd), jax.jit(jax.grad(loss))


def _time(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def bench(name: str, batch: int, repeats: int, compare=None) -> dict:
    cfg = current.GDSS_NET_CONFIGS[name]
    args = _inputs(batch, cfg.max_node_num, cfg.max_feat_num)
    mods = {"current": current} if compare is None else {"compare": compare, "current": current}
    row: dict = {"config": name, "batch": batch, "nodes": cfg.max_node_num}
    for net in ("x", "adj"):
        fns, outs = {}, {}
        for tag, mod in mods.items():
            c = mod.GDSS_NET_CONFIGS[name]
            make = (
                (lambda c=c: c.make_x(nnx.Rngs(0)))
                if net == "x"
                else (lambda c=c: c.make_adj(nnx.Rngs(0)))
            )
            graphdef, state = _params(make, seed=1)
            fwd, grad = _fns(graphdef)
            fns[tag] = (fwd, grad, state)
            outs[tag] = np.asarray(fwd(state, *args))
        # interleave the versions so load changes hit both alike
        for kind in ("fwd", "grad"):
            ts = {tag: [] for tag in mods}
            for _ in range(max(1, repeats // 3)):
                for tag, (fwd, grad, state) in fns.items():
                    ts[tag].append(_time(fwd if kind == "fwd" else grad, (state, *args), 3))
            for tag in mods:
                row[f"{net}_{kind}_ms" if tag == "current" else f"{net}_{kind}_ms_compare"] = (
                    statistics.median(ts[tag])
                )
        if compare is not None:
            err = float(np.abs(outs["current"] - outs["compare"]).max())
            row[f"{net}_max_abs_diff_vs_compare"] = err
    if name in ANCHOR_JOINT_FWD_MS:
        row["anchor_joint_fwd_ms"] = ANCHOR_JOINT_FWD_MS[name]
        row["joint_fwd_speedup_vs_reference"] = ANCHOR_JOINT_FWD_MS[name] / (
            row["x_fwd_ms"] + row["adj_fwd_ms"]
        )
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--configs", nargs="+", default=["community_small", "QM9"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--compare", default=None, help="another graph.py to time alongside")
    p.add_argument("--out", default="benchmarks/results/nets_graph.json")
    a = p.parse_args(argv)
    compare = _load(a.compare) if a.compare else None
    rows = [bench(c, a.batch, a.repeats, compare) for c in a.configs]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": str(jax.devices()[0]), "jax": jax.__version__, "args": vars(a)}
    Path(a.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    cols = ["x_fwd_ms", "x_grad_ms", "adj_fwd_ms", "adj_grad_ms"]
    print("| config | version | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for r in rows:
        if compare is not None:
            vals = " | ".join(f"{r[c + '_compare']:.1f}" for c in cols)
            print(f"| {r['config']} | compare | {vals} |")
        print(f"| {r['config']} | current | " + " | ".join(f"{r[c]:.1f}" for c in cols) + " |")
        if compare is not None:
            print(
                f"| {r['config']} | max abs diff | x {r['x_max_abs_diff_vs_compare']:.2e}, "
                f"adj {r['adj_max_abs_diff_vs_compare']:.2e} |"
            )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
