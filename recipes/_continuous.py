"""Shared base of the continuous-state recipes: flow matching and PFGM++ / EDM.

- ``EDM``: EDM's noise distribution ``ln sigma ~ N(-1.2, 1.2^2)``, preconditioning
  (sigma_data 0.5) and noise range [0.002, 80] with rho 7 (Karras et al. 2022), which
  PFGM++ carries over through ``r = sigma sqrt(D)`` (Xu et al. 2023, Sec. 4); ``EDM_HEUN``
  its Heun sampler on 18 noise levels (35 NFE).
- ``RECTIFIED_FLOW``: ``t ~ U(1e-3, 1)`` and the network called at label ``999 t``
  (gnobitab/RectifiedFlow).
- :func:`mnist_cpu`: the CPU-sized MNIST setup of ``flow_mnist``, ``pfgmpp_mnist`` and
  ``edm_mnist`` (a 0.32M-parameter DDPM++ UNet, batch 64, warm-up and cosine decay).
- :func:`graphs_cpu`: the CPU-sized setup of the flow and PFGM++ recipes on GDSS's graph
  networks (``flow_qm9``, ``pfgmpp_community_small``, ...).
"""

from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.nets.unet import UNetConfig
from genmodels.samplers.guidance import Conditioning
from genmodels.train import OptimConfig, TrainConfig

EDM = dict(sigma_min=0.002, sigma_max=80.0, rho=7.0, sigma_data=0.5, P_mean=-1.2, P_std=1.2)
EDM_HEUN = dict(sampler="heun", sample_steps=18)
RECTIFIED_FLOW = dict(t_eps=1e-3, time_scale=999.0)


def mnist_cpu(
    config_cls: type, *, steps: int, ckpt_every: int, classes: int = 0, p_uncond=0.1, **method
):
    """An MNIST config with the small UNet: model_channels 16, channel_mult (1, 2, 2)
    (levels 28 / 14 / 7 with 16 / 32 / 32 channels), one residual block per level,
    attention at 7 x 7 only, no dropout; batch 64, lr 1e-3 with 100 warm-up steps and a
    cosine decay to 1e-4, clipping at 1, EMA 0.995.

    Args:
      steps: training steps.
      classes: a class-conditional model of this many classes (0: unconditional), its
        label dropped with probability ``p_uncond`` in training (classifier-free
        guidance).
      method: the config's own fields (kernel, sampler, sample_batch, ...).
    """
    return config_cls(
        dataset="mnist",
        net=UNetConfig(
            in_channels=1,
            out_channels=1,
            img_resolution=28,
            model_channels=16,
            channel_mult=(1, 2, 2),
            num_blocks=1,
            attn_resolutions=(7,),
            dropout=0.0,
            label_dim=classes,
        ),
        condition=Conditioning("label", classes, p_uncond) if classes else Conditioning(),
        **method,
        train=TrainConfig(
            steps=steps, batch_size=64, ema_decay=0.995, log_every=25, ckpt_every=ckpt_every
        ),
        optim=OptimConfig(
            lr=1e-3, warmup_steps=100, schedule="cosine", final_lr_frac=0.1, clip_norm=1.0
        ),
    )


def graphs_cpu(config_cls: type, *, net: str, steps: int, batch_size: int, **method):
    """A config on GDSS's networks with the time (or noise level) as an extra node-feature
    channel; Adam lr 5e-3 and L2 weight decay 1e-4 (GDSS's) with 50 warm-up steps and a
    cosine decay to 5e-4, clipping at 1 per network (GDSS), EMA 0.999, sampling with the
    EMA parameters.

    Args:
      net: key of ``GDSS_NET_CONFIGS``.
      steps: training steps of ``batch_size``.
      method: the config's own fields (dataset, path or kernel, sampler, ...).
    """
    return config_cls(
        net=GDSS_NET_CONFIGS[net],
        time_input=True,
        sample_use_ema=True,
        **method,
        train=TrainConfig(
            steps=steps, batch_size=batch_size, ema_decay=0.999, log_every=50, ckpt_every=500
        ),
        optim=OptimConfig(
            lr=5e-3,
            weight_decay=1e-4,
            warmup_steps=50,
            schedule="cosine",
            final_lr_frac=0.1,
            clip_norm=1.0,
            clip_per_module=True,
        ),
    )
