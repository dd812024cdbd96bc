"""GDSS on grid (reference: harryjo97/GDSS config/grid.yaml); GPU-sized (361 nodes)."""

from genmodels.models.gdss import GDSSConfig, SDESpec
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.train import OptimConfig, TrainConfig

# 80 training graphs, batch 8: 10 batches per epoch, 5000 epochs
STEPS_PER_EPOCH = 10


def config() -> GDSSConfig:
    return GDSSConfig(
        dataset="grid",
        net=GDSS_NET_CONFIGS["grid"],
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VP", 0.2, 0.8),
        sampler="reverse_langevin",
        snr=0.1,
        scale_eps=0.7,
        sample_use_ema=True,
        sample_batch=8,
        train=TrainConfig(
            steps=5000 * STEPS_PER_EPOCH,
            batch_size=8,
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
