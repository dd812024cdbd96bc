"""PFGM++ (D=128; --D inf is EDM) on MNIST with a small DDPM++ UNet (CPU-sized, ~20 min).

Setup of PFGM++ (Xu et al. 2023; Newbeeer/pfgmpp) with EDM's hyperparameters carried over
by the alignment ``r = sigma sqrt(D)`` (see ``pfgmpp_cifar10`` for the paper sizes): the
PFGM++ kernel with D = 128 extra dimensions, ``ln sigma ~ N(-1.2, 1.2^2)``, EDM's
preconditioning (sigma_data 0.5) and loss weighting, pixels in [-1, 1]; samples by EDM's
Heun sampler with 18 noise levels (35 NFE, rho 7, sigma in [0.002, 80]) from the PFGM++
prior at sigma_max. ``--D 2048`` or ``--D inf`` (EDM) switch the kernel.

Departures, to train in about 20 minutes on 2 CPU cores: a 0.32M-parameter UNet
(model_channels 16, channel_mult (1, 2, 2): levels 28 / 14 / 7 with 16 / 32 / 32
channels, one residual block per level, attention at 7 x 7 only, no dropout) instead of
the 56M DDPM++; batch 64 instead of 512; lr 1e-3 with 100 warm-up steps and a cosine
decay to 1e-4 (EDM: 1e-3 constant after a 10M-image warm-up); gradient clipping at 1;
EMA 0.995 (the run is only 600 steps; EDM: 500k-image half-life); no augmentation.
sigma_data stays at EDM's 0.5 (MNIST pixels in [-1, 1] have standard deviation 0.62).

Measured speed (``genmodels train pfgmpp_mnist``, batch 64): 3.2 CPU-seconds per step
(the network of ``flow_mnist`` plus the Beta-prime radius draw). On the 2 cores while
four other jobs ran (load average ~8) that was 6.6 s per step (0.15 steps/s); with the 2
cores free it is about 1.8-2.1 s per step (0.5 steps/s), so the 600 steps take about 20
minutes (about 65 minutes on cores as busy as during the measurement). Sampling: 35
network calls at batch 250 cost about 1.5 CPU-minutes per 250 images.
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
        D=128.0,
        sigma_min=0.002,
        sigma_max=80.0,
        rho=7.0,
        sigma_data=0.5,
        P_mean=-1.2,
        P_std=1.2,
        sampler="heun",
        sample_steps=18,
        sample_batch=250,
        train=TrainConfig(steps=600, batch_size=64, ema_decay=0.995, log_every=25, ckpt_every=200),
        optim=OptimConfig(
            lr=1e-3, warmup_steps=100, schedule="cosine", final_lr_frac=0.1, clip_norm=1.0
        ),
    )
