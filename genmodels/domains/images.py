"""Images as float states: the adapter between uint8 pixels and ``{"image": [B, H, W, C]}``.

Real objects are uint8 arrays ``[N, H, W, C]`` (0..255, NHWC; gray-scale images may come
as ``[N, H, W]`` and get ``C = 1``). The state is ``{"image": float32 [B, H, W, C]}``
with pixels mapped affinely to ``[-1, 1]``:

    x = u / 127.5 - 1,        u = round(127.5 (x + 1)) clipped to 0..255,

the data scaling of DDPM / score_sde (``data.centered``), EDM and PFGM++ (EDM's
``sigma_data = 0.5`` assumes it). There is no padding and no context: ``ctx`` is ``{}``.

``constrain`` is the identity on purpose. EDM (Karras et al. 2022, ``generate.py``) and
PFGM++ (Xu et al. 2023, same sampler) integrate the ODE unclipped and clip only when the
final state is turned into pixels; rectified flow (Liu et al. 2023) does the same. Clipping
after every step would move the state off the trajectory the network was trained on
(intermediate states at noise level sigma lie far outside ``[-1, 1]``, e.g. +-80 at
EDM's ``sigma_max``), so clipping lives in :func:`decode` only.

Sample files (DESIGN.md): ``.npz`` with uint8 ``images`` [N, H, W, C] and a PNG grid of
the first images next to it (:func:`write_images_npz`, :func:`read_images_npz`).
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.types import Array, Context, State
from genmodels.domains.files import load_npz
from genmodels.errors import DataError

__all__ = [
    "constrain",
    "decode",
    "encode",
    "image_grid",
    "check_shape",
    "read_images_npz",
    "to_nhwc",
    "write_images_npz",
]


def to_nhwc(images, *, what: str = "images") -> np.ndarray | Array:
    """Check a batch of uint8 images and give it a channel axis.

    Args:
      images: uint8 [N, H, W, C] or [N, H, W] (numpy or JAX).
      what: name used in error messages.

    Returns:
      [N, H, W, C] (same array type; ``C = 1`` added to 3-D input).

    Raises:
      ValueError: not uint8, or not 3-/4-D.
    """
    if images.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 [N, H, W, C], got {images.dtype} {images.shape}")
    if images.ndim == 3:
        return images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"{what} must be uint8 [N, H, W, C] or [N, H, W], got shape {images.shape}"
        )
    return images


def check_shape(images, shape: tuple[int, int, int], what: str, source: str, fix) -> np.ndarray:
    """uint8 images as [N, H, W, C] (:func:`to_nhwc`) whose ``(H, W, C)`` is ``shape``.

    Args:
      images: uint8 [N, H, W, C] or [N, H, W].
      shape: the ``(H, W, C)`` a network reads.
      what, source: what the images are and where from ("training images", a path).
      fix: ``(H, W, C) -> str``, the options that fit the network to such images.

    Returns:
      uint8 [N, H, W, C].

    Raises:
      DataError: another shape (one line naming both and the options to pass).
    """
    x = to_nhwc(np.asarray(images), what=what)
    if x.shape[1:] != tuple(shape):
        got, want = (" x ".join(map(str, s)) for s in (x.shape[1:], shape))
        raise DataError(
            f"{what} of {source} are {got} (H x W x C) but the network expects {want}; "
            f"pass {fix(*x.shape[1:])}"
        )
    return x


def encode(images) -> tuple[State, Context]:
    """uint8 images to the state ``{"image": x}`` with ``x = u / 127.5 - 1`` in [-1, 1].

    Works on numpy arrays (host) and JAX arrays (inside ``jit``, e.g. a training step).

    Args:
      images: uint8 [N, H, W, C] or [N, H, W].

    Returns:
      ``({"image": float32 [N, H, W, C]}, {})``.
    """
    x = to_nhwc(images)
    xp = jnp if isinstance(x, jax.Array) else np
    return {"image": x.astype(xp.float32) / 127.5 - 1.0}, {}


def decode(state: State, ctx: Context | None = None) -> np.ndarray:
    """The state back to uint8 pixels: ``round(127.5 (x + 1))`` clipped to 0..255.

    This is where sampled images are clipped (see the module docstring). Non-finite
    values (a diverged sample) become mid-gray (``x = 0``) rather than undefined bytes.

    Args:
      state: ``{"image": [B, H, W, C]}`` (any float array).
      ctx: unused (images have no context).

    Returns:
      uint8 numpy array [B, H, W, C]; exactly inverts :func:`encode`.
    """
    del ctx
    x = np.asarray(jax.device_get(state["image"]), np.float64)
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def constrain(state: State, ctx: Context) -> State:
    """The sampler hook: the identity (EDM / PFGM++ / rectified flow clip only at the end,
    in :func:`decode`; see the module docstring)."""
    del ctx
    return state


def image_grid(images: np.ndarray, nrow: int = 10, padding: int = 0) -> np.ndarray:
    """Tile images row by row into one picture (torchvision's ``make_grid`` layout).

    Args:
      images: uint8 [N, H, W, C] (or [N, H, W]), N >= 1.
      nrow: images per row.
      padding: pixels of black border between (and around) the tiles.

    Returns:
      uint8 [rows (H + p) + p, cols (W + p) + p, C] with ``cols = min(N, nrow)`` and
      ``rows = ceil(N / cols)``; unfilled cells are black.
    """
    x = to_nhwc(np.asarray(images))
    n, h, w, c = x.shape
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    if nrow < 1:
        raise ValueError(f"nrow must be positive, got {nrow}")
    cols = min(n, nrow)
    rows = math.ceil(n / cols)
    p = padding
    grid = np.zeros((rows * (h + p) + p, cols * (w + p) + p, c), np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = p + r * (h + p), p + q * (w + p)
        grid[top : top + h, left : left + w] = x[i]
    return grid


def _grid_png(grid: np.ndarray, path: Path) -> None:
    from PIL import Image

    img = grid[..., 0] if grid.shape[-1] == 1 else grid
    Image.fromarray(img).save(path)


def write_images_npz(path: str | Path, images, *, grid_max: int = 100, nrow: int = 10) -> Path:
    """Write images as ``.npz`` (uint8 under key ``images``) plus a PNG grid next to it.

    Args:
      path: the ``.npz`` file (the grid is the same path with suffix ``.png``).
      images: uint8 [N, H, W, C] or [N, H, W]; C must be 1, 3 or 4 for the PNG.
      grid_max: images shown in the grid (the first ones).
      nrow: grid columns.

    Returns:
      The PNG path (written only when there is at least one image).
    """
    x = to_nhwc(np.asarray(images), what="samples")
    path = Path(path)
    if x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images have {x.shape[-1]} channels; a PNG needs 1, 3 or 4")
    # a file object keeps numpy from appending ".npz" to another suffix
    with open(path, "wb") as f:
        np.savez_compressed(f, images=x)
    png = path.with_suffix(".png")
    if len(x):
        _grid_png(image_grid(x[:grid_max], nrow), png)
    return png


def read_images_npz(path: str | Path) -> np.ndarray:
    """Read images written by :func:`write_images_npz` (or any npz of that layout).

    Args:
      path: ``.npz`` file with uint8 ``images`` [N, H, W, C].

    Returns:
      uint8 [N, H, W, C], at least one image.

    Raises:
      MissingFileError: no such file (a ``FileNotFoundError``).
      DataError: an empty file, not an npz archive (a bare ``.npy``, a pickle), a truncated
        or corrupt archive, no ``images`` key (the keys found are named), an object array,
        zero images, or not uint8 [N, H, W, C]; a ``ValueError`` naming the file and the
        expected dtype and shape (:func:`genmodels.domains.files.load_npz`).
    """
    x = load_npz(path, "images", "uint8 'images' [N, H, W, C]")
    if x.dtype != np.uint8 or x.ndim != 4:
        raise DataError(
            f"{path}: 'images' is {x.dtype} with shape {x.shape}, expected uint8 [N, H, W, C]"
        )
    return x
