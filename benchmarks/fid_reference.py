"""Re-create the FID assets shipped in ``genmodels/metrics/assets/`` and measure the FIDs.

    python benchmarks/fid_reference.py --only classifier   # train + MNIST-test classifier stats
    python benchmarks/fid_reference.py --only inception    # MNIST-test Inception stats (slow)
    python benchmarks/fid_reference.py --only measure      # FID sanity values, no assets
    python benchmarks/fid_reference.py                     # all three

``classifier``: trains :class:`genmodels.nets.classifier.ImageClassifier` on the MNIST train
split (:func:`genmodels.metrics.images.train_classifier`), writes
``mnist_classifier.npz`` and ``mnist_test_classifier.npz`` (feature mean and upper
triangle of the covariance of the 10,000 test images) and records the command, the test
accuracy and the seconds in ``fid_reference.json`` next to them.

``inception``: Inception-v3 features of the 10,000 test images (about 1-2 images/s on two
CPU cores, so well over an hour), computed in chunks of ``--chunk`` images saved under
``--workdir`` so an interrupted run resumes; writes ``mnist_test_inception.npz`` and the
features' throughput to the JSON. The chunk files (80 MB of features) stay in the cache.

``measure``: classifier FIDs of test half vs half, train subset vs test, uniform noise vs
test; and, when the Inception chunks are complete, the Inception FID of test half vs half
(from the saved features) and of small sets (``--inception-small`` images each). Written
to ``benchmarks/results/fid_reference.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np

from genmodels.datasets.images import load_mnist
from genmodels.datasets.registry import cache_dir
from genmodels.metrics import images as M
from genmodels.nets.classifier import ClassifierConfig

META = M.ASSETS / "fid_reference.json"


def _update_meta(section: str, record: dict) -> None:
    meta = json.loads(META.read_text()) if META.exists() else {}
    meta[section] = record
    META.parent.mkdir(parents=True, exist_ok=True)
    META.write_text(json.dumps(meta, indent=2) + "\n")


def _command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def _size(path: Path) -> int:
    return path.stat().st_size


def make_classifier(a) -> dict:
    """Train the MNIST classifier, write its weights and the test-set statistics."""
    xtr, ytr = load_mnist("train")
    xte, yte = load_mnist("test")
    xtr, xte = xtr[..., None], xte[..., None]
    cfg = ClassifierConfig(channels=tuple(a.channels), features=a.features)
    t0 = time.perf_counter()
    params = M.train_classifier(xtr, ytr, steps=a.steps, batch=a.batch, seed=a.seed, config=cfg)
    train_s = time.perf_counter() - t0
    weights = M.save_classifier(M.ASSETS / "mnist_classifier.npz", params, cfg, (28, 28, 1))
    model = M.load_classifier(weights)
    acc = M.classifier_accuracy(xte, yte, model=model)
    train_acc = M.classifier_accuracy(xtr, ytr, model=model)
    mu, sigma = M.feature_stats(M.classifier_features(xte, model=model))
    stats = M.save_stats(M.ASSETS / "mnist_test_classifier.npz", mu, sigma, num=np.int64(len(xte)))
    record = {
        "command": _command(),
        "steps": a.steps,
        "batch": a.batch,
        "seed": a.seed,
        "channels": list(cfg.channels),
        "features": cfg.features,
        "train_seconds": round(train_s, 1),
        "test_accuracy": acc,
        "train_accuracy": train_acc,
        "weights_bytes": _size(weights),
        "stats_bytes": _size(stats),
        "device": str(jax.devices()[0]),
        "date": time.strftime("%Y-%m-%d"),
    }
    _update_meta("classifier", record)
    print(f"classifier: test accuracy {acc:.4f}, train accuracy {train_acc:.4f}, {train_s:.0f} s")
    return record


def _inception_chunks(images: np.ndarray, workdir: Path, chunk: int) -> tuple[np.ndarray, float]:
    """Features of ``images`` chunk by chunk, reusing chunk files already in ``workdir``.

    Returns the features and the images/s of the chunks computed in this call (NaN if none).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    feats, done, secs = [], 0, 0.0
    for i in range(0, len(images), chunk):
        part = workdir / f"{i:05d}_{min(i + chunk, len(images)):05d}.npy"
        if not part.exists():
            t0 = time.perf_counter()
            f = M.inception_features(images[i : i + chunk], progress=False)
            secs += time.perf_counter() - t0
            done += len(f)
            np.save(part.with_suffix(".tmp.npy"), f)
            part.with_suffix(".tmp.npy").replace(part)
            print(f"inception {i + len(f)}/{len(images)}: {done / secs:.2f} images/s", flush=True)
        feats.append(np.load(part))
    return np.concatenate(feats), (done / secs if done else float("nan"))


def _workdir(a) -> Path:
    return Path(a.workdir) if a.workdir else cache_dir() / "fid" / "mnist_test_inception_features"


def make_inception(a) -> dict:
    """Inception statistics of the MNIST test split (resumable)."""
    xte = load_mnist("test")[0][..., None]
    t0 = time.perf_counter()
    feats, rate = _inception_chunks(xte, _workdir(a), a.chunk)
    seconds = time.perf_counter() - t0
    mu, sigma = M.feature_stats(feats)
    path = M.save_stats(M.ASSETS / "mnist_test_inception.npz", mu, sigma, num=np.int64(len(xte)))
    mu2, sigma2 = M.load_stats(path)
    record = {
        "command": _command(),
        "num": len(xte),
        "seconds_this_run": round(seconds, 1),
        "images_per_s": rate,
        "stats_bytes": _size(path),
        "max_abs_error_of_float32_sigma": float(np.abs(sigma2 - sigma).max()),
        "device": "cpu (torch)",
        "date": time.strftime("%Y-%m-%d"),
    }
    _update_meta("inception", record)
    print(f"inception stats: {path} ({_size(path) / 1e6:.2f} MB)")
    return record


def measure(a) -> dict:
    """FID sanity values (no asset is written)."""
    rng = np.random.default_rng(a.seed)
    xtr = load_mnist("train")[0][..., None]
    xte = load_mnist("test")[0][..., None]
    noise = rng.integers(0, 256, size=(len(xte) // 2, 28, 28, 1), dtype=np.uint8)
    perm = rng.permutation(len(xte))
    half_a, half_b = xte[perm[: len(xte) // 2]], xte[perm[len(xte) // 2 :]]
    train_sub = xtr[rng.choice(len(xtr), len(xte), replace=False)]

    def cfid(x, y):
        return M.frechet_distance(
            *M.feature_stats(M.classifier_features(x)), *M.feature_stats(M.classifier_features(y))
        )

    out = {
        "classifier": {
            "test_half_vs_half_5k": cfid(half_a, half_b),
            "train_10k_vs_test": M.fid_classifier(train_sub),
            "train_2k_vs_test": M.fid_classifier(train_sub[:2000]),
            "test_2k_vs_test_2k_disjoint": cfid(xte[perm[:2000]], xte[perm[2000:4000]]),
            "noise_5k_vs_test": M.fid_classifier(noise),
        }
    }
    print(json.dumps(out, indent=2))
    parts = sorted(_workdir(a).glob("*_*.npy")) if _workdir(a).exists() else []
    n_parts = -(-len(xte) // a.chunk)
    if len([p for p in parts if ".tmp" not in p.name]) == n_parts:
        feats = np.concatenate([np.load(p) for p in parts if ".tmp" not in p.name])
        inc: dict = {}
        t0 = time.perf_counter()
        inc["test_half_vs_half_5k"] = M.frechet_distance(
            *M.feature_stats(feats[perm[: len(xte) // 2]]),
            *M.feature_stats(feats[perm[len(xte) // 2 :]]),
        )
        inc["sqrtm_seconds"] = time.perf_counter() - t0
        k = a.inception_small
        t0 = time.perf_counter()
        f_train = M.inception_features(train_sub[:k], progress=False)
        f_noise = M.inception_features(noise[:k], progress=False)
        inc["images_per_s"] = 2 * k / (time.perf_counter() - t0)
        ref = M.feature_stats(feats)
        inc[f"train_{k}_vs_test"] = M.frechet_distance(*M.feature_stats(f_train), *ref)
        inc[f"noise_{k}_vs_test"] = M.frechet_distance(*M.feature_stats(f_noise), *ref)
        inc[f"test_{k}_vs_test"] = M.frechet_distance(*M.feature_stats(feats[perm[:k]]), *ref)
        out["inception"] = inc
        print(json.dumps(inc, indent=2))
    out["meta"] = {"command": _command(), "date": time.strftime("%Y-%m-%d")}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", choices=["all", "classifier", "inception", "measure"], default="all")
    p.add_argument("--steps", type=int, default=3000, help="classifier training steps")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32])
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--chunk", type=int, default=500, help="Inception images per saved chunk")
    p.add_argument("--workdir", default=None, help="Inception chunk folder (default: cache)")
    p.add_argument("--inception-small", type=int, default=100)
    p.add_argument("--out", default="benchmarks/results/fid_reference.json")
    a = p.parse_args(argv)
    if a.only in ("all", "classifier"):
        make_classifier(a)
    if a.only in ("all", "inception"):
        make_inception(a)
    if a.only in ("all", "measure"):
        measure(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
