"""PARD on MOSES, the paper's sizes (for GPU users).

LingxiaoShawn/Pard ``pard/configs/moses.yaml``: hidden 256, edge hidden 64, 8 layers,
add_transpose, max_hops 3, 50 cosine steps per block, uniform noise, VLB + 0.1 CE,
batch 128, lr 2e-4, 40 epochs with cosine decay, input residual, absolute block id, a
virtual class per stream. Layer norm instead of batch norm; next-block head trained jointly.
"""

from _pard import PPGNTransformerConfig, pard

from genmodels.models.pard import PardConfig

# 1,584,663 MOSES training molecules / batch 128
STEPS_PER_EPOCH = 12380


def config() -> PardConfig:
    return pard(
        dataset="moses",
        max_hops=3,
        steps=50,
        net=PPGNTransformerConfig(hidden=256, edge_hidden=64, layers=8, heads=8),
        sample_batch=256,
        eval_nspdk=False,
        train_steps=40 * STEPS_PER_EPOCH,
        batch_size=128,
        lr=2e-4,
        log_every=100,
        ckpt_every=5000,
    )
