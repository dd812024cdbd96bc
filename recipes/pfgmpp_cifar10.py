"""PFGM++ (D=128) on CIFAR-10 at the paper's DDPM++ sizes (GPU recipe; 55.7M parameters).

Setup of Xu et al., "PFGM++: Unlocking the potential of physics-inspired generative
models", ICML 2023, Sec. 5 / App. D, which reuses EDM's CIFAR-10 DDPM++ configuration
(Karras et al. 2022, Table 7; NVlabs/edm ``train.py`` defaults for ``--arch=ddpmpp``, the
base of Newbeeer/pfgmpp):

- network: EDM's DDPM++ UNet (``UNetConfig.ddpmpp_cifar10()``: C = 128, channel_mult
  (2, 2, 2), 4 blocks per level, attention at 16 x 16, dropout 0.13), unconditional;
- training: batch 512, Adam lr 1e-3 (betas 0.9 / 0.999, eps 1e-8) after a linear warm-up
  over the first 10M images, 200M images in all (390,625 steps), no gradient clipping;
  EMA half-life 500k images, i.e. a per-step decay 0.5^(512 / 500000) = 0.99929;
- PFGM++: D = 128 (one of the paper's CIFAR-10 settings with 64, 2048 and 3072000; its
  abstract reports FID 1.91 at D = 2048 on CIFAR-10 and 2.43 at D = 128 on FFHQ 64;
  ``--D 2048`` or ``--D inf``, EDM, switch), aligned with EDM by r = sigma sqrt(D), so
  EDM's ``ln sigma ~ N(-1.2, 1.2^2)``, sigma_data 0.5 and loss weighting carry over;
- sampling: EDM's Heun sampler, 18 steps (35 NFE), rho 7, sigma in [0.002, 80], the
  prior drawn at sigma_max from the PFGM++ kernel.

Departures: EDM's non-leaking augmentation (probability 0.12, 9 augmentation labels fed to
the network) is not implemented; the EMA has no ramp-up (EDM ramps the half-life up over
the first 5% of training); the loss is a mean over pixels rather than a sum (a constant
factor that Adam ignores). ``genmodels evaluate`` reports the Inception FID of the samples
against the CIFAR-10 test split (the papers use the 50k training images and 50k samples).
"""

from _continuous import EDM, EDM_HEUN

from genmodels.models.pfgmpp import PFGMPPImageConfig
from genmodels.nets.unet import UNetConfig
from genmodels.train import OptimConfig, TrainConfig

BATCH = 512
#: 200M training images (EDM ``--duration=200``)
STEPS = 200_000_000 // BATCH
#: EMA half-life of 500k images (EDM ``--ema=0.5``)
EMA_DECAY = 0.5 ** (BATCH / 500_000)


def config() -> PFGMPPImageConfig:
    return PFGMPPImageConfig(
        dataset="cifar10",
        net=UNetConfig.ddpmpp_cifar10(),
        D=128.0,
        **EDM,
        **EDM_HEUN,
        sample_batch=500,
        train=TrainConfig(
            steps=STEPS, batch_size=BATCH, ema_decay=EMA_DECAY, log_every=100, ckpt_every=5000
        ),
        optim=OptimConfig(
            lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, clip_norm=None, warmup_steps=10_000_000 // BATCH
        ),
    )
