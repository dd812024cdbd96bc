"""PARD on MOSES, the paper's sizes (for GPU users).

LingxiaoShawn/Pard ``pard/configs/moses.yaml``: hidden 256, edge hidden 64, 8 layers,
add_transpose, max_hops 3, 50 cosine steps per block, uniform noise, VLB + 0.1 CE,
batch 128, lr 2e-4, 40 epochs with cosine decay. Layer norm instead of batch norm;
next-block head trained jointly.
"""

from genmodels.models.pard import PardConfig
from genmodels.nets.ppgn import PPGNTransformerConfig
from genmodels.train import OptimConfig, TrainConfig

# 1,584,663 MOSES training molecules / batch 128
STEPS_PER_EPOCH = 12380


def config() -> PardConfig:
    return PardConfig(
        dataset="moses",
        max_hops=3,
        steps=50,
        net=PPGNTransformerConfig(hidden=256, edge_hidden=64, layers=8, heads=8),
        sample_batch=256,
        eval_nspdk=False,
        train=TrainConfig(
            steps=40 * STEPS_PER_EPOCH,
            batch_size=128,
            ema_decay=0.999,
            log_every=100,
            ckpt_every=5000,
        ),
        optim=OptimConfig(
            lr=2e-4,
            weight_decay=0.01,
            decoupled_weight_decay=True,
            clip_norm=1.0,
            schedule="cosine",
            final_lr_frac=0.0,
        ),
    )
