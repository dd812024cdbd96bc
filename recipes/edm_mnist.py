"""EDM (PFGM++ with D = inf) on MNIST sampled by predictor-corrector / S4 (CPU-sized).

The training setup is ``pfgmpp_mnist``'s with ``D = inf``: EDM (Karras et al. 2022) with
its preconditioning (sigma_data 0.5), ``ln sigma ~ N(-1.2, 1.2^2)`` and loss weighting,
pixels in [-1, 1], the same 0.32M-parameter UNet, batch 64, 600 steps (about 20 minutes on
2 free CPU cores; see ``pfgmpp_mnist`` for the measured speed).

This recipe is the score-SDE row of the method x domain matrix: samples come by default
from the shared predictor-corrector sampler (:mod:`genmodels.samplers.pc`, the one GDSS
uses on graphs) applied to the denoiser through the score ``s(x, sigma) = (D(x; sigma) -
x) / sigma^2`` (:func:`genmodels.models.pfgmpp.edm_sde_sample`):

- ``--sampler pc`` (default): reverse-diffusion predictor + one Langevin corrector step
  (snr 0.16, score_sde's VE setting; ``scale_eps`` 1), ``2 K`` network calls;
- ``--sampler s4``: GDSS's S4 solver, ``K`` network calls;
- ``--sampler heun`` / ``euler``: EDM's ODE samplers (use ``--steps 18`` for heun, 35 NFE).

Time grid: the variance-exploding SDE ``sigma(t) = sigma_min (sigma_max /
sigma_min)^t`` on ``t = linspace(1, 1e-3, K)`` (noise levels geometric from sigma_max 80
to sigma_min 0.002), not EDM's rho = 7 grid: the shared samplers step uniformly in time
and the reverse-diffusion predictor uses the SMLD table of K geometric levels.
``K = sample_steps = 50`` by default (100 NFE for pc). The explicit score step of S4
(and of Euler-Maruyama) on this SDE multiplies the denoising direction by
``2 ln(sigma_max / sigma_min) / K``, which overshoots (and diverges) for
``K < ln(sigma_max / sigma_min) ~ 10.6``: use at least ~20 steps with s4 (pc's
reverse-diffusion step is stable at any K). sample_batch is 256 so that the batch splits
over 8 devices.
"""

from genmodels.models.pfgmpp import PFGMPPImageConfig
from genmodels.nets.unet import UNetConfig
from genmodels.train import OptimConfig, TrainConfig


def config() -> PFGMPPImageConfig:
    return PFGMPPImageConfig(
        dataset="mnist",
        net=UNetConfig(
            in_channels=1,
            out_channels=1,
            img_resolution=28,
            model_channels=16,
            channel_mult=(1, 2, 2),
            num_blocks=1,
            attn_resolutions=(7,),
            dropout=0.0,
        ),
        D=float("inf"),
        sigma_min=0.002,
        sigma_max=80.0,
        rho=7.0,
        sigma_data=0.5,
        P_mean=-1.2,
        P_std=1.2,
        sampler="pc",
        sample_steps=50,
        snr=0.16,
        scale_eps=1.0,
        sample_batch=256,
        train=TrainConfig(steps=600, batch_size=64, ema_decay=0.995, log_every=25, ckpt_every=200),
        optim=OptimConfig(
            lr=1e-3, warmup_steps=100, schedule="cosine", final_lr_frac=0.1, clip_norm=1.0
        ),
    )
