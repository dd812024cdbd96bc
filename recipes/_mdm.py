"""Shared base of the masked-diffusion recipes (MDLM loss, first-hitting sampler).

Common to every recipe, from MDLM (Sahoo et al. 2024; kuleshov-group/mdlm
``configs/config.yaml``) and Zheng et al. 2024: the linear schedule ``alpha = 1 - t``,
times in [1e-3, 1], no time conditioning, the first-hitting sampler with float64-grade
categorical draws, clipping at 1 and no weight decay. The CPU budgets share Adam lr 1e-3
with a warm-up and a cosine decay to 1e-4, EMA 0.999 (MDLM's 0.9999 averages over too
many of a few thousand steps) and sampling with the EMA parameters.
"""

from genmodels.train import OptimConfig, TrainConfig


def mdm(
    config_cls: type,
    *,
    steps: int,
    batch_size: int,
    warmup_steps: int,
    log_every: int = 50,
    ckpt_every: int = 500,
    sample_steps: int = 1000,
    **method,
):
    """A masked-diffusion config of ``config_cls`` (images, molecules, graphs, crystals).

    Args:
      steps: training steps of ``batch_size``.
      warmup_steps: linear warm-up of the learning rate.
      method: the config's own fields (dataset, net, sample_batch, ...).
    """
    return config_cls(
        schedule="linear",
        t_eps=1e-3,
        time_conditioning=False,
        sampler="fhs",
        sample_steps=sample_steps,
        precision="float64",
        sample_use_ema=True,
        **method,
        train=TrainConfig(
            steps=steps,
            batch_size=batch_size,
            ema_decay=0.999,
            ema_warmup=True,  # MDLM models/ema.py: use_num_updates=True
            log_every=log_every,
            ckpt_every=ckpt_every,
        ),
        optim=OptimConfig(
            lr=1e-3,
            weight_decay=0.0,
            clip_norm=1.0,
            warmup_steps=warmup_steps,
            schedule="cosine",
            final_lr_frac=0.1,
        ),
    )
