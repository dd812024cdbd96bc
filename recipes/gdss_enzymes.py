"""GDSS on ENZYMES (reference: harryjo97/GDSS config/enzymes.yaml); GPU-sized."""

from genmodels.models.gdss import GDSSConfig, SDESpec
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.train import OptimConfig, TrainConfig

# 470 training graphs, batch 64: 7 full batches per epoch (GDSS also runs the last 22)
STEPS_PER_EPOCH = 7


def config() -> GDSSConfig:
    return GDSSConfig(
        dataset="ENZYMES",
        net=GDSS_NET_CONFIGS["ENZYMES"],
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VE", 0.2, 1.0),
        sampler="s4",
        snr=0.15,
        scale_eps=0.7,
        sample_use_ema=True,
        sample_batch=64,
        train=TrainConfig(
            steps=5000 * STEPS_PER_EPOCH,
            batch_size=64,
            ema_decay=0.999,
            log_every=100,
            ckpt_every=5000,
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
