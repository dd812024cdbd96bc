"""Coordinate noise of periodic point sets: CDVAE's levels (Gaussian or PFGM++ kernel) and
flow matching on the flat torus.

:class:`KernelLevels` (kind ``"levels"``) is CDVAE's coordinate noise (Xie et al., ICLR
2022, Sec. 3.2): one level per example from ``L`` geometric levels, Cartesian noise
``sigma eps`` (NCSN, Song & Ermon 2019, eq. 5) or, for a finite ``D``, a draw of the
PFGM++ kernel (Xu et al., ICML 2023, eq. 4)

    p_r(x | y) ∝ (||x - y||^2 + r^2)^(-(N + D) / 2),   r = sigma sqrt(D),  N = 3 n,

in the coordinates of each example's ``n`` real points. The network's output ``d``
regresses ``(y - x) / sigma`` (CDVAE's target; the minimum-image displacement ``y - x``
is the caller's: it needs the cell).

:class:`TorusFlow` (kind ``"torus_flow"``) is flow matching (Lipman et al. 2023) on the
unit torus of fractional coordinates (FlowMM, Miller et al., ICML 2024): the geodesic
``f_t = wrap(f_0 + t delta)``, ``delta = wrap_centred(f_1 - f_0)``, ``f_1 ~ U[0, 1)^3``,
from data at ``t = 0`` to uniform coordinates at ``t = 1``.

Both act on ``[B, N, 3]`` arrays with a ``[B, N]`` mask of real points; they know no
lattice (the caller maps between fractional and Cartesian coordinates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.masks import masked_mean
from genmodels.core.types import Array
from genmodels.processes.pfgmpp import perturb

__all__ = [
    "KernelLevels",
    "TorusFlow",
    "atom_mean",
    "coordinate_noise",
    "flow_displacement",
    "geometric_sigmas",
    "kernel_score",
]


def geometric_sigmas(begin: float, end: float, num: int) -> np.ndarray:
    """``exp(linspace(log begin, log end, num))`` in float64, cast to float32 (CDVAE's
    ``sigmas``; :func:`genmodels.core.grids.geometric_levels` computes it in float32,
    which differs in the last bits, so trained checkpoints keep these).

    Returns:
      [num] decreasing levels (numpy: concrete under ``jit``).
    """
    return np.exp(np.linspace(np.log(begin), np.log(end), num)).astype(np.float32)


def atom_mean(values: Array, mask: Array) -> Array:
    """Mean over each example's real points, then over examples (CDVAE's
    ``scatter(..., reduce='mean').mean()``).

    Args:
      values: [B, N]; mask: [B, N].

    Returns:
      Scalar.
    """
    return jnp.mean(masked_mean(values, mask))


def coordinate_noise(
    key: Array, shape: tuple[int, ...], sigma: Array, D: float, mask: Array
) -> Array:
    """Cartesian noise at one level per example: ``sigma eps`` (``D = inf``, drawn as CDVAE
    does: same values for a key, padding included) or the PFGM++ kernel (finite ``D``;
    :func:`genmodels.processes.pfgmpp.perturb`, one ``Gamma(D/2)`` radius per example
    over its ``3 n`` real coordinates, padding zero).

    Args:
      key: PRNG key.
      shape: ``(B, N, 3)``.
      sigma: [B] levels.
      D: augmented dimensions (python float; ``inf``: Gaussian).
      mask: [B, N] real points (used for finite ``D``).

    Returns:
      [B, N, 3] noise.
    """
    sigma = jnp.asarray(sigma, jnp.float32)
    if math.isinf(D):
        return jax.random.normal(key, shape) * sigma[:, None, None]
    _, noise = perturb(key, jnp.zeros(shape, jnp.float32), sigma, float(D), mask[..., None])
    return noise


def kernel_score(d: Array, sigma: Array, D: float, mask: Array) -> Array:
    """The kernel's score at the denoising estimate ``y - x ~ sigma d``.

    ``grad_x log p_r(x | y) = (N + D) (y - x) / (||x - y||^2 + sigma^2 D)`` gives
    ``s = (N + D) d / (sigma (||d||^2 + D))``, ``N = 3 n`` per example: exact for a
    point posterior; ``d / sigma`` exactly for ``D = inf`` (CDVAE's Langevin score).

    Args:
      d: [B, N, 3] network output; sigma: [B]; D: python float or ``inf``;
      mask: [B, N].

    Returns:
      [B, N, 3] score.
    """
    s = sigma[:, None, None]
    if math.isinf(D):
        return d / s
    n_dim = 3.0 * jnp.sum(mask, -1)  # [B]
    sq = jnp.sum(jnp.square(d) * mask[..., None], axis=(1, 2))  # [B]
    factor = (n_dim + D) / (sq + D)  # [B]
    return factor[:, None, None] * d / s


def _wrap(x: Array) -> Array:
    # into [0, 1) on the torus; ``x - floor(x)`` can round to 1.0 for a tiny negative x
    w = x - jnp.floor(x)
    return jnp.where(w >= 1.0, jnp.zeros_like(w), w)


def flow_displacement(frac0: Array, frac1: Array) -> Array:
    """Shortest displacement on the unit torus from ``frac0`` to ``frac1``: ``frac1 -
    frac0`` wrapped into ``[-1/2, 1/2)`` per component.

    Args:
      frac0, frac1: [..., 3].

    Returns:
      [..., 3].
    """
    return _wrap(frac1 - frac0 + 0.5) - 0.5


@dataclass(frozen=True)
class KernelLevels:
    """Geometric levels ``sigma_begin -> sigma_end`` with a Gaussian (``D = inf``) or
    PFGM++ kernel (module docstring).

    Args:
      sigma_begin, sigma_end, num_levels: the levels (CDVAE coordinates 10 -> 0.01, types
        5 -> 0.01; 50 each).
      D: augmented dimensions of the kernel (``inf``: Gaussian, CDVAE exactly).
    """

    sigma_begin: float = 10.0
    sigma_end: float = 0.01
    num_levels: int = 50
    D: float = math.inf
    #: process kind for the sampler registry
    kind: ClassVar[str] = "levels"

    @property
    def sigmas(self) -> np.ndarray:
        """[L] decreasing levels (:func:`geometric_sigmas`)."""
        return self.levels(self.num_levels)

    def levels(self, num: int) -> np.ndarray:
        """``num`` geometric levels over the same range (e.g. a sampler's grid)."""
        return geometric_sigmas(self.sigma_begin, self.sigma_end, num)

    def draw_sigma(self, key: Array, batch: int) -> Array:
        """[B] levels drawn uniformly (CDVAE training)."""
        level = jax.random.randint(key, (batch,), 0, self.num_levels)
        return jnp.asarray(self.sigmas)[level]

    def noise(self, key: Array, shape: tuple[int, ...], sigma: Array, mask: Array) -> Array:
        """:func:`coordinate_noise` with this ``D``."""
        return coordinate_noise(key, shape, sigma, self.D, mask)

    def score(self, d: Array, sigma: Array, mask: Array) -> Array:
        """:func:`kernel_score` with this ``D``."""
        return kernel_score(d, sigma, self.D, mask)

    @staticmethod
    def loss(d: Array, disp: Array, sigma: Array, mask: Array) -> Array:
        """CDVAE ``coord_loss``: ``1/2 sigma^2 ||disp / sigma^2 - d / sigma||^2`` per point,
        :func:`atom_mean`-reduced (a ``1/sigma^2``-weighted denoising loss whose minimizer
        is ``d = (E[y | x] - x) / sigma`` under either kernel).

        Args:
          d: [B, N, 3] output; disp: [B, N, 3] clean minus noisy position (minimum
            image); sigma: [B]; mask: [B, N].

        Returns:
          Scalar.
        """
        s = sigma[:, None, None]
        target = disp / s**2
        per_atom = 0.5 * jnp.sum(jnp.square(target - d / s), -1) * sigma[:, None] ** 2
        return atom_mean(per_atom, mask)


@dataclass(frozen=True)
class TorusFlow:
    """Flow matching on the unit torus of fractional coordinates (module docstring)."""

    #: process kind for the sampler registry
    kind: ClassVar[str] = "torus_flow"

    @staticmethod
    def corrupt(key_t: Array, key_1: Array, frac: Array, mask: Array):
        """A point of the geodesic from ``frac`` (``t = 0``) to ``U[0, 1)^3`` (``t = 1``).

        Args:
          key_t, key_1: PRNG keys of ``t`` and of the uniform end.
          frac: [B, N, 3] data; mask: [B, N].

        Returns:
          ``(t [B], f_t [B, N, 3] (padding 0), delta [B, N, 3])``; the velocity is ``delta``.
        """
        t = jax.random.uniform(key_t, (frac.shape[0],))  # [B]
        delta = flow_displacement(frac, jax.random.uniform(key_1, frac.shape))
        return t, _wrap(frac + t[:, None, None] * delta) * mask[..., None], delta

    @staticmethod
    def grid(steps: int) -> np.ndarray:
        """``steps + 1`` uniform times from 1 to 0."""
        return np.linspace(1.0, 0.0, int(steps) + 1, dtype=np.float32)

    @staticmethod
    def loss(d: Array, velocity: Array, mask: Array) -> Array:
        """``1/2 ||d - v||^2`` per point, :func:`atom_mean`-reduced."""
        return atom_mean(0.5 * jnp.sum(jnp.square(d - velocity), -1), mask)
