"""Image datasets: MNIST (IDX files), CIFAR-10 (python pickle batches), PNG folders,
and pixel quantization for discrete models.

Every loader returns uint8 pixels (0..255); :func:`load_images` gives any of them as
``[N, H, W, C]``, the layout of :mod:`genmodels.domains.images`.

IDX (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` uint32
sizes, then the values in C order. MNIST stores uint8 images ``[N, 28, 28]`` and uint8
labels ``[N]``; the files are gzipped (``*-ubyte.gz``, see the ``mnist`` card in
:mod:`genmodels.datasets.registry`, which pins their sha256).

CIFAR-10 "python version" (Krizhevsky 2009): each batch file is a pickled dict with
``b"data"`` uint8 [10000, 3072] and ``b"labels"`` (list of 0..9). A row holds the red,
then green, then blue 32 x 32 plane, each in row-major order, i.e. ``[3, 32, 32]``
channel-major; :func:`read_cifar_batch` transposes it to ``[32, 32, 3]``.
"""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np

from genmodels.datasets.registry import REGISTRY, DatasetError, cache_dir, data_dir, fetch

__all__ = [
    "CIFAR10_FOLDER",
    "CIFAR10_SPLITS",
    "IMAGE_DATASETS",
    "MNIST_SPLITS",
    "dequantize",
    "load_cifar10",
    "load_image_folder",
    "load_images",
    "load_mnist",
    "quantize",
    "read_cifar_batch",
    "read_idx",
]

#: named image data sets of :func:`load_images` (anything else is a folder of PNGs)
IMAGE_DATASETS = ("mnist", "cifar10")
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
      DatasetError: unreadable file, missing keys or a wrong shape (named in the message).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # the batches were pickled by Python 2: bytes keys and byte strings
            d = pickle.load(f, encoding="bytes")
    except (OSError, EOFError, pickle.UnpicklingError) as e:
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


# ---------------------------------------------------------------------- folders


def load_image_folder(path: str | Path) -> np.ndarray:
    """All PNG images under a folder (recursively, sorted by path), as one array.

    Gray-scale files (PIL modes ``L`` and ``1``) give ``C = 1`` when every file is
    gray-scale; otherwise every image is converted to RGB (``C = 3``; alpha and palettes
    are dropped by PIL's conversion).

    Args:
      path: a folder of ``*.png`` files, all of the same height and width.

    Returns:
      uint8 [N, H, W, C].

    Raises:
      DatasetError: not a folder, no PNG files, an unreadable file, or a file whose size
        differs from the first one (the message names both).
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder of PNG images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise DatasetError(f"{folder}: no .png files found")
    modes, size = [], None
    for p in files:
        try:
            with Image.open(p) as im:
                modes.append(im.mode)
                if size is None:
                    size, first = im.size, p
                elif im.size != size:
                    raise DatasetError(
                        f"{p}: image is {im.size[0]} x {im.size[1]} (W x H) but {first} and the "
                        f"images before it are {size[0]} x {size[1]}; all images in {folder} "
                        "must have the same size"
                    )
        except (OSError, UnidentifiedImageError) as e:
            raise DatasetError(f"{p}: not a readable PNG image ({e})") from e
    gray = all(m in ("L", "1") for m in modes)
    out = np.empty((len(files), size[1], size[0], 1 if gray else 3), np.uint8)
    for i, p in enumerate(files):
        with Image.open(p) as im:
            a = np.asarray(im.convert("L" if gray else "RGB"), np.uint8)
        out[i] = a[..., None] if gray else a
    return out


def load_images(name_or_path: str | Path, split: str = "train") -> np.ndarray:
    """Images of a named data set or a PNG folder, uint8 [N, H, W, C].

    Args:
      name_or_path: ``mnist`` (C = 1), ``cifar10`` (C = 3) or a folder of PNG images; a
        folder with a subfolder named ``split`` reads that subfolder, otherwise the whole
        folder (every split is then the same images).
      split: ``train`` or ``test``.

    Returns:
      uint8 [N, H, W, C].

    Raises:
      DatasetError: unknown name that is not a folder, or the loader's errors.
    """
    name = str(name_or_path)
    if name == "mnist":
        return load_mnist(split)[0][..., None]
    if name == "cifar10":
        return load_cifar10(split)[0]
    folder = Path(name).expanduser()
    if folder.is_dir():
        sub = folder / split
        return load_image_folder(sub if sub.is_dir() else folder)
    raise DatasetError(
        f"unknown image data set {name!r}: choose one of {list(IMAGE_DATASETS)} or give a "
        "folder of PNG images"
    )
