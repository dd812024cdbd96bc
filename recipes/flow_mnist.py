"""Rectified flow (flow matching) on MNIST with a small DDPM++ UNet (CPU-sized, ~25 min).

Setup of the rectified-flow code (gnobitab/RectifiedFlow, CIFAR-10 DDPM++ config; see
``flow_cifar10`` for the paper sizes): the straight path ``x_t = (1 - t) x_0 + t eps``,
the flow-matching MSE averaged over pixels, ``t ~ U(1e-3, 1)``, the UNet called at noise
label ``999 t``, pixels in [-1, 1]; samples by Euler on a uniform grid (also ``heun``, and
``boss`` with a ``boss_grids.json`` next to the checkpoint).

Departures, to train in about 25 minutes on 2 CPU cores: a 0.32M-parameter UNet
(model_channels 16, channel_mult (1, 2, 2): levels 28 / 14 / 7 with 16 / 32 / 32
channels, one residual block per level, attention at 7 x 7 only, no dropout) instead of
the 62M DDPM++; batch 64; lr 1e-3 with 100 warm-up steps and a cosine decay to 1e-4
(instead of a constant 2e-4); EMA 0.995 instead of 0.999999 (the run is only 900 steps);
no random flips (digits are not mirror-symmetric); 20 Euler steps by default (20 NFE;
the BOSS grids of ``boss_mnist`` do better with fewer, see ``benchmarks/boss.py``).

Measured speed (``genmodels train flow_mnist``, batch 64): 2.8 CPU-seconds per step (the
UNet costs 0.11 GFLOP per image forward, 0.33 with the gradient; XLA:CPU's kernel-gradient
convolutions are the slow part). On the 2 cores while four other jobs ran (load average
~8) that was 5.5 s per step (0.18 steps/s); with the 2 cores free it is about 1.5-1.8 s per
step (0.55-0.65 steps/s), so the 900 steps take about 25 minutes (about 80 minutes on
cores as busy as during the measurement). Sampling: one Euler step at batch 250 costs about
2-3 CPU-seconds, so 20 steps are about 1 CPU-minute per 250 images.
"""

from genmodels.models.flow import FlowImageConfig
from genmodels.nets.unet import UNetConfig
from genmodels.train import OptimConfig, TrainConfig


def config() -> FlowImageConfig:
    return FlowImageConfig(
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
        random_flip=False,
        t_eps=1e-3,
        time_scale=999.0,
        sampler="euler",
        sample_steps=20,
        sample_batch=250,
        train=TrainConfig(steps=900, batch_size=64, ema_decay=0.995, log_every=25, ckpt_every=300),
        optim=OptimConfig(
            lr=1e-3, warmup_steps=100, schedule="cosine", final_lr_frac=0.1, clip_norm=1.0
        ),
    )
