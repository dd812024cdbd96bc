"""GDSS on ENZYMES (reference: harryjo97/GDSS config/enzymes.yaml); GPU-sized."""

from _gdss import SDESpec, gdss

from genmodels.models.gdss import GDSSConfig


def config() -> GDSSConfig:
    return gdss(
        GDSSConfig,
        dataset="ENZYMES",
        net="ENZYMES",
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VE", 0.2, 1.0),
        sampler="s4",
        snr=0.15,
        scale_eps=0.7,
        sample_use_ema=True,
        sample_batch=64,
        # 470 training graphs, batch 64: 7 full batches per epoch (GDSS also runs the last 22)
        epochs=5000,
        steps_per_epoch=7,
        batch_size=64,
        ckpt_every=5000,
    )
