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
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.core.grids import edm_sigma_grid
from genmodels.core.types import Array, Context, State
from genmodels.domains.images import constrain
from genmodels.models.image_base import ImageMethod, ImageMethodConfig
from genmodels.nets.unet import UNetConfig
from genmodels.processes.base import corrupt_state, loss_state
from genmodels.processes.pfgmpp import PFGMPP
from genmodels.samplers.ode import euler_sample, heun_sample

__all__ = ["SAMPLERS", "PFGMPPImageConfig", "PFGMPPImageNet", "PFGMPPImages"]

#: sampler names; the first is the default
SAMPLERS = ("heun", "euler")


@dataclass(frozen=True)
class PFGMPPImageConfig(ImageMethodConfig):
    """A PFGM++ (or EDM, ``D = inf``) image recipe (fields of :class:`ImageMethodConfig`
    plus the ones below).

    Attributes:
      sampler: default sampler, ``heun`` (EDM Alg. 1) or ``euler``.
      sample_steps: noise levels of the sampling grid (EDM CIFAR-10: 18, i.e. 35 NFE
        with ``heun``).
      D: augmented dimensions (64, 128, 2048, ...; ``inf``: EDM).
      sigma_min: smallest noise level of the sampling grid (EDM: 0.002).
      sigma_max: largest noise level, where the prior is drawn (EDM: 80).
      rho: exponent of EDM's sampling grid (7).
      sigma_data: data standard deviation in the preconditioning (EDM: 0.5).
      P_mean: mean of the training ``ln sigma ~ N(P_mean, P_std^2)`` (EDM: -1.2).
      P_std: standard deviation of the training ``ln sigma`` (EDM: 1.2).
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

    def build(self) -> PFGMPPImages:
        return PFGMPPImages(self)

    def process(self) -> PFGMPP:
        """The :class:`~genmodels.processes.pfgmpp.PFGMPP` of these settings."""
        return PFGMPP(
            D=float(self.D),
            sigma_min=self.sigma_min,
            sigma_max=self.sigma_max,
            sigma_data=self.sigma_data,
            P_mean=self.P_mean,
            P_std=self.P_std,
            rho=self.rho,
        )


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
    """PFGM++ / EDM on images (see the module docstring)."""

    samplers = SAMPLERS

    def __init__(self, config: PFGMPPImageConfig):
        if not config.D > 0:
            raise ValueError(f"D must be positive (or inf for EDM), got {config.D}")
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
        return super()._resolve(sampler, steps, {})

    def _run_sampler(self, net, key, batch, sampler, steps, extra):
        del extra
        c = self.config
        shapes = {self.leaf: (batch, *self.image_shape)}
        if sampler == "heun":
            return heun_sample(
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

        # Euler on the same noise levels: dx/dsigma = (x - D(x; sigma)) / sigma. The
        # prior (the process's, at its sigma_max = the grid's first level) and the
        # update are euler_sample's; sigma plays the role of its decreasing time.
        def slope(state, sigma, ctx):
            d = net(state, sigma, ctx)
            s = sigma[:, None, None, None]
            return {k: (state[k] - d[k]) / s for k in state}

        grid = edm_sigma_grid(steps, c.sigma_min, c.sigma_max, c.rho)
        return euler_sample(
            slope, self.processes, {}, key, shapes=shapes, grid=grid, constrain=constrain
        )
