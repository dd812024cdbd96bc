"""Score SDEs: variance preserving (VP), sub-VP and variance exploding (VE).

Song et al. 2021, "Score-Based Generative Modeling through Stochastic Differential
Equations" (Sec. 3.4 and App. B), with the conventions of GDSS (Jo et al. 2022,
harryjo97/GDSS ``sde.py``): the same time scale ``T = 1``, the DDPM/SMLD discretizations
used by the reverse-diffusion predictor, the per-step transition kernel used by GDSS's S4
solver, and GDSS's unit-variance prior for the VE SDE (configurable, see ``VESDE``).

Every SDE here is affine, ``x_t = a(t) x_0 + s(t) z`` with ``z ~ N(0, I)``, so
``marginal_coefs`` is all that the closed-form tests need (see
``genmodels.core.mixture.GaussianMixture``). Times ``t`` are [B] and broadcast against a
leaf of any rank; diffusion coefficients and standard deviations are returned as [B].

The network of a score SDE predicts the score ``grad_x log p_t(x_t)``; ``loss`` is the
denoising score matching objective without likelihood weighting (Song et al. 2021, eq. 7
with ``lambda(t) = s(t)^2``), written as GDSS and score_sde do:
``|| score * s(t) + z ||^2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from genmodels.core.types import Array, Aux, Mask


def _bcast(v: Array, x: Array) -> Array:
    """Reshape a per-example [B] array so it broadcasts against ``x`` [B, ...]."""
    v = jnp.asarray(v, x.dtype)
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _masked_noise(key: Array, shape: tuple[int, ...], dtype, mask: Array | None) -> Array:
    z = jax.random.normal(key, shape, dtype)
    if mask is None:
        return z
    return jnp.where(jnp.broadcast_to(mask, shape) > 0, z, jnp.zeros_like(z))


def _apply_mask(x: Array, mask: Array | None) -> Array:
    if mask is None:
        return x
    return jnp.where(jnp.broadcast_to(mask, x.shape) > 0, x, jnp.zeros_like(x))


def _timestep(t: Array, n: int, big_t: float) -> Array:
    """Discrete index ``int(t (N - 1) / T)`` of the DDPM/SMLD tables (truncation, as GDSS)."""
    return jnp.clip((t * (n - 1) / big_t).astype(jnp.int32), 0, n - 1)


def dsm_loss(pred: Array, std: Array, noise: Array, mask: Array | None, reduce_mean: bool) -> Array:
    """Denoising score matching ``|| pred * std + z ||^2`` per example.

    Args:
      pred: [B, ...] predicted score.
      std: [B] (or broadcastable) marginal standard deviation at the sampled times.
      noise: [B, ...] the ``z`` used by ``corrupt``.
      mask: padding mask broadcastable to ``pred`` or ``None``.
      reduce_mean: mean over the unmasked entries if True, else ``0.5 * sum`` over them
        (the ``reduce_op`` of score_sde and GDSS ``losses.py``).

    Returns:
      [B] losses.
    """
    sq = jnp.square(pred * _bcast(std, pred) + noise)  # [B, ...]
    axes = tuple(range(1, sq.ndim))
    if mask is None:
        return jnp.mean(sq, axis=axes) if reduce_mean else 0.5 * jnp.sum(sq, axis=axes)
    m = (jnp.broadcast_to(mask, sq.shape) > 0).astype(sq.dtype)
    total = jnp.sum(sq * m, axis=axes)
    if reduce_mean:
        return total / jnp.maximum(jnp.sum(m, axis=axes), 1.0)
    return 0.5 * total


class _AffineSDE:
    """Methods shared by the three SDEs; subclasses define the coefficients."""

    #: end time of every SDE here (the beta/sigma schedules are written for T = 1)
    T: ClassVar[float] = 1.0
    #: process kind for the sampler registry
    kind: ClassVar[str] = "sde"
    N: int
    reduce_mean: bool

    # Subclass hooks -------------------------------------------------------------------
    def marginal_coefs(self, t: Array) -> tuple[Array, Array]:  # pragma: no cover
        raise NotImplementedError

    def prior_std(self) -> float:  # pragma: no cover
        raise NotImplementedError

    # Shared API -----------------------------------------------------------------------
    def marginal(self, x0: Array, t: Array) -> tuple[Array, Array]:
        """Mean and std of the perturbation kernel ``p_t(x_t | x_0)`` (score_sde
        ``marginal_prob``).

        Args:
          x0: [B, ...] clean data.
          t: [B] times.

        Returns:
          ``(mean [B, ...], std [B])``.
        """
        a, s = self.marginal_coefs(t)
        return _bcast(a, x0) * x0, s

    def prior(self, key: Array, shape: tuple[int, ...], mask: Array | None = None) -> Array:
        """A draw from the terminal distribution ``N(0, prior_std^2 I)``; padding is 0."""
        return self.prior_std() * _masked_noise(key, tuple(shape), jnp.float32, mask)

    def prior_logp(self, z: Array, mask: Array | None = None) -> Array:
        """log density of the prior at ``z`` [B, ...] over the unmasked entries. Returns [B]."""
        sd = self.prior_std()
        m = jnp.ones_like(z) if mask is None else jnp.broadcast_to(mask > 0, z.shape)
        m = m.astype(z.dtype)
        axes = tuple(range(1, z.ndim))
        n = jnp.sum(m, axis=axes)
        return -0.5 * n * jnp.log(2 * jnp.pi * sd**2) - jnp.sum(m * z**2, axis=axes) / (2 * sd**2)

    def corrupt(self, key: Array, x0: Array, t: Array, mask: Mask = None) -> tuple[Array, Aux]:
        """Draw ``x_t = a(t) x_0 + s(t) z`` with masked noise (padding stays 0).

        Args:
          key: PRNG key.
          x0: [B, ...] clean data.
          t: [B] times.
          mask: padding mask broadcastable to ``x0`` or ``None``.

        Returns:
          ``(x_t, {"noise": z [B, ...], "std": s(t) [B]})``.
        """
        z = _masked_noise(key, x0.shape, x0.dtype, mask)
        mean, std = self.marginal(x0, t)
        xt = _apply_mask(mean + _bcast(std, x0) * z, mask)
        return xt, {"noise": z, "std": std}

    def loss(
        self, pred: Array, x0: Array, xt: Array, t: Array, aux: Aux, mask: Mask = None
    ) -> Array:
        """Denoising score matching (Song et al. 2021, eq. 7, ``lambda = s(t)^2``).

        ``|| pred * s(t) + z ||^2`` over the unmasked entries: ``0.5 * sum`` by default
        (GDSS, score_sde with ``reduce_mean=False``), the mean when ``reduce_mean``.

        Args:
          pred: [B, ...] predicted score at ``(xt, t)``.
          x0, xt: [B, ...] clean and corrupted data (unused beyond shapes: the noise is
            in ``aux``).
          t: [B] times.
          aux: the dict returned by ``corrupt`` (``noise`` and ``std``).
          mask: padding mask or ``None``.

        Returns:
          [B] per-example losses.
        """
        del x0, xt, t
        return dsm_loss(pred, aux["std"], aux["noise"], mask, self.reduce_mean)

    def reverse_discretize(self, x: Array, t: Array, score: Array, probability_flow: bool):
        """GDSS/score_sde ``RSDE.discretize``: ``(f - G^2 score (x 1/2 for the ODE), G)``."""
        f, g = self.discretize(x, t)
        rev_f = f - _bcast(g, x) ** 2 * score * (0.5 if probability_flow else 1.0)
        rev_g = jnp.zeros_like(g) if probability_flow else g
        return rev_f, rev_g

    def reverse_sde(self, x: Array, t: Array, score: Array, probability_flow: bool):
        """Reverse-time SDE (Song et al. 2021, eq. 6) or probability-flow ODE (eq. 13).

        Returns:
          ``(drift [B, ...], diffusion [B])`` with ``drift = f - g^2 score`` (``g^2/2``
          and zero diffusion for the ODE).
        """
        drift, g = self.sde(x, t)
        drift = drift - _bcast(g, x) ** 2 * score * (0.5 if probability_flow else 1.0)
        return drift, (jnp.zeros_like(g) if probability_flow else g)

    def ode_drift(self, score: Array, x: Array, t: Array) -> Array:
        """Probability-flow ODE drift ``f(x, t) - g(t)^2 / 2 * score`` (Song et al. 2021,
        eq. 13). Args: score, x [B, ...]; t [B]. Returns [B, ...]."""
        return self.reverse_sde(x, t, score, probability_flow=True)[0]

    def ode_time(self, t: Array) -> Array:
        """The network's time at ODE time ``t`` (the same)."""
        return t

    def ode_span(self, eps: float) -> tuple[float, float]:
        """``(T, eps)``: the probability-flow ODE runs from the prior to ``eps``."""
        return (self.T, float(eps))

    def discretize(self, x: Array, t: Array) -> tuple[Array, Array]:
        """Euler-Maruyama discretization ``x_{i+1} = x_i + f_i + G_i z`` with ``dt = T/N``.

        (The default of score_sde/GDSS; VP and VE override it with DDPM and SMLD.)

        Returns:
          ``(f [B, ...], G [B])``.
        """
        dt = self.T / self.N
        drift, g = self.sde(x, t)
        return drift * dt, g * math.sqrt(dt)

    def corrector_alpha(self, t: Array) -> Array:
        """The ``alpha`` factor of the Langevin corrector's step size (GDSS, score_sde):
        ``1 - beta_i`` of the DDPM table for VP-type SDEs, 1 otherwise. Returns [B]."""
        return jnp.ones_like(jnp.asarray(t, jnp.float32))


class _LinearBeta:
    """``beta(t) = beta_min + t (beta_max - beta_min)`` of the VP and sub-VP SDEs."""

    beta_min: float
    beta_max: float

    def beta(self, t: Array) -> Array:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t: Array) -> Array:
        """``log a(t) = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min``."""
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min


@dataclass(frozen=True)
class VPSDE(_LinearBeta, _AffineSDE):
    """Variance preserving SDE ``dx = -beta(t)/2 x dt + sqrt(beta(t)) dw`` (Song et al.
    2021, Sec. 3.4), ``beta(t) = beta_min + t (beta_max - beta_min)``, ``T = 1``.

    Args:
      beta_min, beta_max: ``beta(0)`` and ``beta(1)`` (score_sde/GDSS defaults 0.1, 20).
      N: number of discretization steps (DDPM table of the reverse-diffusion predictor).
      reduce_mean: loss reduction over entries (mean, else ``0.5 * sum``; GDSS sums).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    N: int = 1000
    reduce_mean: bool = False

    def marginal_coefs(self, t: Array) -> tuple[Array, Array]:
        """``a(t) = exp(log_mean_coeff)``, ``s(t) = sqrt(1 - a^2)``. Returns [B], [B]."""
        t = jnp.asarray(t, jnp.float32)
        lmc = self.log_mean_coeff(t)
        return jnp.exp(lmc), jnp.sqrt(-jnp.expm1(2.0 * lmc))

    def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
        """Returns ``(drift [B, ...], diffusion [B])``."""
        b = self.beta(jnp.asarray(t, x.dtype))
        return -0.5 * _bcast(b, x) * x, jnp.sqrt(b)

    def discrete_betas(self, t: Array) -> Array:
        """``beta_i`` of ``linspace(beta_min/N, beta_max/N, N)`` at index ``int(t (N-1))``."""
        i = _timestep(jnp.asarray(t), self.N, self.T).astype(jnp.float32)
        lo, hi = self.beta_min / self.N, self.beta_max / self.N
        return lo + i * (hi - lo) / max(self.N - 1, 1)

    def discretize(self, x: Array, t: Array) -> tuple[Array, Array]:
        """DDPM discretization: ``f = (sqrt(1 - beta_i) - 1) x``, ``G = sqrt(beta_i)``."""
        beta = self.discrete_betas(t)
        # sqrt(1 - beta) - 1 written without the float32 cancellation for small beta
        shrink = -beta / (1.0 + jnp.sqrt(1.0 - beta))
        return _bcast(shrink, x) * x, jnp.sqrt(beta)

    def corrector_alpha(self, t: Array) -> Array:
        return 1.0 - self.discrete_betas(t)

    def transition(self, x: Array, t: Array, dt: Array) -> tuple[Array, Array]:
        """GDSS's S4 transition from ``t`` to ``t + dt`` (``dt < 0``) of the linear part.

        The mean undoes the forward kernel's contraction from ``t + dt`` to ``t`` and the
        std is that kernel's: ``mean = x / m``, ``std = sqrt(1 - m^2)`` with
        ``m = exp(-1/2 int_{t+dt}^{t} beta)`` (GDSS ``VPSDE.transition``).

        Returns:
          ``(mean [B, ...], std [B])``.
        """
        lmc = self.log_mean_coeff(t) - self.log_mean_coeff(t + dt)  # log m, <= 0
        return _bcast(jnp.exp(-lmc), x) * x, jnp.sqrt(-jnp.expm1(2.0 * lmc))

    def prior_std(self) -> float:
        return 1.0


@dataclass(frozen=True)
class subVPSDE(_LinearBeta, _AffineSDE):  # noqa: N801 - the paper's and score_sde's name
    """sub-VP SDE ``dx = -beta/2 x dt + sqrt(beta (1 - exp(-2 int_0^t beta))) dw``
    (Song et al. 2021, Sec. 3.4). Same mean as VP, ``s(t) = 1 - a(t)^2``.

    Args:
      beta_min, beta_max, N, reduce_mean: as ``VPSDE``. Reverse diffusion uses the default
        Euler-Maruyama discretization (as score_sde and GDSS).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    N: int = 1000
    reduce_mean: bool = False

    def marginal_coefs(self, t: Array) -> tuple[Array, Array]:
        """``a(t)`` as VP, ``s(t) = 1 - a(t)^2``. Returns [B], [B]."""
        lmc = self.log_mean_coeff(jnp.asarray(t, jnp.float32))
        return jnp.exp(lmc), -jnp.expm1(2.0 * lmc)

    def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
        t = jnp.asarray(t, x.dtype)
        b = self.beta(t)
        discount = -jnp.expm1(4.0 * self.log_mean_coeff(t))  # 1 - exp(-2 int_0^t beta)
        return -0.5 * _bcast(b, x) * x, jnp.sqrt(b * discount)

    def discrete_betas(self, t: Array) -> Array:
        i = _timestep(jnp.asarray(t), self.N, self.T).astype(jnp.float32)
        lo, hi = self.beta_min / self.N, self.beta_max / self.N
        return lo + i * (hi - lo) / max(self.N - 1, 1)

    def corrector_alpha(self, t: Array) -> Array:
        # GDSS's LangevinCorrector uses the DDPM alphas for sub-VP too.
        return 1.0 - self.discrete_betas(t)

    def transition(self, x: Array, t: Array, dt: Array) -> tuple[Array, Array]:
        """S4 transition (GDSS defines none for sub-VP; this is the same construction as
        ``VPSDE.transition``): ``mean = x / m`` and the forward kernel's std from
        ``t + dt`` to ``t``, ``sqrt(s(t)^2 - m^2 s(t + dt)^2)``."""
        lmc = self.log_mean_coeff(t) - self.log_mean_coeff(t + dt)
        _, s_hi = self.marginal_coefs(t)
        _, s_lo = self.marginal_coefs(t + dt)
        var = jnp.maximum(s_hi**2 - jnp.exp(2.0 * lmc) * s_lo**2, 0.0)
        return _bcast(jnp.exp(-lmc), x) * x, jnp.sqrt(var)

    def prior_std(self) -> float:
        return 1.0


@dataclass(frozen=True)
class VESDE(_AffineSDE):
    """Variance exploding SDE ``dx = sigma(t) sqrt(2 log(sigma_max/sigma_min)) dw`` with
    ``sigma(t) = sigma_min (sigma_max/sigma_min)^t`` (Song et al. 2021, Sec. 3.4).

    Args:
      sigma_min, sigma_max: noise scale range (score_sde/GDSS defaults 0.01, 50).
      N: number of discretization steps (SMLD table of the reverse-diffusion predictor).
      reduce_mean: loss reduction (as ``VPSDE``).
      prior_scale: std of the prior draw. GDSS's ``VESDE.prior_sampling`` draws
        ``N(0, I)`` (``1.0``, the default here; GDSS's VE configs use ``sigma_max = 1``,
        e.g. QM9: sigma_min 0.1, sigma_max 1); ``None`` gives score_sde's
        ``N(0, sigma_max^2 I)``. The reverse SDE forgets a mismatched prior (it contracts
        the error by about ``(s(t)/s(T))^2``) but the probability-flow ODE does not: with a
        large ``sigma_max`` use ``prior_scale=None`` for ODE sampling.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    N: int = 1000
    reduce_mean: bool = False
    prior_scale: float | None = 1.0

    def sigma(self, t: Array) -> Array:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def marginal_coefs(self, t: Array) -> tuple[Array, Array]:
        """``a(t) = 1``, ``s(t) = sigma(t)`` (the ``sigma_min`` offset is ignored,
        as in score_sde and GDSS). Returns [B], [B]."""
        t = jnp.asarray(t, jnp.float32)
        return jnp.ones_like(t), self.sigma(t)

    def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
        g = self.sigma(jnp.asarray(t, x.dtype)) * math.sqrt(
            2.0 * (math.log(self.sigma_max) - math.log(self.sigma_min))
        )
        return jnp.zeros_like(x), g

    def discrete_sigmas(self, i: Array) -> Array:
        """``exp(linspace(log sigma_min, log sigma_max, N))[i]``."""
        frac = i.astype(jnp.float32) / max(self.N - 1, 1)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** frac

    def discretize(self, x: Array, t: Array) -> tuple[Array, Array]:
        """SMLD discretization: ``f = 0``, ``G = sqrt(sigma_i^2 - sigma_{i-1}^2)`` with
        ``sigma_{-1} = 0``."""
        i = _timestep(jnp.asarray(t), self.N, self.T)
        sig = self.discrete_sigmas(i)
        adj = jnp.where(i == 0, 0.0, self.discrete_sigmas(jnp.maximum(i - 1, 0)))
        return jnp.zeros_like(x), jnp.sqrt(sig**2 - adj**2)

    def transition(self, x: Array, t: Array, dt: Array) -> tuple[Array, Array]:
        """GDSS's S4 transition: ``mean = x``, ``std = sqrt(sigma(t)^2 - sigma(t+dt)^2)``."""
        var = jnp.maximum(self.sigma(t) ** 2 - self.sigma(t + dt) ** 2, 0.0)
        return x, jnp.sqrt(var)

    def prior_std(self) -> float:
        return self.sigma_max if self.prior_scale is None else float(self.prior_scale)
