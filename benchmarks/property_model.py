"""Train the property model that scores a crystal benchmark's generated crystals.

    python benchmarks/property_model.py perov_5 --out recipes/pretrained/cdvae_perov5/property_model

Trains :class:`genmodels.nets.property.PropertyNet` (periodic encoder + ReLU head) on the
benchmark's property (perov_5: ``heat_ref``) with
:func:`genmodels.metrics.property_model.train_property_model` (the train split when
present, else ``val.csv``, as the CPU CDVAE recipes do), then writes the model to
``--out`` (``weights.npz`` + ``property_model.json``) with its test MAE next to the MAE of
predicting the training mean, its size, the wall time and this command.

It stands in for CDVAE's ``cdvae/prop_models/<dataset>`` (txie-93/cdvae): ``genmodels
evaluate`` uses it for ``prop_wdist`` and ``genmodels optimize`` for SR5/SR10/SR15.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import jax
from flax import nnx

from genmodels.metrics.property_model import (
    RECORD,
    WEIGHTS,
    load_property_model,
    property_mae,
    save_property_model,
    train_property_model,
)
from genmodels.nets.property import PropertyNetConfig
from genmodels.train import OptimConfig, TrainConfig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", help="perov_5, carbon_24 or mp_20")
    ap.add_argument("--out", required=True, help="the model folder to write")
    ap.add_argument("--split", default=None, help="split trained on (default train, else val)")
    ap.add_argument("--workdir", default=None, help="run folder (checkpoints; resumed)")
    ap.add_argument("--steps", type=int, default=3500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--neighbors", type=int, default=12)
    ap.add_argument("--head", type=int, default=128, help="head width")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    config = PropertyNetConfig(
        hidden=a.hidden, num_blocks=a.blocks, max_neighbors=a.neighbors, head_hidden=a.head
    )
    train_cfg = TrainConfig(
        steps=a.steps, batch_size=a.batch, seed=a.seed, ema_decay=0.0, log_every=100,
        ckpt_every=1000,
    )  # fmt: skip
    optim_cfg = OptimConfig(lr=a.lr, schedule="cosine", final_lr_frac=0.05)
    t0 = time.perf_counter()
    model = train_property_model(
        a.dataset, split=a.split, config=config, train_cfg=train_cfg, optim_cfg=optim_cfg,
        workdir=a.workdir,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    model.record["command"] = "python " + " ".join(shlex.quote(x) for x in sys.argv)
    model.record["train_wall_s"] = wall
    model.record["test"] = property_mae(model, a.dataset, "test")
    model.record["train_fit"] = property_mae(model, a.dataset, model.record["train_split"])
    out = save_property_model(model, a.out)
    model = load_property_model(out)  # what is shipped is what was measured
    model.record["num_params"] = int(sum(v.size for v in jax.tree.leaves(nnx.state(model.net))))
    model.record["weights_bytes"] = (out / WEIGHTS).stat().st_size
    save_property_model(model, out)
    print(json.dumps({k: model.record[k] for k in ("test", "train_fit", "train_wall_s")}))
    print(f"wrote {out / WEIGHTS} and {out / RECORD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
