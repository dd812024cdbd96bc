"""CDVAE on carbon_24, CPU-sized: trains on val.csv (no train split here), ~1 h on 2 cores.

Reference: txie-93/cdvae ``conf/model/vae.yaml``, ``conf/data/carbon.yaml``.

Departures, all for a one-hour CPU run:

- Data: only ``val.csv`` and ``test.csv`` of carbon_24 are available in this project, so
  the model trains on the 2,032 validation crystals and is evaluated on ``test.csv``
  (the reference trains on the ~6,090 training crystals). Set ``train_split="train"``
  once ``train.csv`` is present.
- Size: encoder/decoder width 64 instead of 128, 2 interaction blocks each instead of
  4 (DimeNet++) and 3 (GemNet-T), 12 neighbours instead of 20, latent and head width 128
  instead of 256 (see ``cdvae_perov5`` for the step times behind this choice).
- Length: batch 32 (reference 256), 2,000 steps (~32 epochs of val.csv, ~1 h on the
  project's shared 2-core CPU at the ~1.7 s a step measured with other jobs running)
  instead of 4,000 epochs; teacher forcing for the first quarter, as the reference
  (``teacher_forcing_max_epoch`` 1000 of 4000): epochs 0-7 of ~32.
- Optimizer: constant Adam lr 1e-3 (the reference's rate; its ReduceLROnPlateau on the
  validation loss is not available), global-norm clipping at 1 instead of CDVAE's
  element-wise clipping at 0.5; no EMA (CDVAE keeps none).

Everything else is the reference: ``max_atoms`` 24, loss weights, noise levels, cutoff
7 A, and Langevin sampling with 100 steps per level and step_lr 1e-4.
"""

from genmodels.models.cdvae import CDVAEConfig
from genmodels.train import OptimConfig, TrainConfig


def config() -> CDVAEConfig:
    return CDVAEConfig(
        dataset="carbon_24",
        train_split="val",
        eval_split="test",
        max_atoms=24,
        latent_dim=128,
        hidden_dim=128,
        enc_hidden=64,
        enc_blocks=2,
        dec_hidden=64,
        dec_blocks=2,
        max_neighbors=12,
        teacher_forcing_max_epoch=7,
        sample_batch=128,
        train=TrainConfig(steps=2000, batch_size=32, ema_decay=0.0, log_every=50, ckpt_every=250),
        optim=OptimConfig(lr=1e-3, clip_norm=1.0, schedule="constant"),
    )
