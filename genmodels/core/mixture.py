"""Isotropic Gaussian mixtures with closed-form noisy marginals.

Used by the toy recipe and by the sampler tests: when data follow
``p0 = sum_k w_k N(mu_k, s_k^2 I)`` and ``x_t = a(t) x_0 + s(t) z``, the noisy marginal is
again a mixture, ``p_t = sum_k w_k N(a mu_k, (a^2 s_k^2 + s^2) I)``, so its score and the
posterior mean E[x_0 | x_t] (the ideal denoiser) are exact. Every affine forward process
(VP/VE/sub-VP SDEs, the linear flow interpolant, EDM) is covered by choosing ``a`` and
``s``; standard deviations of 0 give a mixture of points.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.types import Array


@dataclass(frozen=True)
class GaussianMixture:
    """``sum_k weights[k] N(means[k], stds[k]^2 I)`` in ``dim = means.shape[1]`` dimensions.

    Args:
      weights: [K] mixture weights (normalized on use).
      means: [K, d] component means.
      stds: [K] isotropic component standard deviations (0 allowed: point masses).
    """

    weights: tuple[float, ...]
    means: tuple[tuple[float, ...], ...]
    stds: tuple[float, ...]

    @property
    def dim(self) -> int:
        return len(self.means[0])

    def arrays(self) -> tuple[Array, Array, Array]:
        w = jnp.asarray(self.weights, jnp.float32)
        return (
            w / w.sum(),
            jnp.asarray(self.means, jnp.float32),
            jnp.asarray(self.stds, jnp.float32),
        )

    def sample(self, key: Array, n: int) -> Array:
        """Draw ``n`` samples. Returns [n, d]."""
        w, mu, sd = self.arrays()
        kc, kz = jax.random.split(key)
        comp = jax.random.categorical(kc, jnp.log(w), shape=(n,))
        z = jax.random.normal(kz, (n, self.dim))
        return mu[comp] + sd[comp][:, None] * z

    def _responsibilities(self, x: Array, a: Array, s: Array) -> tuple[Array, Array, Array]:
        # x [B, d]; a, s broadcast to [B]
        w, mu, sd = self.arrays()
        a = jnp.broadcast_to(jnp.asarray(a, x.dtype), x.shape[:1])[:, None]  # [B, 1]
        s = jnp.broadcast_to(jnp.asarray(s, x.dtype), x.shape[:1])[:, None]
        var = a**2 * sd[None, :] ** 2 + s**2  # [B, K]
        diff = x[:, None, :] - a[:, :, None] * mu[None]  # [B, K, d]
        logp = (
            jnp.log(w)[None]
            - 0.5 * jnp.sum(diff**2, -1) / var
            - 0.5 * self.dim * jnp.log(2 * jnp.pi * var)
        )
        r = jax.nn.softmax(logp, axis=-1)  # [B, K]
        return r, diff, var

    def score(self, x: Array, a: Array, s: Array) -> Array:
        """grad_x log p_t(x) for ``x_t = a x_0 + s z``. Args: x [B, d]; a, s scalars or [B]."""
        r, diff, var = self._responsibilities(x, a, s)
        return jnp.sum(r[..., None] * (-diff / var[..., None]), axis=1)

    def denoise(self, x: Array, a: Array, s: Array) -> Array:
        """E[x_0 | x_t = x] for ``x_t = a x_0 + s z``. Returns [B, d]."""
        _, mu, sd = self.arrays()
        r, diff, var = self._responsibilities(x, a, s)
        a = jnp.broadcast_to(jnp.asarray(a, x.dtype), x.shape[:1])[:, None, None]
        post = mu[None] + a * (sd[None, :, None] ** 2 / var[..., None]) * diff
        return jnp.sum(r[..., None] * post, axis=1)

    def log_prob(self, x: Array) -> Array:
        """log p_0(x) for stds > 0. Returns [B]."""
        r_unused, diff, var = self._responsibilities(x, 1.0, 0.0)
        del r_unused
        w, _, _ = self.arrays()
        logp = (
            jnp.log(w)[None]
            - 0.5 * jnp.sum(diff**2, -1) / var
            - 0.5 * self.dim * jnp.log(2 * jnp.pi * var)
        )
        return jax.scipy.special.logsumexp(logp, axis=-1)

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest component mean for each sample (for moment checks)."""
        mu = np.asarray(self.means)
        return np.argmin(((np.asarray(x)[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)
