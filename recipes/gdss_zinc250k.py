"""GDSS on ZINC250k (reference: harryjo97/GDSS config/zinc250k.yaml); needs zinc250k.csv."""

from genmodels.models.gdss import GDSSMolConfig, SDESpec
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.train import OptimConfig, TrainConfig

# 224,568 training molecules at batch 1024: 219 full batches per epoch, 500 epochs
STEPS_PER_EPOCH = 219


def config() -> GDSSMolConfig:
    return GDSSMolConfig(
        dataset="zinc250k",
        net=GDSS_NET_CONFIGS["ZINC250k"],
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VE", 0.2, 1.0),
        sampler="reverse_langevin",
        snr=0.2,
        scale_eps=0.9,
        sample_use_ema=False,
        sample_batch=1024,
        train=TrainConfig(
            steps=500 * STEPS_PER_EPOCH,
            batch_size=1024,
            ema_decay=0.999,
            log_every=100,
            ckpt_every=2000,
        ),
        optim=OptimConfig(
            lr=5e-3,
            weight_decay=1e-4,
            clip_norm=1.0,
            clip_per_module=True,
            schedule="exponential",
            decay_rate=0.999,
            decay_every=STEPS_PER_EPOCH,
        ),
    )
