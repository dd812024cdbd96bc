"""GDSS on community_small (reference: harryjo97/GDSS config/community_small.yaml)."""

from _gdss import SDESpec, gdss

from genmodels.models.gdss import GDSSConfig


def config() -> GDSSConfig:
    return gdss(
        GDSSConfig,
        dataset="community_small",
        net="community_small",
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VP", 0.1, 1.0),
        sampler="euler_langevin",
        snr=0.05,
        scale_eps=0.7,
        sample_use_ema=False,
        # 80 training graphs: one batch of all of them per epoch (GDSS batch 128 > 80), 5000 epochs
        epochs=5000,
        steps_per_epoch=1,
        batch_size=80,
        ckpt_every=1000,
    )
