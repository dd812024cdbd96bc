"""Shared base of the PARD recipes (LingxiaoShawn/Pard ``pard/configs/*.yaml``).

Common to every recipe: AdamW (decoupled weight decay 0.01), gradient clipping at 1, a
cosine learning-rate decay (to 0 unless a recipe departs) and an EMA of 0.999.
"""

from genmodels.models.pard import PardConfig
from genmodels.nets.ppgn import PPGNTransformerConfig
from genmodels.train import OptimConfig, TrainConfig

__all__ = ["PPGNTransformerConfig", "pard"]


def pard(
    *,
    train_steps: int,
    batch_size: int,
    lr: float,
    log_every: int,
    ckpt_every: int,
    warmup_steps: int = 0,
    final_lr_frac: float = 0.0,
    **method,
) -> PardConfig:
    """A PARD config trained ``train_steps`` steps of ``batch_size`` at peak rate ``lr``.

    Args:
      method: the config's own fields (dataset, max_hops, diffusion ``steps`` per block,
        net, sample_batch, ...).
    """
    return PardConfig(
        **method,
        train=TrainConfig(
            steps=train_steps,
            batch_size=batch_size,
            ema_decay=0.999,
            log_every=log_every,
            ckpt_every=ckpt_every,
        ),
        optim=OptimConfig(
            lr=lr,
            weight_decay=0.01,
            decoupled_weight_decay=True,
            clip_norm=1.0,
            warmup_steps=warmup_steps,
            schedule="cosine",
            final_lr_frac=final_lr_frac,
        ),
    )
