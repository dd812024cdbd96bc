"""Shared base of the GDSS recipes (harryjo97/GDSS ``config/<dataset>.yaml``).

Every GDSS config trains with Adam (weight decay 1e-4), per-network gradient clipping at
1, an exponential learning-rate decay of 0.999 per epoch and an EMA of 0.999, logging
every 100 steps; the recipes state the rest.
"""

from genmodels.models.gdss import GDSSConfig, SDESpec
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.train import OptimConfig, TrainConfig

__all__ = ["SDESpec", "gdss"]


def gdss(
    config_cls: type = GDSSConfig,
    *,
    dataset: str,
    net: str,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    ckpt_every: int,
    lr: float = 1e-2,
    **method,
):
    """A GDSS config trained for ``epochs`` epochs of ``steps_per_epoch`` steps.

    Args:
      config_cls: ``GDSSConfig`` (generic graphs) or ``GDSSMolConfig`` (molecules).
      net: key of ``GDSS_NET_CONFIGS`` (the reference config's network sizes).
      method: the remaining config fields (SDEs, sampler, snr, scale_eps, ...).
    """
    return config_cls(
        dataset=dataset,
        net=GDSS_NET_CONFIGS[net],
        **method,
        train=TrainConfig(
            steps=epochs * steps_per_epoch,
            batch_size=batch_size,
            ema_decay=0.999,
            ema_warmup=True,  # GDSS utils/ema.py: use_num_updates=True
            log_every=100,
            ckpt_every=ckpt_every,
        ),
        optim=OptimConfig(
            lr=lr,
            weight_decay=1e-4,
            clip_norm=1.0,
            clip_per_module=True,
            schedule="exponential",
            decay_rate=0.999,
            decay_every=steps_per_epoch,
        ),
    )
