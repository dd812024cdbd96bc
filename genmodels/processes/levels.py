"""Discrete geometric noise levels (NCSN; the coordinate noise of CDVAE).

Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the Data Distribution"
(NCSN, eqs. 5-6): ``L`` levels ``sigma_1 > ... > sigma_L`` in geometric progression,
``x~ = x + sigma z`` and the denoising score matching loss weighted by
``lambda(sigma) = sigma^2``. CDVAE (Xie et al. 2022, txie-93/cdvae ``model.py``) uses the
same construction for atom coordinates (sigma_begin 10, sigma_end 0.01, 50 levels).

Loss convention (which one is implemented). With ``pred`` the score at level ``sigma``,
the per-position term is ``1/2 || sigma pred + z ||^2``. This equals CDVAE's
``coord_loss``: there the network outputs ``d = sigma * score``, the target is
``(x - x~) / sigma^2 = -z / sigma`` and the loss is
``1/2 sigma^2 || target - d / sigma ||^2 = 1/2 || sigma score + z ||^2``, summed over the
three Cartesian components and averaged over the atoms of a crystal. The default
``reduce_mean=True`` reproduces that: sum over the last (feature) axis, mean over the
other unmasked positions. ``reduce_mean=False`` sums over every unmasked entry (the sum
of NCSN's eq. 5 per example). A model whose network outputs CDVAE's ``d`` divides it by
``sigma`` (``aux["sigma"]``) before the loss, as CDVAE's sampler does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from genmodels.core.grids import geometric_levels
from genmodels.core.types import Array


def _bcast(v: Array, x: Array) -> Array:
    v = jnp.asarray(v, x.dtype)
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


@dataclass(frozen=True)
class NoiseLevels:
    """``num_levels`` geometric noise levels from ``sigma_begin`` down to ``sigma_end``.

    Args:
      sigma_begin: largest noise level ``sigma_1`` (CDVAE: 10).
      sigma_end: smallest noise level ``sigma_L`` (CDVAE: 0.01).
      num_levels: ``L`` (CDVAE: 50).
      reduce_mean: CDVAE's reduction (see the module docstring) if True, else the sum over
        all unmasked entries.
    """

    sigma_begin: float = 10.0
    sigma_end: float = 0.01
    num_levels: int = 50
    reduce_mean: bool = True
    #: process kind for the sampler registry
    kind: ClassVar[str] = "levels"

    @property
    def sigmas(self) -> Array:
        """[L] decreasing noise levels."""
        return geometric_levels(self.sigma_begin, self.sigma_end, self.num_levels)

    def marginal_coefs(self, sigma: Array) -> tuple[Array, Array]:
        """``x~ = 1 * x + sigma z``: returns ``(ones_like(sigma), sigma)``."""
        sigma = jnp.asarray(sigma, jnp.float32)
        return jnp.ones_like(sigma), sigma

    def prior(self, key: Array, shape: tuple[int, ...], mask: Array | None = None) -> Array:
        """``N(0, sigma_begin^2 I)``, the widest level's noise; padding is exactly 0."""
        z = self.sigma_begin * jax.random.normal(key, tuple(shape), jnp.float32)
        if mask is None:
            return z
        return jnp.where(jnp.broadcast_to(mask, z.shape) > 0, z, jnp.zeros_like(z))

    def corrupt(
        self, key: Array, x0: Array, t: Array | None = None, mask: Array | None = None
    ) -> tuple[Array, dict[str, Array]]:
        """Pick a level uniformly per example and add its noise (NCSN, CDVAE training).

        Args:
          key: PRNG key.
          x0: [B, ...] clean data.
          t: ignored (the level is drawn here, independently per leaf as CDVAE draws the
            coordinate and type levels); kept for the process contract.
          mask: padding mask broadcastable to ``x0`` or ``None``; noise is masked.

        Returns:
          ``(x~, {"noise": z, "sigma": [B], "std": [B] (= sigma), "level": [B] int})``.
        """
        del t
        kl, kz = jax.random.split(key)
        level = jax.random.randint(kl, (x0.shape[0],), 0, self.num_levels)  # [B]
        sigma = self.sigmas[level]  # [B]
        z = jax.random.normal(kz, x0.shape, x0.dtype)
        if mask is not None:
            z = jnp.where(jnp.broadcast_to(mask, z.shape) > 0, z, jnp.zeros_like(z))
        xt = x0 + _bcast(sigma, x0) * z
        if mask is not None:
            xt = jnp.where(jnp.broadcast_to(mask, xt.shape) > 0, xt, jnp.zeros_like(xt))
        return xt, {"noise": z, "sigma": sigma, "std": sigma, "level": level}

    def loss(
        self,
        pred: Array,
        x0: Array,
        xt: Array,
        t: Array | None,
        aux: dict[str, Array],
        mask: Array | None = None,
    ) -> Array:
        """NCSN denoising score matching with ``lambda(sigma) = sigma^2`` (eq. 6).

        ``1/2 || sigma pred + z ||^2`` reduced as described in the module docstring.

        Args:
          pred: [B, ...] predicted score.
          x0, xt, t: unused (the noise and level are in ``aux``).
          aux: from ``corrupt`` (``noise``, ``sigma``).
          mask: padding mask broadcastable to ``pred`` or ``None``; padding is excluded.

        Returns:
          [B] losses.
        """
        del x0, xt, t
        sq = 0.5 * jnp.square(_bcast(aux["sigma"], pred) * pred + aux["noise"])  # [B, ...]
        axes = tuple(range(1, sq.ndim))
        m = (
            jnp.ones_like(sq)
            if mask is None
            else (jnp.broadcast_to(mask, sq.shape) > 0).astype(sq.dtype)
        )
        total = jnp.sum(sq * m, axis=axes)
        if not self.reduce_mean or sq.ndim <= 2:
            # A [B, D] leaf is one position per example: the feature sum is the loss.
            return total
        positions = jnp.sum(m, axis=axes) / sq.shape[-1]
        return total / jnp.maximum(positions, 1.0)
