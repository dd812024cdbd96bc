"""PFGM++ (D=128; --D inf is EDM) on MNIST with a small DDPM++ UNet (CPU-sized, ~20 min).

Setup of PFGM++ (Xu et al. 2023; Newbeeer/pfgmpp) with EDM's hyperparameters carried over
by the alignment ``r = sigma sqrt(D)`` (see ``pfgmpp_cifar10`` for the paper sizes): the
PFGM++ kernel with D = 128 extra dimensions, ``ln sigma ~ N(-1.2, 1.2^2)``, EDM's
preconditioning (sigma_data 0.5) and loss weighting, pixels in [-1, 1]; samples by EDM's
Heun sampler with 18 noise levels (35 NFE, rho 7, sigma in [0.002, 80]) from the PFGM++
prior at sigma_max. ``--D 2048`` or ``--D inf`` (EDM) switch the kernel.

Departures, for a CPU budget: a 0.32M-parameter UNet
(model_channels 16, channel_mult (1, 2, 2): levels 28 / 14 / 7 with 16 / 32 / 32
channels, one residual block per level, attention at 7 x 7 only, no dropout) instead of
the 56M DDPM++; batch 64 instead of 512; lr 1e-3 with 100 warm-up steps and a cosine
decay to 1e-4 (EDM: 1e-3 constant after a 10M-image warm-up); gradient clipping at 1;
EMA 0.995 (the run is only 600 steps; EDM: 500k-image half-life); no augmentation.
sigma_data stays at EDM's 0.5 (MNIST pixels in [-1, 1] have standard deviation 0.62).
Training and sampling times: ``benchmarks/results/recipes.md``.
"""

from _continuous import EDM, EDM_HEUN, mnist_cpu

from genmodels.models.pfgmpp import PFGMPPImageConfig


def config() -> PFGMPPImageConfig:
    return mnist_cpu(
        PFGMPPImageConfig,
        D=128.0,
        **EDM,
        **EDM_HEUN,
        sample_batch=250,
        steps=600,
        ckpt_every=200,
    )
