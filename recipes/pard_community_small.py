"""PARD on community_small (generic graphs; sizes of LingxiaoShawn/Pard ``pard/configs/comm20.yaml``).

Reference: hidden 128, 6 layers, 40 cosine steps per block, batch 512, lr 5e-4, 1000
epochs; ``pard/config.py`` defaults for the rest (edge hidden 32, max_hops 3, add_transpose,
input residual, absolute block id). One node class and two edge classes (edge / no edge),
plus a virtual class each. Layer norm instead of batch norm; next-block head trained jointly. The 80 training graphs form one batch per step.
"""

from _pard import PPGNTransformerConfig, pard

from genmodels.models.pard import PardConfig


def config() -> PardConfig:
    return pard(
        dataset="community_small",
        max_hops=3,
        steps=40,
        net=PPGNTransformerConfig(hidden=128, edge_hidden=32, layers=6, heads=8),
        sample_batch=256,
        train_steps=1000,
        batch_size=80,
        lr=5e-4,
        log_every=50,
        ckpt_every=200,
    )
