"""Two-dimensional toy densities with known ground truth."""

from __future__ import annotations

import numpy as np

from genmodels.core.mixture import GaussianMixture


def ring_mixture(modes: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixture:
    """``modes`` equal-weight isotropic Gaussians evenly spaced on a circle."""
    ang = 2 * np.pi * np.arange(modes) / modes
    means = tuple((float(radius * np.cos(a)), float(radius * np.sin(a))) for a in ang)
    return GaussianMixture(weights=(1.0,) * modes, means=means, stds=(std,) * modes)


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Squared energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (Szekely & Rizzo), V-statistic.

    Args:
      x: [n, d] samples; y: [m, d] samples.

    Returns:
      A non-negative number that is 0 only when the two samples coincide in law.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)

    def mean_dist(a, b):
        return float(np.mean(np.sqrt(np.maximum(((a[:, None] - b[None]) ** 2).sum(-1), 0.0))))

    return 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)
