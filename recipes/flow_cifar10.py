"""Rectified flow on CIFAR-10 at the paper's DDPM++ sizes, the model BOSS starts from (GPU).

Setup of the 1-rectified flow of Liu, Gong, Liu, "Flow straight and fast", ICLR 2023
(gnobitab/RectifiedFlow ``configs/rectified_flow/cifar10_rf_gaussian_ddpmpp.py`` on top of
``configs/default_cifar10_configs.py``), whose released CIFAR-10 checkpoint is the
pretrained flow that BOSS (Nguyen et al., ICLR 2024; nguyenngocbaocmt02/BOSS) computes its
Bellman step sizes on (fine grid Kmax = 100) and straightens:

- network: DDPM++ (C = 128, channel_mult (1, 2, 2, 2), 4 residual blocks per level,
  attention at 16 x 16, dropout 0.15, positional noise embedding), unconditional: 61.8M
  parameters here;
- data: pixels in [-1, 1] (``data.centered``), random horizontal flips;
- training: the flow-matching MSE averaged over pixels (``reduce_mean``), t ~ U(1e-3, 1),
  the network called at label 999 t; batch 128, Adam lr 2e-4 (beta1 0.9, eps 1e-8) with a
  linear warm-up over 5000 steps, gradient clipping at norm 1, 1.3M steps, EMA 0.999999;
- sampling: Euler (``--sampler euler --steps K``), Heun, or BOSS grids
  (``--sampler boss --steps K`` with a ``boss_grids.json`` next to the checkpoint). The
  rectified-flow paper reports FID with an adaptive RK45 solver (not offered here).

Departures: the UNet is EDM's DDPM++ re-implementation (:mod:`genmodels.nets.unet`:
average-pool / nearest resampling blocks) rather than score_sde's NCSN++ code with
``resblock_type="biggan"``; its time direction is reversed (here t = 1 is noise) with the
same 999 t label range.
"""

from _continuous import RECTIFIED_FLOW

from genmodels.models.flow import FlowImageConfig
from genmodels.nets.unet import UNetConfig
from genmodels.train import OptimConfig, TrainConfig


def config() -> FlowImageConfig:
    return FlowImageConfig(
        dataset="cifar10",
        net=UNetConfig(
            in_channels=3,
            out_channels=3,
            img_resolution=32,
            model_channels=128,
            channel_mult=(1, 2, 2, 2),
            num_blocks=4,
            attn_resolutions=(16,),
            dropout=0.15,
            embedding="positional",
        ),
        random_flip=True,
        **RECTIFIED_FLOW,
        sampler="euler",
        sample_steps=100,
        sample_batch=500,
        train=TrainConfig(
            steps=1_300_000, batch_size=128, ema_decay=0.999999, log_every=100, ckpt_every=10_000
        ),
        optim=OptimConfig(lr=2e-4, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0, warmup_steps=5000),
    )
