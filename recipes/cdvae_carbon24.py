"""CDVAE on carbon_24, CPU-sized: trains on val.csv (no train split here), ~1 h on 2 cores.

Reference: txie-93/cdvae ``conf/model/vae.yaml``, ``conf/data/carbon.yaml``.

Departures, all for a CPU budget of about an hour:

- Data: only ``val.csv`` and ``test.csv`` of carbon_24 are available in this project, so
  the model trains on the 2,032 validation crystals and is evaluated on ``test.csv``
  (the reference trains on the ~6,090 training crystals). Set ``train_split="train"``
  once ``train.csv`` is present.
- Size: encoder/decoder width 64 instead of 128, 2 interaction blocks each instead of
  4 (DimeNet++) and 3 (GemNet-T), 12 neighbours instead of 20, latent and head width 128
  instead of 256 (step times in ``benchmarks/results/recipes.md``).
- Length: batch 32 (reference 256), 2,000 steps (~32 epochs of val.csv) instead of
  4,000 epochs; teacher forcing for the first quarter, as the reference
  (``teacher_forcing_max_epoch`` 1000 of 4000): epochs 0-7 of ~32.
- Optimizer: constant Adam lr 1e-3 (the reference's rate; its ReduceLROnPlateau on the
  validation loss is not available), global-norm clipping at 1 instead of CDVAE's
  element-wise clipping at 0.5; no EMA (CDVAE keeps none).

Everything else is the reference: ``max_atoms`` 24, loss weights, noise levels, cutoff
7 A, and Langevin sampling with 100 steps per level and step_lr 1e-4.
"""

from _cdvae import cdvae_cpu

from genmodels.models.cdvae import CDVAEConfig


def config() -> CDVAEConfig:
    return cdvae_cpu(
        dataset="carbon_24",
        max_atoms=24,
        teacher_forcing_max_epoch=7,
        steps=2000,
        log_every=50,
        ckpt_every=250,
    )
