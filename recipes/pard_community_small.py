"""PARD on community_small (generic graphs; sizes of LingxiaoShawn/Pard ``pard/configs/comm20.yaml``).

Reference: hidden 128, 6 layers, 40 cosine steps per block, batch 512, lr 5e-4, 1000
epochs; ``pard/config.py`` defaults for the rest (edge hidden 32, max_hops 3, add_transpose).
One node class and two edge classes (edge / no edge). Layer norm instead of batch norm;
next-block head trained jointly. The 80 training graphs form one batch per step.
"""

from genmodels.models.pard import PardConfig
from genmodels.nets.ppgn import PPGNTransformerConfig
from genmodels.train import OptimConfig, TrainConfig


def config() -> PardConfig:
    return PardConfig(
        dataset="community_small",
        max_hops=3,
        steps=40,
        net=PPGNTransformerConfig(hidden=128, edge_hidden=32, layers=6, heads=8),
        sample_batch=256,
        train=TrainConfig(
            steps=1000,
            batch_size=80,
            ema_decay=0.999,
            log_every=50,
            ckpt_every=200,
        ),
        optim=OptimConfig(
            lr=5e-4,
            weight_decay=0.01,
            decoupled_weight_decay=True,
            clip_norm=1.0,
            schedule="cosine",
            final_lr_frac=0.0,
        ),
    )
