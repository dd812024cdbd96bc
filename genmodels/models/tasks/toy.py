"""The toy data kind: points in the plane from a ring of Gaussians.

State ``{"x": [B, 2]}`` with no context; training draws a fixed set of
``train_size`` points; samples are ``.npz`` files (key ``samples`` [N, 2]) plus a PNG
scatter; ``evaluate`` gives the energy distance to a held-out draw (and its noise floor),
the per-mode total variation and the share of points far from every mode.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.types import Array, Context, State
from genmodels.datasets.toy import energy_distance, ring_mixture
from genmodels.domains.files import check_suffix, load_npz
from genmodels.errors import DataError
from genmodels.models.tasks.base import check_split
from genmodels.samplers.guidance import Conditioning


class ToyTask:
    """A ring of ``modes`` Gaussians of radius ``radius`` and std ``std`` (module docstring).

    Args:
      modes, radius, std: the data density.
      train_size: training points (one fixed draw, seed 12345).
      eval_size: held-out points drawn for ``evaluate``.
    """

    sample_suffix = ".npz"
    sample_suffixes, eval_splits = (".npz",), ("test",)
    condition = Conditioning()  # unconditional

    def __init__(self, modes: int, radius: float, std: float, train_size: int, eval_size: int):
        self.data = ring_mixture(modes, radius, std)
        self.std, self.train_size, self.eval_size = std, train_size, eval_size

    def reference(self, n: int, seed: int = 2024) -> np.ndarray:
        """A held-out draw of the data density (``seed`` differs from the training draw)."""
        return np.asarray(self.data.sample(jax.random.PRNGKey(seed), n))

    @cached_property
    def _train(self) -> np.ndarray:
        return self.reference(self.train_size, seed=12345)

    def train_arrays(self) -> dict[str, np.ndarray]:
        return {"x": self._train}

    @staticmethod
    def dense_batch(batch: dict, key: Array | None = None) -> tuple[State, Context]:
        del key
        return {"x": jnp.asarray(batch["x"], jnp.float32)}, {}

    @staticmethod
    def sample_context(key: Array, batch: int) -> tuple[Context, Array]:
        del batch
        return {}, key

    @staticmethod
    def shapes(batch: int) -> dict[str, tuple[int, ...]]:
        return {"x": (batch, 2)}

    @staticmethod
    def constrain(state: State, ctx: Context) -> State:
        return state

    @staticmethod
    def decode(state: State, ctx: Context) -> np.ndarray:
        return np.asarray(state["x"], np.float32)

    @staticmethod
    def collate(parts: list[np.ndarray], num: int) -> np.ndarray:
        return np.concatenate(parts)[:num] if parts else np.zeros((0, 2), np.float32)

    def write_samples(self, samples: np.ndarray, path: Path) -> None:
        from genmodels.plots import scatter_png

        path = Path(path)
        np.savez(path, samples=np.asarray(samples, np.float32))
        scatter_png(samples, path.with_suffix(".png"), f"{len(samples)} toy samples")

    def read_samples(self, path: Path) -> np.ndarray:
        """float [N, 2] under ``samples`` of an ``.npz`` file (:func:`load_npz`)."""
        path = check_suffix(path, self.sample_suffixes, "2-D points")
        x = load_npz(path, "samples", "float 'samples' [N, 2]")
        if x.ndim != 2 or x.shape[1] != 2 or x.dtype.kind not in "fiu":
            raise DataError(f"{path}: 'samples' is {x.dtype} {x.shape}, expected float [N, 2]")
        return x

    def default_num_samples(self) -> int:
        return self.eval_size

    def evaluate(
        self, samples: np.ndarray, split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """``energy_distance`` to a held-out draw and ``energy_distance_null`` (the same
        statistic between two independent data draws of the same sizes: the noise floor),
        ``mode_tv`` (total variation of the mode histogram to uniform weights) and
        ``far_fraction`` (points more than 4 std from every mode)."""
        check_split(split, self.eval_splits)
        del meta
        x = np.asarray(samples, np.float64)[: self.eval_size]
        ref = self.reference(self.eval_size)
        mu = np.asarray(self.data.means)
        d = np.sqrt(((x[:, None] - mu[None]) ** 2).sum(-1))
        hist = np.bincount(d.argmin(1), minlength=len(mu)) / len(x)
        return {
            "energy_distance": energy_distance(x, ref),
            "energy_distance_null": energy_distance(self.reference(len(x), seed=7), ref),
            "mode_tv": float(0.5 * np.abs(hist - 1.0 / len(mu)).sum()),
            "far_fraction": float(np.mean(d.min(1) > 4 * self.std)),
            "num_samples": len(x),
        }
