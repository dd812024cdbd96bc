"""Fingerprints of every shipped pretrained model's samples: a refactor keeps results.

    python benchmarks/pretrained_fingerprints.py --write   # record (before a refactor)
    python benchmarks/pretrained_fingerprints.py           # check against the record

For each recipe with a pretrained model, ``genmodels sample`` (the same
``sample_recipe`` call) draws a small batch with the recipe's default sampler and the
seeds of its ``metrics.json``, and the sha256 of the sample file written is compared
with ``benchmarks/results/pretrained_fingerprints.json``. Equal files mean the same
samples, hence the same metrics, for that seed and batch size. Generic-graph models are
cheap enough to check at their full metrics.json protocol with ``--full``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "pretrained_fingerprints.json"
#: samples per fingerprint (one jitted batch of this size)
NUM = 8


def fingerprint(recipe: str, num: int = NUM, seed: int = 0) -> dict:
    from genmodels.models.run import sample_recipe
    from genmodels.recipes import load_recipe

    cfg, info = load_recipe(recipe)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = sample_recipe(
            cfg, info.pretrained_dir, num=num, out=Path(tmp) / "s", seed=seed, batch_size=num
        )
        wall = time.perf_counter() - t0
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return {"sha256": digest, "num": num, "seed": seed, "suffix": out.suffix, "wall_s": wall}


def main(argv=None) -> int:
    from genmodels.recipes import list_recipes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="*")
    ap.add_argument("--write", action="store_true", help="record instead of check")
    args = ap.parse_args(argv)
    names = args.recipes or sorted(n for n, i in list_recipes().items() if i.has_pretrained)
    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    bad = 0
    for name in names:
        fp = fingerprint(name)
        if args.write:
            record[name] = fp
            status = "recorded"
        else:
            want = record.get(name, {}).get("sha256")
            status = (
                "same" if want == fp["sha256"] else ("NO RECORD" if want is None else "DIFFERENT")
            )
            bad += status != "same"
        print(f"{name:28s} {status:10s} {fp['sha256'][:16]}  {fp['wall_s']:.1f} s", flush=True)
        if args.write:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
