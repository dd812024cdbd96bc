"""PARD on grid graphs, the reference sizes (for GPU users: 2N = 722 dense nodes).

LingxiaoShawn/Pard ``pard/configs/grid.yaml``: hidden 256, edge hidden 48, 10 layers,
layer norm, add_transpose, max_hops 1, 50 cosine steps per block, uniform noise,
VLB + 0.1 CE, batch 2, lr 3e-3, 700 epochs with cosine decay (bf16 there; float32 here).
Next-block head trained jointly.
"""

from genmodels.models.pard import PardConfig
from genmodels.nets.ppgn import PPGNTransformerConfig
from genmodels.train import OptimConfig, TrainConfig

# 80 training grids / batch 2
STEPS_PER_EPOCH = 40


def config() -> PardConfig:
    return PardConfig(
        dataset="grid",
        max_hops=1,
        steps=50,
        net=PPGNTransformerConfig(hidden=256, edge_hidden=48, layers=10, heads=8),
        sample_batch=4,
        train=TrainConfig(
            steps=700 * STEPS_PER_EPOCH,
            batch_size=2,
            ema_decay=0.999,
            log_every=50,
            ckpt_every=1000,
        ),
        optim=OptimConfig(
            lr=3e-3,
            weight_decay=0.01,
            decoupled_weight_decay=True,
            clip_norm=1.0,
            schedule="cosine",
            final_lr_frac=0.0,
        ),
    )
