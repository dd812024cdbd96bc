"""PFGM++ (Xu et al., ICML 2023): Poisson flow with D extra dimensions; D -> inf is EDM.

Data ``y`` in ``N`` dimensions are perturbed by the kernel

    p_r(x | y) ∝ (||x - y||^2 + r^2)^(-(N + D)/2),    r = sigma sqrt(D)

(with the alignment r = sigma sqrt(D) under which PFGM++ matches EDM). A draw is ``x = y + R u`` with
``u`` uniform on the unit sphere of R^N and the radius ``R`` Beta-prime distributed:
``R = r sqrt(b / (1 - b))``, ``b ~ Beta(N/2, D/2)`` (the paper's sampling recipe; the same
construction as ``training/loss.py`` of Newbeeer/pfgmpp). As D -> inf the kernel tends to
N(y, sigma^2 I), i.e. EDM (Karras et al. 2022); ``D = float('inf')`` selects that limit
exactly. Training follows EDM: ``ln sigma ~ N(P_mean, P_std^2)``, the network is wrapped
in EDM's preconditioning (Karras et al. 2022, Table 1) and predicts the denoised value
``D(x; sigma)``, and the loss weight is ``lambda(sigma) = (sigma^2 + sigma_data^2) /
(sigma sigma_data)^2``. Sampling solves ``dx/dsigma = (x - D(x; sigma)) / sigma`` (the
PFGM++ ODE dx/dr = (x - E[y | x]) / r with r = sigma sqrt(D); EDM Alg. 1) from the prior at ``sigma_max``
(:func:`genmodels.samplers.ode.heun_sample`).

Here the process "time" ``t`` is the noise level ``sigma`` itself (EDM's choice
sigma(t) = t); draw training values with :meth:`PFGMPP.sample_time`.

``N`` is the number of real (unmasked) entries of one example, so padded examples of
different sizes each get the kernel of their own dimension.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from genmodels.core.masks import masked_mean
from genmodels.core.types import Array, Aux, Context, Mask, State
from genmodels.processes.sde import VESDE


def _bcast(v: Array, x: Array) -> Array:
    """[B] -> [B, 1, ..., 1] matching ``x``'s rank."""
    return jnp.reshape(v, (-1,) + (1,) * (x.ndim - 1))


def log_gamma_sample(key: Array, a: float, shape: tuple[int, ...]) -> Array:
    """``log G`` for ``G ~ Gamma(a, 1)`` by exact rejection sampling (Marsaglia & Tsang 2000).

    Written here rather than calling ``jax.random.gamma`` because that sampler is slow
    to compile on a CPU (about 3 s of CPU time, paid by every jitted function that contains
    it: each training step and sampler using this process); this loop takes about half. Candidates are drawn for the whole batch until every entry is accepted, so the
    result is exact; the expected number of rounds is below 1.1 for ``a >= 1``. The
    acceptance test is arranged to stay accurate in float32 for very large ``a`` (D up to
    1e6 and beyond); ``a < 1`` uses ``Gamma(a) = Gamma(a + 1) U^(1/a)``.

    Args:
      key: PRNG key.
      a: shape parameter (python float > 0).
      shape: output shape.

    Returns:
      float32 array of ``shape``.
    """
    if a <= 0:
        raise ValueError(f"gamma shape must be positive, got {a}")
    k_loop, k_boost = jax.random.split(key)
    a1 = a + 1.0 if a < 1.0 else a
    d = a1 - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)

    def cond(carry: tuple) -> Array:
        return ~jnp.all(carry[2])

    def body(carry: tuple) -> tuple:
        k, out, done = carry
        k, kz = jax.random.split(k)
        # One normal draw per round: the second half gives log U = log Phi(z') exactly in
        # law (and accurately in float32), which keeps the traced graph (and compile) small.
        z, z_u = jax.random.normal(kz, (2,) + tuple(shape), jnp.float32)
        log_u = jax.scipy.special.log_ndtr(z_u)
        w = c * z
        ok = w > -1.0
        w = jnp.where(ok, w, 0.0)
        l1p = jnp.log1p(w)
        # log u < z^2/2 + d - d v + d log v with v = (1 + w)^3, written without the
        # catastrophic cancellation of d - d v + d log v when d is huge.
        rhs = 0.5 * z**2 + d * (3.0 * (l1p - w) - 3.0 * w**2 - w**3)
        accept = ok & (log_u < rhs) & ~done
        out = jnp.where(accept, math.log(d) + 3.0 * l1p, out)  # log(d v)
        return k, out, done | accept

    init = (k_loop, jnp.zeros(shape, jnp.float32), jnp.zeros(shape, bool))
    _, log_g, _ = jax.lax.while_loop(cond, body, init)
    if a < 1.0:
        u = jax.random.uniform(k_boost, shape, jnp.float32, minval=1e-30)
        log_g = log_g + jnp.log(u) / a
    return log_g


def perturb(
    key: Array, y: Array, sigma: Array, D: float, mask: Array | None = None
) -> tuple[Array, Array]:
    """``x = y + R u`` with the PFGM++ radius ``R`` and a uniform direction ``u``.

    ``R = r sqrt(b / (1 - b))``, ``b ~ Beta(N/2, D/2)``, ``r = sigma sqrt(D)``. Since
    ``b / (1 - b) = G_N / G_D`` for independent ``G_N ~ Gamma(N/2)``, ``G_D ~ Gamma(D/2)``,
    and ``G_N = ||z||^2 / 2`` for ``z ~ N(0, I_N)`` independently of ``u = z / ||z||``,
    the draw is ``sigma sqrt(D / (2 G_D)) z``: the multivariate Student-t with D degrees
    of freedom that the PFGM++ kernel is. Only one gamma variate per example is needed,
    ``N`` automatically counts the real entries under a mask, and there is no ``1 - b``
    cancellation for large D.

    Args:
      key: PRNG key.
      y: [B, ...] data (zeros for a prior draw).
      sigma: [B] noise levels.
      D: augmented dimensions (python float; ``inf``: Gaussian ``y + sigma z``).
      mask: optional padding mask broadcastable to ``y``; direction and radius live in
        the N real entries of each example.

    Returns:
      ``(x, n)`` with ``x`` [B, ...] (padding zero) and the noise ``n = x - y``.
    """
    kr, kz = jax.random.split(key)
    z = jax.random.normal(kz, y.shape, jnp.float32)
    if mask is not None:
        z = jnp.where(mask > 0, z, 0.0)
        y = jnp.where(mask > 0, y, 0.0)
    sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), y.shape[:1])
    if math.isinf(D):
        scale = sigma
    else:
        log_gd = log_gamma_sample(kr, D / 2.0, y.shape[:1])  # [B]
        scale = sigma * jnp.sqrt(D / 2.0) * jnp.exp(-0.5 * log_gd)  # [B]
    noise = (_bcast(scale, y) * z).astype(y.dtype)
    return y + noise, noise


def radius_log_density(R: Array, r: Array, N: float, D: float) -> Array:
    """log of :func:`radius_density` (finite ``D``; ``N`` and ``D`` python numbers)."""
    if math.isinf(D):
        raise ValueError("radius_density needs a finite D (D = inf is sigma * chi_N)")
    R, r = jnp.asarray(R, jnp.float32), jnp.asarray(r, jnp.float32)
    a, c = N / 2.0, D / 2.0
    # In float64 on the host: lgamma(D/2) - lgamma((N+D)/2) cancels badly for large D.
    log_beta = math.lgamma(a) + math.lgamma(c) - math.lgamma(a + c)
    # D log r - (N+D)/2 log(R^2 + r^2) = -N log r - (N+D)/2 log1p(R^2/r^2): no cancellation.
    return (
        math.log(2.0)
        + (N - 1.0) * jnp.log(R)
        - N * jnp.log(r)
        - (N + D) / 2.0 * jnp.log1p((R / r) ** 2)
        - log_beta
    )


def radius_density(R: Array, r: Array, N: float, D: float) -> Array:
    """Normalized pdf of the perturbation radius ``R = ||x - y||`` (finite D).

    p(R) = 2 r^D R^(N-1) / (B(N/2, D/2) (R^2 + r^2)^((N+D)/2))   (the radial
    part of the kernel, times the sphere area ∝ R^(N-1)).

    Args:
      R: radii (any shape, > 0).
      r: ``sigma sqrt(D)`` (broadcastable to ``R``).
      N: data dimension; D: augmented dimensions (finite).

    Returns:
      Density values shaped like ``R``.
    """
    return jnp.exp(radius_log_density(R, r, N, D))


def radius_cdf(R, r, N: float, D: float) -> np.ndarray:
    """CDF of the radius: ``P(||x - y|| <= R) = I_{R^2/(R^2+r^2)}(N/2, D/2)`` (finite D).

    Follows from ``R^2 / (R^2 + r^2) = b ~ Beta(N/2, D/2)``. A host-side helper for
    tests and diagnostics, evaluated with SciPy in float64 (JAX's float32 ``betainc`` is
    inaccurate for the huge second argument of large D).

    Args:
      R: radii (array-like); r: ``sigma sqrt(D)``; N, D: dimensions.

    Returns:
      float64 NumPy array shaped like ``R``.
    """
    R = np.asarray(R, np.float64)
    r = np.asarray(r, np.float64)
    return scipy.special.betainc(N / 2.0, D / 2.0, R**2 / (R**2 + r**2))


def exact_denoiser(points: Array, weights: Array, D: float) -> Callable[[Array, Array], Array]:
    """Exact ``D(x; sigma) = E[y | x]`` for data on weighted points under the PFGM++ kernel.

    Posterior weights ``∝ w_i (||x - y_i||^2 + r^2)^(-(N+D)/2)`` with ``r = sigma sqrt(D)``
    (``∝ w_i exp(-||x - y_i||^2 / (2 sigma^2))`` for ``D = inf``); plugging this into
    ``dx/dsigma = (x - D)/sigma`` gives the exact PFGM++ (or EDM) ODE of the empirical
    distribution (``pfgmpp_target`` in Newbeeer/pfgmpp).

    Args:
      points: [M, ...] support points (event shape of one example).
      weights: [M] non-negative weights (normalized on use).
      D: augmented dimensions (``inf`` for EDM).

    Returns:
      ``fn(x, sigma)`` mapping x [B, ...] and sigma [B] (or scalar) to E[y | x] [B, ...].
    """
    pts = jnp.asarray(points, jnp.float32)
    m = pts.shape[0]
    flat = pts.reshape(m, -1)  # [M, N]
    n_dim = flat.shape[1]
    logw = jnp.log(jnp.asarray(weights, jnp.float32) / jnp.sum(jnp.asarray(weights)))

    def fn(x: Array, sigma: Array) -> Array:
        xf = x.reshape(x.shape[0], -1)  # [B, N]
        sig = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), x.shape[:1])[:, None]  # [B, 1]
        d2 = jnp.sum((xf[:, None, :] - flat[None]) ** 2, axis=-1)  # [B, M]
        if math.isinf(D):
            logits = logw[None] - d2 / (2.0 * sig**2)
        else:
            # (d2 + r^2)^(-(N+D)/2) = r^(-(N+D)) (1 + d2/r^2)^(-(N+D)/2); the r factor is
            # common to all points, and log1p keeps precision when D is huge.
            r2 = sig**2 * D
            logits = logw[None] - (n_dim + D) / 2.0 * jnp.log1p(d2 / r2)
        post = jax.nn.softmax(logits, axis=-1)  # [B, M]
        # HIGHEST: full float32 products on accelerators (no TF32), points to ~1e-6.
        mean = jnp.matmul(post, flat, precision=jax.lax.Precision.HIGHEST)  # [B, N]
        return mean.reshape(x.shape).astype(x.dtype)

    return fn


@dataclass(frozen=True)
class PFGMPP:
    """PFGM++ forward process with EDM preconditioning and loss.

    Args:
      D: augmented dimensions (``float('inf')``: EDM). 128 is the paper's CIFAR-10 choice.
      sigma_min, sigma_max: noise range used for sampling (EDM defaults 0.002, 80).
      sigma_data: data standard deviation in the preconditioning (EDM: 0.5).
      P_mean, P_std: training ``ln sigma ~ N(P_mean, P_std^2)`` (EDM: -1.2, 1.2).
      rho: exponent of EDM's sampling grid (7).
    """

    D: float = 128.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    P_mean: float = -1.2
    P_std: float = 1.2
    rho: float = 7.0
    #: process kind for the sampler registry
    kind: ClassVar[str] = "pfgmpp"

    def ode_drift(self, denoised: Array, x: Array, u: Array) -> Array:
        """The backward ODE in ``u = ln sigma``: ``dx/du = sigma dx/dsigma = x - D(x; sigma)``
        (Karras et al. 2022, eq. 4 with sigma(t) = t; PFGM++'s ODE in its aligned form).
        Log-sigma time spreads fixed steps over the decades of noise. Returns [B, ...]."""
        del u
        return x - denoised

    def ode_time(self, u: Array) -> Array:
        """The network's noise level ``sigma = exp(u)`` at ODE time ``u``."""
        return jnp.exp(u)

    def ode_span(self, eps: float) -> tuple[float, float]:
        """``(ln sigma_max, ln sigma_min)``: the ODE runs over the sampling noise range."""
        del eps
        return (math.log(self.sigma_max), math.log(self.sigma_min))

    @classmethod
    def from_settings(cls, settings: Any) -> PFGMPP:
        """The process of a config that carries the same field names (a method's config).

        Args:
          settings: any object with ``D``, ``sigma_min``, ``sigma_max``, ``sigma_data``,
            ``P_mean``, ``P_std`` and ``rho`` attributes.

        Returns:
          The :class:`PFGMPP` with those values (``D`` as a float, ``inf`` allowed).
        """
        names = ("sigma_min", "sigma_max", "sigma_data", "P_mean", "P_std", "rho")
        return cls(D=float(settings.D), **{n: getattr(settings, n) for n in names})

    def sample_time(self, key: Array, batch: int) -> Array:
        """Training noise levels ``sigma = exp(P_mean + P_std z)`` [B] (EDM Table 1)."""
        return jnp.exp(self.P_mean + self.P_std * jax.random.normal(key, (batch,)))

    def precondition(self, sigma: Array) -> tuple[Array, Array, Array, Array]:
        """EDM preconditioning (Karras et al. 2022, Table 1).

        Args:
          sigma: noise levels (any shape).

        Returns:
          ``(c_skip, c_out, c_in, c_noise)`` shaped like ``sigma``; the denoiser is
          ``D(x) = c_skip x + c_out F(c_in x, c_noise)``.
        """
        sigma = jnp.asarray(sigma, jnp.float32)
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / jnp.sqrt(sigma**2 + sd2)
        c_in = 1.0 / jnp.sqrt(sigma**2 + sd2)
        c_noise = jnp.log(sigma) / 4.0
        return c_skip, c_out, c_in, c_noise

    def denoised(self, raw: Array, x: Array, sigma: Array) -> Array:
        """``D(x; sigma) = c_skip x + c_out F`` from the raw network output ``F`` [B, ...]."""
        c_skip, c_out, _, _ = self.precondition(sigma)
        return _bcast(c_skip, x) * x + _bcast(c_out, x) * raw

    def denoise_state(
        self, raw_fn: Callable[[State, Array], State], state: State, sigma: Array
    ) -> State:
        """EDM's preconditioned denoiser of every leaf (Karras et al. 2022, Table 1).

        ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` per leaf, with one network
        ``raw_fn`` reading all scaled leaves at once.

        Args:
          raw_fn: ``(scaled state, c_noise [B]) -> raw outputs F`` (same keys).
          state: noisy leaves, batch first.
          sigma: [B] (or scalar) noise levels.

        Returns:
          The denoised leaves.
        """
        first = next(iter(state.values()))
        sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32).reshape(-1), first.shape[:1])
        _, _, c_in, c_noise = self.precondition(sigma)  # [B] each
        raw = raw_fn({k: _bcast(c_in, x) * x for k, x in state.items()}, c_noise)
        return {k: self.denoised(raw[k], x, sigma) for k, x in state.items()}

    def loss_weight(self, sigma: Array) -> Array:
        """``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` (EDM Table 1)."""
        sigma = jnp.asarray(sigma, jnp.float32)
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def prior_at(
        self, key: Array, shape: tuple[int, ...], sigma: float, mask: Array | None = None
    ) -> Array:
        """A draw of the perturbed zero state at noise ``sigma``: Beta-prime radius at
        ``r = sigma sqrt(D)`` and a uniform direction (``sigma z`` for D = inf)."""
        zeros = jnp.zeros(shape, jnp.float32)
        x, _ = perturb(key, zeros, jnp.full(shape[:1], sigma, jnp.float32), self.D, mask)
        return x

    def prior(self, key: Array, shape: tuple[int, ...], mask: Array | None = None) -> Array:
        """The PFGM++ prior at ``sigma_max`` (``rand_beta_prime`` in Newbeeer/pfgmpp)."""
        return self.prior_at(key, shape, self.sigma_max, mask)

    def corrupt(self, key: Array, x0: Array, t: Array, mask: Mask = None) -> tuple[Array, Aux]:
        """Perturb ``x0`` with the PFGM++ kernel at noise levels ``t = sigma`` [B].

        Returns:
          ``(x, {"sigma": sigma [B], "noise": x - x0})``, padding zero.
        """
        sigma = jnp.asarray(t, jnp.float32)
        x, noise = perturb(key, x0, sigma, self.D, mask)
        return x, {"sigma": sigma, "noise": noise}

    def loss(
        self, pred: Array, x0: Array, xt: Array, t: Array, aux: Aux, mask: Mask = None
    ) -> Array:
        """EDM loss ``lambda(sigma) * mean (D(x; sigma) - x0)^2`` over real entries.

        Args:
          pred: [B, ...] the *denoised* estimate D(x; sigma) (preconditioning applied,
            e.g. through :meth:`denoised`).
          x0: [B, ...] clean data.
          xt: unused.
          t: [B] noise levels (used when ``aux`` has no ``"sigma"``).
          aux: output of :meth:`corrupt`.
          mask: optional padding mask.

        Returns:
          [B] per-example loss.
        """
        del xt
        sigma = aux.get("sigma", t)
        return self.loss_weight(sigma) * masked_mean((pred - x0) ** 2, mask)

    def exact_denoiser(self, points: Array, weights: Array) -> Callable[[Array, Array], Array]:
        """:func:`exact_denoiser` with this process's ``D``."""
        return exact_denoiser(points, weights, self.D)


# ------------------------------------------------------------ EDM as a score SDE


def edm_ve_sde(process: PFGMPP, steps: int) -> VESDE:
    """The variance-exploding SDE whose marginals are EDM's kernel (PFGM++ at D = inf).

    ``dx = g(t) dw`` with ``sigma(t) = sigma_min (sigma_max / sigma_min)^t`` and
    ``g(t)^2 = d sigma^2 / dt`` (Song et al. 2021, eq. 30), so ``x_t | y ~ N(y, sigma(t)^2
    I)``: EDM's perturbation at ``sigma(t)`` (Karras et al. 2022 write the same family as
    ``dx = sqrt(2 sigma' sigma) dw``). The prior is ``N(0, sigma_max^2 I)``. The schedule
    is geometric because the shared PC samplers step uniformly in ``t`` and the
    reverse-diffusion predictor uses the SMLD table of ``steps`` geometric levels.

    Args:
      process: the PFGM++ process (``D = inf``).
      steps: the sampler's number of steps (the SMLD table size ``N``).

    Returns:
      A :class:`~genmodels.processes.sde.VESDE`.

    Raises:
      ValueError: finite ``D`` (its kernel is a Student-t: no diffusion SDE has it as
        marginals; PFGM++ samples with its ODE).
    """
    if not math.isinf(process.D):
        raise ValueError(
            f"PFGM++ with D = {process.D:g} has no diffusion SDE (its kernel is a Student-t); "
            "sample it with its ODE (heun, euler, ode) or set D to inf (EDM)"
        )
    return VESDE(
        sigma_min=process.sigma_min, sigma_max=process.sigma_max, N=steps, prior_scale=None
    )


def edm_score_fn(
    denoiser: Callable[[State, Array, Context], State], sde: VESDE
) -> Callable[[State, Array, Context], State]:
    """The score of a denoiser on the VE SDE's time axis: Tweedie's formula for the kernel
    ``N(y, sigma^2 I)``, ``s(x, sigma) = (D(x; sigma) - x) / sigma^2`` (Karras et al. 2022,
    eq. 3) at ``sigma = sigma(t)``.

    Args:
      denoiser: ``(state, sigma [B], ctx) -> state`` of denoised leaves.
      sde: the :func:`edm_ve_sde`.

    Returns:
      ``score_fn(state, t [B], ctx) -> state`` (the PC samplers' score).
    """

    def score_fn(state: State, t: Array, ctx: Context) -> State:
        sigma = sde.sigma(jnp.asarray(t, jnp.float32))  # [B]
        d = denoiser(state, sigma, ctx)
        return {k: (d[k] - x) / _bcast(sigma**2, x) for k, x in state.items()}

    return score_fn
