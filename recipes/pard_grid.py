"""PARD on grid graphs, the reference sizes (for GPU users: 2N = 722 dense nodes).

LingxiaoShawn/Pard ``pard/configs/grid.yaml``: hidden 256, edge hidden 48, 10 layers,
layer norm, add_transpose, max_hops 1, 50 cosine steps per block, uniform noise,
VLB + 0.1 CE, batch 2, lr 3e-3, 700 epochs with cosine decay (bf16 there; float32 here),
input residual, no absolute block id (``use_absolute_blockid: False``), a virtual class per
stream (3 edge classes). Next-block head trained jointly.
"""

from _pard import PPGNTransformerConfig, pard

from genmodels.models.pard import PardConfig

# 80 training grids / batch 2
STEPS_PER_EPOCH = 40


def config() -> PardConfig:
    return pard(
        dataset="grid",
        max_hops=1,
        steps=50,
        net=PPGNTransformerConfig(
            hidden=256, edge_hidden=48, layers=10, heads=8, absolute_block_id=False
        ),
        sample_batch=4,
        train_steps=700 * STEPS_PER_EPOCH,
        batch_size=2,
        lr=3e-3,
        log_every=50,
        ckpt_every=1000,
    )
