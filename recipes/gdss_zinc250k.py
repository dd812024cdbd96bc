"""GDSS on ZINC250k (reference: harryjo97/GDSS config/zinc250k.yaml); needs zinc250k.csv."""

from _gdss import SDESpec, gdss

from genmodels.models.gdss import GDSSMolConfig


def config() -> GDSSMolConfig:
    return gdss(
        GDSSMolConfig,
        dataset="zinc250k",
        net="ZINC250k",
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VE", 0.2, 1.0),
        sampler="reverse_langevin",
        snr=0.2,
        scale_eps=0.9,
        sample_use_ema=False,
        sample_batch=1024,
        # 224,568 training molecules at batch 1024: 219 full batches per epoch, 500 epochs
        epochs=500,
        steps_per_epoch=219,
        batch_size=1024,
        ckpt_every=2000,
        lr=5e-3,
    )
