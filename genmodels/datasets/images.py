"""Image datasets: MNIST from its IDX files, and pixel quantization for discrete models.

IDX (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` uint32
sizes, then the values in C order. MNIST stores uint8 images ``[N, 28, 28]`` and uint8
labels ``[N]``; the files are gzipped (``*-ubyte.gz``, see the ``mnist`` card in
:mod:`genmodels.datasets.registry`, which pins their sha256).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from genmodels.datasets.registry import DatasetError, fetch

__all__ = ["MNIST_SPLITS", "dequantize", "load_mnist", "quantize", "read_idx"]

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
