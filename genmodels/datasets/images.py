"""Image datasets: MNIST (IDX files), CIFAR-10 (python pickle batches), a user's
PNG / JPEG folder or ``.npz``, and pixel quantization for discrete models.

Every loader returns uint8 pixels (0..255); :func:`load_images` gives any of them as
``[N, H, W, C]``, the layout of :mod:`genmodels.domains.images`, and
:func:`load_image_set` adds the class labels (:class:`ImageSet`).

A user's data (``--dataset PATH``): a folder of ``.png`` / ``.jpg`` files, flat or one
subfolder per class (``DIR/<class>/*.png``: labels ``0 .. C-1`` by sorted folder name),
or an ``.npz`` with ``images`` uint8 [N, H, W, C] or [N, H, W] and optional ``labels``.
Files whose size or channel count differs from the majority, and unreadable files, are
skipped and counted in one warning; nothing readable is a one-line ``DataError``. The
train / test split is :func:`genmodels.datasets.user.split_indices` of the good images
(see :func:`load_image_set`).

IDX (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` uint32
sizes, then the values in C order. MNIST stores uint8 images ``[N, 28, 28]`` and uint8
labels ``[N]``; the files are gzipped (``*-ubyte.gz``, see the ``mnist`` card in
:mod:`genmodels.datasets.registry`, which pins their sha256).

CIFAR-10 "python version" (Krizhevsky 2009): each batch file is a pickled dict with
``b"data"`` uint8 [10000, 3072] and ``b"labels"`` (list of 0..9). A row holds the red,
then green, then blue 32 x 32 plane, each in row-major order, i.e. ``[3, 32, 32]``
channel-major; :func:`read_cifar_batch` transposes it to ``[32, 32, 3]``. The extracted
batches lie in a folder the user controls, so they are read with
:func:`genmodels.datasets.safe_pickle.safe_load`, which builds arrays, lists and strings
only and refuses a file that asks for anything else (a crafted pickle runs no code).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genmodels.datasets.registry import (
    REGISTRY,
    DatasetError,
    cache_dir,
    data_dir,
    fetch,
    sha256sum,
)
from genmodels.datasets.safe_pickle import safe_load
from genmodels.datasets.user import UserData, is_user_path, split_indices
from genmodels.errors import DataError, MissingFileError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_FOLDER",
    "CIFAR10_SPLITS",
    "IMAGE_DATASETS",
    "IMAGE_SUFFIXES",
    "MNIST_SPLITS",
    "ImageSet",
    "dequantize",
    "image_source_stamp",
    "load_cifar10",
    "load_image_folder",
    "load_image_set",
    "load_images",
    "load_labels",
    "load_mnist",
    "quantize",
    "read_cifar_batch",
    "read_idx",
    "read_image_folder",
    "read_image_npz",
    "read_user_images",
]

#: named image data sets of :func:`load_images` (anything else is a user folder or .npz)
IMAGE_DATASETS = ("mnist", "cifar10")
#: image files a user folder may hold
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA")
#: version of the cached decoded folders: bump when the conversion changes
_FOLDER_VERSION = 1
#: CIFAR-10 class names (``batches.meta``), by label
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
#: CIFAR-10 split -> batch files
CIFAR10_SPLITS = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
#: the extracted archive, relative to the data (or cache) directory
CIFAR10_FOLDER = "cifar10/cifar-10-batches-py"

#: split -> IDX file prefix
MNIST_SPLITS = {"train": "train", "test": "t10k"}

# IDX type byte -> numpy big-endian dtype
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped when its name ends in ``.gz``).

    Args:
      path: the file.

    Returns:
      The array in native byte order with the header's shape.

    Raises:
      DatasetError: bad magic, unknown type, or a size that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (bad magic {raw[:4]!r})")
    dtype = _IDX_TYPES.get(raw[2])
    if dtype is None:
        raise DatasetError(f"{path}: unknown IDX type byte 0x{raw[2]:02x}")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:head], ">u4"))
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - head != want:
        raise DatasetError(
            f"{path}: header says shape {shape} ({want} bytes) but {len(raw) - head} bytes follow"
        )
    return np.frombuffer(raw, dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels of one split (60,000 train, 10,000 test).

    Args:
      split: ``train`` or ``test``.

    Returns:
      ``(images, labels)``: uint8 [N, 28, 28] (0 background, 255 ink) and uint8 [N].

    Raises:
      DatasetError: unknown split, missing or corrupt file, or images and labels of
        different lengths.
    """
    if split not in MNIST_SPLITS:
        raise DatasetError(f"unknown MNIST split {split!r}; choose one of {list(MNIST_SPLITS)}")
    prefix = MNIST_SPLITS[split]
    images = read_idx(fetch("mnist", f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(fetch("mnist", f"{prefix}-labels-idx1-ubyte.gz"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(
            f"MNIST {split}: images {images.shape} and labels {labels.shape} do not match"
        )
    return images.astype(np.uint8), labels.astype(np.uint8)


def quantize(images: np.ndarray, levels: int) -> np.ndarray:
    """uint8 intensities to ``levels`` equal-width bins: ``floor(x * levels / 256)``.

    Args:
      images: uint8 array.
      levels: number of bins (2 = binarized at 128).

    Returns:
      int8 array of the same shape in ``[0, levels)``.
    """
    if not 2 <= levels <= 127:
        raise ValueError(f"levels must be in 2..127, got {levels}")
    x = np.asarray(images, np.int32)
    return (x * levels // 256).astype(np.int8)


def dequantize(tokens: np.ndarray, levels: int) -> np.ndarray:
    """Bin indices back to uint8 with the end bins at 0 and 255: ``round(q 255 / (L - 1))``."""
    q = np.clip(np.asarray(tokens, np.int64), 0, levels - 1)
    return np.round(q * 255.0 / (levels - 1)).astype(np.uint8)


# ---------------------------------------------------------------------- CIFAR-10


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch file.

    Args:
      path: a pickled batch (``data_batch_1`` ... ``test_batch``).

    Returns:
      ``(images, labels)``: uint8 [N, 32, 32, 3] (HWC, RGB) and uint8 [N].

    Raises:
      DataError: not a pickle, truncated, or a pickle that asks for code (only arrays,
        lists and strings are unpickled).
      DatasetError: unopenable file, missing keys or a wrong shape (named in the message).
    """
    path = Path(path)
    try:
        # pickled by Python 2: bytes keys and byte strings; nothing but arrays, lists, strings
        d = safe_load(
            path,
            encoding="bytes",
            what="CIFAR-10 batch",
            fix=f"Delete {path.parent} to extract the checksum-pinned archive again.",
        )
    except OSError as e:
        raise DatasetError(f"{path}: not a readable CIFAR-10 batch ({e})") from e
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: a CIFAR-10 batch is a dict, got {type(d).__name__}")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise DatasetError(f"{path}: no b'data' / b'labels' entries (keys: {list(d)})")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]"
        )
    if labels.shape != (len(data),):
        raise DatasetError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # [N, 32, 32, 3]
    return np.ascontiguousarray(images), labels.astype(np.uint8)


def _cifar10_folder() -> Path:
    """The extracted ``cifar-10-batches-py`` folder, extracting the archive if needed."""
    for base in (data_dir(), cache_dir()):
        if (base / CIFAR10_FOLDER).is_dir():
            return base / CIFAR10_FOLDER
    archive = fetch("cifar10", "cifar-10-python.tar.gz")  # verified, or a clear error
    for dest in (archive.parent, cache_dir() / "cifar10"):
        try:
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(dest, filter="data")  # no absolute paths or links out
            return dest / "cifar-10-batches-py"
        except OSError:
            continue  # a read-only data folder: extract into the cache instead
    raise DatasetError(f"cifar10: could not extract {archive} next to it or into {cache_dir()}")


def load_cifar10(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images and labels of one split (50,000 train, 10,000 test).

    Reads ``$GENMODELS_DATA_DIR/cifar10/cifar-10-batches-py`` (or the same folder under
    the cache directory); when it is absent, the archive of the ``cifar10`` registry card
    is fetched (sha256 checked) and extracted.

    Args:
      split: ``train`` (``data_batch_1`` ... ``data_batch_5``, in order) or ``test``.

    Returns:
      ``(images, labels)``: uint8 [N, 32, 32, 3] and uint8 [N].

    Raises:
      DatasetError: unknown split, or a missing / malformed batch file.
    """
    if split not in CIFAR10_SPLITS:
        raise DatasetError(
            f"unknown CIFAR-10 split {split!r}; choose one of {list(CIFAR10_SPLITS)}"
        )
    folder = _cifar10_folder()
    images, labels = [], []
    for name in CIFAR10_SPLITS[split]:
        path = folder / name
        if not path.exists():
            raise DatasetError(
                f"cifar10: {path} is missing; extract {REGISTRY['cifar10'].files[0].url} "
                f"into {folder.parent} (it creates {folder.name}/)"
            )
        x, y = read_cifar_batch(path)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


# ---------------------------------------------------------------------- user data


@dataclass(frozen=True)
class ImageSet:
    """Images with their class labels, as :func:`load_image_set` gives them.

    Attributes:
      images: uint8 [N, H, W, C].
      labels: int64 [N] class indices, or ``None`` (a flat folder, an ``.npz`` without
        ``labels``); kept for class-conditional models.
      class_names: the name of each class index (sorted class subfolder names, an
        ``.npz``'s ``class_names``, or the indices as text); ``()`` without labels.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()

    def subset(self, idx: np.ndarray) -> ImageSet:
        """The images (and labels) at ``idx``."""
        labels = None if self.labels is None else self.labels[idx]
        return ImageSet(self.images[idx], labels, self.class_names)


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden ones left out), sorted by path."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(s.startswith(".") for s in p.relative_to(folder).parts)
    )


def image_source_stamp(path: str | Path) -> str:
    """A digest of a user image source for cache keys: an ``.npz`` file's sha256, or a
    folder's image files' relative names, sizes and modification times (cheap to take
    for thousands of PNGs; any edit, addition or removal changes it).

    Args:
      path: an ``.npz`` file or a folder of images.

    Returns:
      A hex digest.
    """
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return sha256sum(path)
    h = hashlib.sha256()
    for p in _image_files(path):
        st = p.stat()
        h.update(f"{p.relative_to(path).as_posix()}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def _decode(path: Path) -> np.ndarray:
    """uint8 [H, W] (gray-scale modes) or [H, W, 3] (anything else, converted to RGB)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode.startswith(("I", "F")):  # 16-bit / float pixels: no lossless uint8
            raise ValueError(f"{im.mode} pixels; save it with 8-bit channels")
        return np.asarray(im.convert("L" if im.mode in _GRAY_MODES else "RGB"), np.uint8)


def _convert_folder(folder: Path, files: list[Path]) -> dict[str, np.ndarray]:
    """Decode ``files``; keep the majority size and channel count (module docstring)."""
    from PIL import UnidentifiedImageError

    decoded, skipped = {}, []
    for p in tqdm(files, desc=f"reading {folder.name}", unit="img", leave=False):
        try:
            decoded[p] = _decode(p)
        except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as e:
            skipped.append(f"{p.relative_to(folder)} (unreadable: {e})")
    sizes = Counter(a.shape[:2] for a in decoded.values())
    (h, w), _ = sizes.most_common(1)[0] if sizes else ((0, 0), 0)
    same = [a.ndim == 2 for a in decoded.values() if a.shape[:2] == (h, w)]
    gray = sum(same) > len(same) - sum(same)  # colour wins ties: gray -> RGB is lossless
    keep = []
    for p, a in decoded.items():
        if a.shape[:2] != (h, w):
            skipped.append(
                f"{p.relative_to(folder)} ({a.shape[0]} x {a.shape[1]}, not {h} x {w} H x W)"
            )
        elif gray and a.ndim == 3:
            skipped.append(f"{p.relative_to(folder)} (colour among gray-scale images)")
        else:
            keep.append((p, a if gray or a.ndim == 3 else np.repeat(a[..., None], 3, -1)))
    images = np.zeros((len(keep), h, w, 1 if gray else 3), np.uint8)
    for i, (_, a) in enumerate(keep):
        images[i] = a[..., None] if gray else a
    rel = [p.relative_to(folder).parts for p, _ in keep]
    classes = sorted({r[0] for r in rel}) if rel and all(len(r) > 1 for r in rel) else []
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[r[0]] for r in rel] if classes else [], np.int64)
    return {
        "images": images,
        "labels": labels,
        "class_names": np.array(classes, str),
        "skipped": np.array(skipped, str),
    }


def read_image_folder(path: str | Path) -> ImageSet:
    """The PNG / JPEG images under a folder (recursively, sorted by path).

    A folder whose images all lie in subfolders (``DIR/<class>/*.png``) is labelled by
    them: the sorted subfolder names are classes ``0 .. C-1``. Images are gray-scale
    (``C = 1``) when most files of the common size are (PIL modes ``1``, ``L``, ``LA``;
    colour files among them are skipped), otherwise RGB (``C = 3``; gray files repeated to
    three channels, alpha and palettes dropped by PIL's conversion). Files of another size
    than the most common one, and unreadable files, are skipped and counted in one
    warning naming the first few. The decoded arrays are cached under
    :func:`~genmodels.datasets.registry.cache_dir` (``images/``), keyed by
    :func:`image_source_stamp`; the warning repeats on every load.

    Args:
      path: a folder of ``.png`` / ``.jpg`` / ``.jpeg`` files.

    Returns:
      The :class:`ImageSet` (``labels`` ``None`` for a flat folder).

    Raises:
      MissingFileError: no such folder.
      DataError: no image files, or none readable.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise MissingFileError(f"{folder} is not a folder of PNG / JPEG images")
    files = _image_files(folder)
    if not files:
        raise DataError(f"{folder}: no {' / '.join(IMAGE_SUFFIXES)} files found")
    key = f"{_FOLDER_VERSION}:{folder.resolve()}:{image_source_stamp(folder)}"
    cpath = cache_dir() / "images" / f"folder-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
    arrays = None
    if cpath.is_file():
        try:
            with np.load(cpath, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files} if str(z["key"]) == key else None
        except Exception as e:  # noqa: BLE001 - a broken cache is rebuilt
            warnings.warn(f"ignoring unreadable image cache {cpath}: {e}", stacklevel=2)
    if arrays is None:
        arrays = _convert_folder(folder, files)
        try:
            cpath.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cpath.parent, suffix=".npz", delete=False) as f:
                np.savez(f, key=np.array(key), **arrays)
            os.replace(f.name, cpath)
        except OSError:
            pass  # a read-only cache: convert again next time
    skipped, n = [str(s) for s in arrays["skipped"]], len(arrays["images"])
    if n == 0:
        raise DataError(f"{folder}: no readable image among {len(files)} files: {skipped[0]}")
    if skipped:
        warnings.warn(
            f"{folder}: skipped {len(skipped)} of {len(files)} image files: "
            + "; ".join(skipped[:5])
            + (" ..." if len(skipped) > 5 else ""),
            stacklevel=2,
        )
    names = tuple(str(c) for c in arrays["class_names"])
    return ImageSet(arrays["images"], arrays["labels"] if names else None, names)


def load_image_folder(path: str | Path) -> np.ndarray:
    """The images of :func:`read_image_folder`, uint8 [N, H, W, C]."""
    return read_image_folder(path).images


def read_image_npz(path: str | Path) -> ImageSet:
    """A user's ``.npz`` of images: ``images`` uint8 [N, H, W, C] (C = 1 or 3) or
    [N, H, W] (gray-scale), optional ``labels`` (integers >= 0, [N]) and ``class_names``.

    Args:
      path: the file (read with ``allow_pickle=False``).

    Returns:
      The :class:`ImageSet` (class names ``"0" .. "K-1"`` for labels without names).

    Raises:
      MissingFileError: no such file.
      DataError: not an ``.npz``, no ``images``, a wrong dtype or shape, or labels that
        do not match (the message says what to change).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"{path}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k in ("images", "labels", "class_names")}
            keys = list(z.files)
    except Exception as e:  # noqa: BLE001 - numpy raises many kinds for a bad file
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    x = arrays.get("images")
    if x is None:
        raise DataError(f"{path}: no 'images' array (it holds {keys}); save uint8 [N, H, W, C]")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or not len(x):
        hint = " (channels first? use x.transpose(0, 2, 3, 1))" if x.ndim == 4 else ""
        raise DataError(f"{path}: 'images' is {x.shape}, expected [N, H, W, C] with C 1 or 3{hint}")
    if x.dtype != np.uint8:
        if x.dtype.kind not in "iu" or x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: 'images' is {x.dtype}; save uint8 pixels 0..255")
        x = x.astype(np.uint8)
    y, names = arrays.get("labels"), tuple(str(c) for c in arrays.get("class_names", ()))
    if y is not None:
        if y.shape != (len(x),) or y.dtype.kind not in "iu" or (len(y) and y.min() < 0):
            raise DataError(
                f"{path}: 'labels' is {y.dtype} {y.shape}; expected integers >= 0 of shape "
                f"[{len(x)}], one per image"
            )
        y = y.astype(np.int64)
        k = int(y.max()) + 1
        if names and len(names) < k:
            raise DataError(f"{path}: labels go up to {k - 1} but only {len(names)} class_names")
        names = names or tuple(str(i) for i in range(k))
    return ImageSet(x, y, names if y is not None else ())


def read_user_images(path: str | Path) -> ImageSet:
    """All images of a user's ``.npz`` file or image folder (:func:`read_image_npz`,
    :func:`read_image_folder`).

    Raises:
      MissingFileError: no such file or folder.
      DataError: a file that is no ``.npz``, or the readers' errors.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        return read_image_folder(p)
    if not p.exists():
        raise MissingFileError(f"{p}: no such image folder or .npz file")
    if p.suffix.lower() != ".npz":
        raise DataError(f"{p}: images are read from a folder of PNG / JPEG files or an .npz")
    return read_image_npz(p)


def load_image_set(
    name_or_path: str | Path, split: str = "train", data: UserData | None = None
) -> ImageSet:
    """Images and labels of a named data set or a user's folder / ``.npz``.

    A user path is split deterministically by
    :func:`~genmodels.datasets.user.split_indices` (``data.test_fraction``,
    ``data.split_seed``), unless a split is given as a file (``data.train_file`` /
    ``data.test_file``: read whole; the path then serves whole as the other split) or the
    folder has ``train/`` and ``test/`` subfolders (read as they are).

    Args:
      name_or_path: ``mnist`` (C = 1), ``cifar10`` (C = 3), a folder of images (flat or
        class subfolders) or an ``.npz`` (:func:`read_image_npz`).
      split: ``train`` or ``test``.
      data: options of a user path (default :class:`~genmodels.datasets.user.UserData`).

    Returns:
      The split's :class:`ImageSet`.

    Raises:
      DatasetError: an unknown name that is no path, or the named loaders' errors.
      MissingFileError, DataError: the user readers' errors, or an unknown split.
    """
    name = str(name_or_path)
    if name == "mnist":
        x, y = load_mnist(split)
        return ImageSet(x[..., None], y.astype(np.int64), tuple(str(i) for i in range(10)))
    if name == "cifar10":
        x, y = load_cifar10(split)
        return ImageSet(x, y.astype(np.int64), CIFAR10_CLASSES)
    path = Path(name).expanduser()
    if not path.exists() and not is_user_path(name):
        raise DatasetError(
            f"unknown image data set {name!r}: choose one of {list(IMAGE_DATASETS)} or give a "
            "folder of PNG / JPEG images or an .npz"
        )
    if split not in ("train", "test"):
        raise DataError(f"{path}: unknown split {split!r}; choose train or test")
    data = data or UserData()
    own, other = (data.train_file, data.test_file)[:: 1 if split == "train" else -1]
    if own or other:
        return read_user_images(own or path)
    if (path / "train").is_dir() and (path / "test").is_dir():
        return read_image_folder(path / split)
    whole = read_user_images(path)
    train, test = split_indices(len(whole.images), data.test_fraction, data.split_seed)
    return whole.subset(train if split == "train" else test)


def load_labels(
    name_or_path: str | Path, num_classes: int, num: int, data: UserData | None = None
) -> np.ndarray:
    """The class labels of the training split, checked for a class-conditional model.

    Args:
      name_or_path, data: as :func:`load_image_set`.
      num_classes: the model's classes; every label must be in ``[0, num_classes)``.
      num: the number of training images (one label each).

    Returns:
      int32 [num].

    Raises:
      DataError: missing or out-of-range labels (the message says how to give them).
    """
    y = load_image_set(name_or_path, "train", data).labels
    if y is None or len(y) != num or y.min() < 0 or y.max() >= num_classes:
        raise DataError(
            f"{name_or_path}: a class-conditional recipe needs a label in [0, {num_classes}) "
            "for every training image (class subfolders, or an .npz with labels)"
        )
    return y.astype(np.int32)


def load_images(
    name_or_path: str | Path, split: str = "train", data: UserData | None = None
) -> np.ndarray:
    """The images of :func:`load_image_set`, uint8 [N, H, W, C]."""
    return load_image_set(name_or_path, split, data).images
