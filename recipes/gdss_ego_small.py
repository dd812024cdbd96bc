"""GDSS on ego_small (reference: harryjo97/GDSS config/ego_small.yaml)."""

from genmodels.models.gdss import GDSSConfig, SDESpec
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.train import OptimConfig, TrainConfig

# 160 training graphs in two batches of 80 per epoch (GDSS: 128 + 32), 5000 epochs
STEPS_PER_EPOCH = 2


def config() -> GDSSConfig:
    return GDSSConfig(
        dataset="ego_small",
        net=GDSS_NET_CONFIGS["ego_small"],
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VP", 0.1, 1.0),
        sampler="euler",
        snr=0.0,
        scale_eps=0.0,
        sample_use_ema=False,
        train=TrainConfig(
            steps=5000 * STEPS_PER_EPOCH,
            batch_size=80,
            ema_decay=0.999,
            log_every=100,
            ckpt_every=2000,
        ),
        optim=OptimConfig(
            lr=1e-2,
            weight_decay=1e-4,
            clip_norm=1.0,
            clip_per_module=True,
            schedule="exponential",
            decay_rate=0.999,
            decay_every=STEPS_PER_EPOCH,
        ),
    )
