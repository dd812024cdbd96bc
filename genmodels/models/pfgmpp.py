"""PFGM++ on images (Xu et al., ICML 2023); ``D = inf`` is EDM (Karras et al. 2022).

An image ``y`` (pixels in [-1, 1], :mod:`genmodels.domains.images`) with ``N = H W C``
entries is perturbed by the PFGM++ kernel ``p_r(x | y) ∝ (||x - y||^2 + r^2)^(-(N+D)/2)``
at ``r = sigma sqrt(D)`` (:class:`~genmodels.processes.pfgmpp.PFGMPP`): a Student-t with
``D`` degrees of freedom whose D -> inf limit is EDM's ``N(y, sigma^2 I)``. ``D`` is a
config field (the paper's CIFAR-10 runs: 64, 128, 2048, and 3072000 ~ EDM; ``inf`` here
is EDM exactly).

Training follows EDM with the PFGM++ alignment ``r = sigma sqrt(D)`` (so the EDM
hyperparameters carry over, the paper's Sec. 4): ``ln sigma ~ N(P_mean, P_std^2)``
(-1.2, 1.2), the network ``F`` is wrapped in EDM's preconditioning (Karras et al. 2022,
Table 1)

    D_theta(x; sigma) = c_skip x + c_out F(c_in x, c_noise),  c_noise = ln(sigma) / 4,

and the loss is ``lambda(sigma) || D_theta(x; sigma) - y ||^2`` with
``lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` (mean over pixels here; EDM
sums them, a constant factor N).

Sampling solves ``dx/dsigma = (x - D_theta(x; sigma)) / sigma`` (the PFGM++ ODE
``dx/dr = (x - E[y | x]) / r`` under the alignment) on EDM's grid
``sigma_i = (sigma_max^(1/rho) + i/(K-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``,
then 0 (eq. 5; sigma_min 0.002, sigma_max 80, rho 7), starting from the PFGM++ prior at
``sigma_max`` (for finite D: a Beta-prime radius ``R = r sqrt(b / (1 - b))``,
``b ~ Beta(N/2, D/2)``, and a uniform direction; for D = inf: ``sigma_max z``). Samplers:

- ``heun``: EDM's Algorithm 1 without churn (:func:`genmodels.samplers.ode.heun_sample`):
  ``K`` noise levels, Heun steps and a final Euler step to 0, ``2 K - 1`` NFE (18 -> 35,
  EDM's CIFAR-10 setting, also used by PFGM++).
- ``euler``: Euler on the same grid, ``K`` NFE.
- ``pc`` and ``s4`` (``D = inf`` only): the shared score-SDE samplers of
  :mod:`genmodels.samplers.pc` on the variance-exploding SDE whose marginals are EDM's
  kernel ``N(y, sigma^2 I)`` (see :func:`edm_sde_sample`): ``pc`` is the reverse-diffusion
  predictor plus one Langevin corrector step (Song et al. 2021, Alg. 2; ``2 K`` NFE),
  ``s4`` GDSS's S4 solver (Jo et al. 2022, Sec. 3.3; ``K`` NFE). A finite ``D`` has no
  diffusion SDE with these marginals (its kernel is a Student-t, and PFGM++ is an ODE
  method), so these samplers refuse it. Their time grid is the VE SDE's: noise levels
  geometric from ``sigma_max`` to ``sigma_min`` (:func:`edm_ve_sde`), not EDM's rho grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array, ConstrainFn, Context, State, identity_constrain
from genmodels.domains.images import constrain as image_constrain
from genmodels.models.image_base import ImageMethod, ImageMethodConfig
from genmodels.nets.unet import UNetConfig
from genmodels.processes.base import corrupt_state, loss_state
from genmodels.processes.pfgmpp import PFGMPP
from genmodels.processes.sde import VESDE
from genmodels.samplers.ode import edm_euler_sample, heun_sample
from genmodels.samplers.pc import LangevinCorrector, ReverseDiffusion, pc_sample, s4_sample

__all__ = [
    "SAMPLERS",
    "SDE_SAMPLERS",
    "PFGMPPImageConfig",
    "PFGMPPImageNet",
    "PFGMPPImages",
    "edm_score_fn",
    "edm_sde_sample",
    "edm_ve_sde",
]

#: sampler names of every D; the first is the default
SAMPLERS = ("heun", "euler")
#: score-SDE samplers, offered when D = inf (EDM) only
SDE_SAMPLERS = ("pc", "s4")

#: ``denoiser(state, sigma [B], ctx) -> state``: EDM's ``D_theta(x; sigma)`` per leaf
Denoiser = Callable[[State, Array, Context], State]


def _sde_error(sampler: str, D: float) -> ValueError:
    return ValueError(
        f"sampler {sampler!r} integrates the reverse-time diffusion SDE of a Gaussian "
        f"perturbation kernel, which PFGM++ has only for D = inf (EDM); with D = {D:g} the "
        "kernel is a Student-t and PFGM++ samples with its ODE: use --sampler heun or "
        "euler, or set D to inf (--config.D inf, or the edm_mnist recipe)"
    )


# ------------------------------------------------------------ EDM as a score SDE


def edm_ve_sde(process: PFGMPP, steps: int) -> VESDE:
    """The variance-exploding SDE whose marginals are EDM's kernel, for the PC samplers.

    ``dx = g(t) dw`` with ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``, ``t`` in
    [0, 1] and ``g(t)^2 = d sigma^2 / dt`` (Song et al. 2021, eq. 30), so that
    ``x_t | y ~ N(y, sigma(t)^2 I)``: EDM's perturbation at noise level ``sigma(t)``
    (Karras et al. 2022 write the same SDE family as ``dx = sqrt(2 sigma' sigma) dw``;
    only the time parametrization differs). The prior is ``N(0, sigma_max^2 I)``, the
    PFGM++ prior at ``D = inf``.

    The geometric schedule is used rather than EDM's ``rho = 7`` grid because the shared
    samplers step uniformly in ``t`` (``linspace(1, eps, K)``, GDSS/score_sde), and the
    reverse-diffusion predictor uses the SMLD table of ``K`` geometric noise levels: both
    then visit the same geometric levels from ``sigma_max`` to ``sigma_min``.

    Args:
      process: the PFGM++ process (must have ``D = inf``).
      steps: the sampler's number of steps (the SMLD table size ``N``).

    Returns:
      A :class:`~genmodels.processes.sde.VESDE`.

    Raises:
      ValueError: finite ``D`` (no diffusion SDE with the PFGM++ kernel as marginals).
    """
    if not math.isinf(process.D):
        raise _sde_error("pc/s4", process.D)
    return VESDE(
        sigma_min=process.sigma_min, sigma_max=process.sigma_max, N=steps, prior_scale=None
    )


def edm_score_fn(denoiser: Denoiser, sde: VESDE) -> Callable[[State, Array, Context], State]:
    """The score of a preconditioned denoiser on the VE SDE's time axis.

    Tweedie's formula for the Gaussian kernel ``N(y, sigma^2 I)`` (Karras et al. 2022,
    eq. 3): ``s(x, sigma) = grad_x log p(x; sigma) = (D_theta(x; sigma) - x) / sigma^2``,
    evaluated at ``sigma = sigma(t)`` of ``sde``.

    Args:
      denoiser: ``(state, sigma [B], ctx) -> state`` of denoised leaves.
      sde: the :func:`edm_ve_sde`.

    Returns:
      ``score_fn(state, t [B], ctx) -> state`` of scores (the samplers' ``ScoreFn``).
    """

    def score_fn(state: State, t: Array, ctx: Context) -> State:
        sigma = sde.sigma(jnp.asarray(t, jnp.float32))  # [B]
        d = denoiser(state, sigma, ctx)
        out = {}
        for k, x in state.items():
            s2 = jnp.reshape(sigma**2, (-1,) + (1,) * (x.ndim - 1))  # [B, 1, ...]
            out[k] = (d[k] - x) / s2
        return out

    return score_fn


def edm_sde_sample(
    denoiser: Denoiser,
    process: PFGMPP,
    ctx: Context,
    key: Array,
    *,
    shapes: Mapping[str, tuple[int, ...]],
    sampler: str,
    steps: int,
    snr: float = 0.16,
    scale_eps: float = 1.0,
    eps: float = 1e-3,
    constrain: ConstrainFn = identity_constrain,
) -> tuple[State, dict[str, Any]]:
    """Sample EDM (PFGM++ with ``D = inf``) with the shared predictor-corrector samplers.

    Every leaf of ``shapes`` gets :func:`edm_ve_sde` and the score
    ``(D_theta(x; sigma(t)) - x) / sigma(t)^2`` (:func:`edm_score_fn`); the samplers
    themselves are :func:`genmodels.samplers.pc.pc_sample` and
    :func:`~genmodels.samplers.pc.s4_sample`, unchanged, on the time grid
    ``linspace(1, eps, steps)`` (noise levels ``sigma(t)`` geometric from ``sigma_max``
    down to ``sigma(eps) ~ sigma_min``):

    - ``pc``: reverse diffusion (SMLD table ``sigma_i``:
      ``x <- x + (sigma_i^2 - sigma_{i-1}^2) s + sqrt(sigma_i^2 - sigma_{i-1}^2) z``)
      after one Langevin corrector step (``x <- x + e s + sqrt(2 e) scale_eps z``,
      ``e = 2 (snr ||z|| / ||s||)^2``), ``2 steps`` network calls; the last predictor
      mean is returned (noise-free).
    - ``s4``: GDSS's S4 (a Langevin step and a split reverse-SDE step from one score),
      ``steps`` network calls. Its explicit score step ``x += g^2 |dt| s`` moves ``x``
      by ``2 ln(sigma_max / sigma_min) / K`` times ``D - x``, which overshoots and
      diverges for ``K < ln(sigma_max / sigma_min)`` (10.6 for EDM's 0.002 and 80);
      the reverse-diffusion step of ``pc`` is stable for any ``K``. The state ``s4``
      returns still carries noise of about ``sigma_min`` (GDSS's last step is the short
      one from ``eps`` to 0), the one of ``pc`` is the denoised mean.

    Args:
      denoiser: ``(state, sigma [B], ctx) -> state``, e.g. a :class:`PFGMPPImageNet` or
        :func:`genmodels.processes.pfgmpp.exact_denoiser` wrapped per leaf.
      process: the PFGM++ process (``D = inf``; ``sigma_min``, ``sigma_max``).
      ctx: sampler context (masks, if any).
      key: PRNG key.
      shapes: leaf name -> full shape (batch first).
      sampler: ``pc`` or ``s4``.
      steps: time steps ``K``.
      snr: Langevin signal-to-noise ratio (score_sde's VE setting: 0.16).
      scale_eps: multiplies the corrector's noise (1: plain Langevin).
      eps: last time of the grid.
      constrain: domain hook after every update.

    Returns:
      ``(state, info)`` with ``info["nfe"]`` (``2 K`` for ``pc``, ``K`` for ``s4``).

    Raises:
      ValueError: finite ``D``, or an unknown sampler.
    """
    if sampler not in SDE_SAMPLERS:
        raise ValueError(f"unknown SDE sampler {sampler!r}; choose one of {SDE_SAMPLERS}")
    if not math.isinf(process.D):
        raise _sde_error(sampler, process.D)
    sde = edm_ve_sde(process, steps)
    procs = {k: sde for k in shapes}
    score = edm_score_fn(denoiser, sde)
    common = dict(shapes=shapes, steps=steps, eps=eps, constrain=constrain)
    if sampler == "s4":
        return s4_sample(score, procs, ctx, key, snr=snr, scale_eps=scale_eps, **common)
    corrector = LangevinCorrector(snr=snr, scale_eps=scale_eps, n_steps=1)
    return pc_sample(
        score, procs, ctx, key, predictor=ReverseDiffusion(), corrector=corrector, **common
    )


@dataclass(frozen=True)
class PFGMPPImageConfig(ImageMethodConfig):
    """A PFGM++ (or EDM, ``D = inf``) image recipe (fields of :class:`ImageMethodConfig`
    plus the ones below).

    Attributes:
      sampler: default sampler, ``heun`` (EDM Alg. 1) or ``euler``; with ``D = inf``
        also ``pc`` or ``s4`` (:func:`edm_sde_sample`).
      sample_steps: noise levels of the sampling grid (EDM CIFAR-10: 18, i.e. 35 NFE
        with ``heun``); for ``pc``/``s4`` the number of SDE time steps.
      D: augmented dimensions (64, 128, 2048, ...; ``inf``: EDM).
      sigma_min: smallest noise level of the sampling grid (EDM: 0.002).
      sigma_max: largest noise level, where the prior is drawn (EDM: 80).
      rho: exponent of EDM's sampling grid (7).
      sigma_data: data standard deviation in the preconditioning (EDM: 0.5).
      P_mean: mean of the training ``ln sigma ~ N(P_mean, P_std^2)`` (EDM: -1.2).
      P_std: standard deviation of the training ``ln sigma`` (EDM: 1.2).
      snr: signal-to-noise ratio of the Langevin corrector of ``pc`` and ``s4``
        (score_sde's VE setting: 0.16).
      scale_eps: multiplies the corrector's injected noise (1: plain Langevin).
    """

    sampler: str = "heun"
    sample_steps: int = 18
    D: float = 128.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    sigma_data: float = 0.5
    P_mean: float = -1.2
    P_std: float = 1.2
    snr: float = 0.16
    scale_eps: float = 1.0

    def build(self) -> PFGMPPImages:
        return PFGMPPImages(self)

    def process(self) -> PFGMPP:
        """The :class:`~genmodels.processes.pfgmpp.PFGMPP` of these settings."""
        return PFGMPP.from_settings(self)


class PFGMPPImageNet(nnx.Module):
    """``(state, sigma, ctx) -> {"image": D_theta(x; sigma)}``: the UNet under EDM's
    preconditioning (module docstring).

    Args:
      net: UNet sizes.
      process: the PFGM++ process (its ``precondition`` and ``denoised``).
      rngs: parameter RNGs.
    """

    def __init__(self, net: UNetConfig, process: PFGMPP, *, rngs: nnx.Rngs):
        self.unet = net.make(rngs)
        self.process = process

    def __call__(
        self,
        state: State,
        sigma: Array,
        ctx: Context | None = None,
        *,
        train: bool = False,
        rngs: nnx.Rngs | Array | None = None,
    ) -> State:
        """Args:
          state: ``{"image": [B, H, W, C]}`` noisy images.
          sigma: [B] noise levels (> 0).
          ctx: unused.
          train: dropout on.
          rngs: dropout randomness when training.

        Returns:
          ``{"image": [B, H, W, C]}`` denoised estimate.
        """
        del ctx
        x = state["image"]
        sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32).reshape(-1), x.shape[:1])
        _, _, c_in, c_noise = self.process.precondition(sigma)  # [B] each
        raw = self.unet(c_in[:, None, None, None] * x, c_noise, train=train, rngs=rngs)
        return {"image": self.process.denoised(raw, x, sigma)}


class PFGMPPImages(ImageMethod):
    """PFGM++ / EDM on images (see the module docstring).

    Attributes:
      samplers: ``SAMPLERS``, plus ``SDE_SAMPLERS`` when ``D = inf``.
    """

    def __init__(self, config: PFGMPPImageConfig):
        if not config.D > 0:
            raise ValueError(f"D must be positive (or inf for EDM), got {config.D}")
        edm = math.isinf(config.D)
        if not edm and config.sampler in SDE_SAMPLERS:
            raise _sde_error(config.sampler, config.D)
        self.samplers = SAMPLERS + SDE_SAMPLERS if edm else SAMPLERS
        super().__init__(config)
        self.process = config.process()
        self.processes = {self.leaf: self.process}

    def init_model(self, key: Array) -> PFGMPPImageNet:
        return PFGMPPImageNet(self.config.net, self.process, rngs=nnx.Rngs(key))

    def loss_fn(self, model: PFGMPPImageNet, batch: dict, key: Array):
        """EDM loss under the PFGM++ kernel, averaged over the batch.

        Returns:
          ``(loss, {"denoise_mse": ...})``: the weighted loss and the unweighted mean
          squared error of the denoised images (a scale-free progress signal).
        """
        kf, kt, kc, kd = jax.random.split(key, 4)
        x0 = self.clean_state(batch, kf)
        ctx: dict = {}
        sigma = self.process.sample_time(kt, x0[self.leaf].shape[0])  # [B]
        xt, aux = corrupt_state(self.processes, kc, x0, sigma, ctx)
        pred = model(xt, sigma, ctx, train=True, rngs=kd)
        total, _ = loss_state(self.processes, pred, x0, xt, sigma, aux, ctx)
        mse = jnp.mean((pred[self.leaf] - x0[self.leaf]) ** 2)
        return jnp.mean(total), {"denoise_mse": mse}

    def _resolve(self, sampler, steps, options):
        if options:
            raise ValueError(f"PFGM++ sample got unknown options {sorted(options)}")
        if (sampler or self.config.sampler) in SDE_SAMPLERS and not math.isinf(self.process.D):
            raise _sde_error(sampler or self.config.sampler, self.process.D)
        return super()._resolve(sampler, steps, {})

    def _run_sampler(self, net, key, batch, sampler, steps, extra, constrain=image_constrain):
        del extra
        c = self.config
        shapes = {self.leaf: (batch, *self.image_shape)}
        if sampler in SDE_SAMPLERS:
            return edm_sde_sample(
                net,
                self.process,
                {},
                key,
                shapes=shapes,
                sampler=sampler,
                steps=steps,
                snr=c.snr,
                scale_eps=c.scale_eps,
                constrain=constrain,
            )
        # EDM's Heun (2 K - 1 calls) or Euler (K calls) on the same noise levels
        sample = heun_sample if sampler == "heun" else edm_euler_sample
        return sample(
            net,
            self.processes,
            {},
            key,
            shapes=shapes,
            steps=steps,
            sigma_min=c.sigma_min,
            sigma_max=c.sigma_max,
            rho=c.rho,
            constrain=constrain,
        )
