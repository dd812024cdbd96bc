"""PARD on ZINC250k, the paper's sizes (for GPU users; the ZINC250k csv is not shipped here).

LingxiaoShawn/Pard ``pard/configs/zinc250k.yaml``: hidden 256, edge hidden 64, 8 layers,
add_transpose, 50 cosine steps per block, uniform noise, VLB + 0.1 CE, batch 128, lr 4e-4,
70 epochs with cosine decay, max_hops 3 (``pard/config.py`` default), input residual, no
absolute block id (``use_absolute_blockid: False``), a virtual class per stream. Layer norm
instead of batch norm; next-block head trained jointly.
"""

from _pard import PPGNTransformerConfig, pard

from genmodels.models.pard import PardConfig

# 224,568 training molecules / batch 128
STEPS_PER_EPOCH = 1755


def config() -> PardConfig:
    return pard(
        dataset="zinc250k",
        max_hops=3,
        steps=50,
        net=PPGNTransformerConfig(
            hidden=256, edge_hidden=64, layers=8, heads=8, absolute_block_id=False
        ),
        sample_batch=256,
        train_steps=70 * STEPS_PER_EPOCH,
        batch_size=128,
        lr=4e-4,
        log_every=100,
        ckpt_every=2000,
    )
