"""GDSS on grid (reference: harryjo97/GDSS config/grid.yaml); GPU-sized (361 nodes)."""

from _gdss import SDESpec, gdss

from genmodels.models.gdss import GDSSConfig


def config() -> GDSSConfig:
    return gdss(
        GDSSConfig,
        dataset="grid",
        net="grid",
        sde_x=SDESpec("VP", 0.1, 1.0),
        sde_adj=SDESpec("VP", 0.2, 0.8),
        sampler="reverse_langevin",
        snr=0.1,
        scale_eps=0.7,
        sample_use_ema=True,
        sample_batch=8,
        # 80 training graphs, batch 8: 10 batches per epoch, 5000 epochs
        epochs=5000,
        steps_per_epoch=10,
        batch_size=8,
        ckpt_every=5000,
    )
