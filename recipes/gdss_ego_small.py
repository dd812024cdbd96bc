"""GDSS on ego_small (reference: harryjo97/GDSS config/ego_small.yaml)."""

from _gdss import SDESpec, gdss

from genmodels.models.gdss import GDSSConfig


def config() -> GDSSConfig:
    return gdss(
        GDSSConfig,
        dataset="ego_small",
        net="ego_small",
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VP", 0.1, 1.0),
        sampler="euler",
        snr=0.0,
        scale_eps=0.0,
        sample_use_ema=False,
        # 160 training graphs in two batches of 80 per epoch (GDSS: 128 + 32), 5000 epochs
        epochs=5000,
        steps_per_epoch=2,
        batch_size=80,
        ckpt_every=2000,
    )
