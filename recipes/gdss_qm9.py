"""GDSS on QM9 (reference: harryjo97/GDSS config/qm9.yaml and sample_qm9.yaml)."""

from _gdss import SDESpec, gdss

from genmodels.models.gdss import GDSSMolConfig


def config() -> GDSSMolConfig:
    return gdss(
        GDSSMolConfig,
        dataset="qm9",
        net="QM9",
        sde_x=SDESpec("VE", 0.1, 1.0),
        sde_adj=SDESpec("VE", 0.1, 1.0),
        sampler="reverse_langevin",
        snr=0.2,
        scale_eps=0.7,
        sample_use_ema=False,
        sample_batch=1024,
        # 120,803 training molecules at batch 1024: 117 full batches per epoch, 300 epochs
        epochs=300,
        steps_per_epoch=117,
        batch_size=1024,
        ckpt_every=2000,
        lr=5e-3,
    )
