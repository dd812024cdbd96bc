"""GDSS on QM9 (reference: harryjo97/GDSS config/qm9.yaml and sample_qm9.yaml)."""

from genmodels.models.gdss import GDSSMolConfig, SDESpec
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.train import OptimConfig, TrainConfig

# 120,803 training molecules at batch 1024: 117 full batches per epoch, 300 epochs
STEPS_PER_EPOCH = 117


def config() -> GDSSMolConfig:
    return GDSSMolConfig(
        dataset="qm9",
        net=GDSS_NET_CONFIGS["QM9"],
        sde_x=SDESpec("VE", 0.1, 1.0),
        sde_adj=SDESpec("VE", 0.1, 1.0),
        sampler="reverse_langevin",
        snr=0.2,
        scale_eps=0.7,
        sample_use_ema=False,
        sample_batch=1024,
        train=TrainConfig(
            steps=300 * STEPS_PER_EPOCH,
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
