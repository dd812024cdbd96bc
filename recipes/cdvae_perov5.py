"""CDVAE on perov_5, CPU-sized: trains on val.csv (no train split here), ~35 min on 2 cores.

Reference: txie-93/cdvae ``conf/model/vae.yaml``, ``conf/data/perov.yaml``.

Departures, all for a CPU budget of about an hour:

- Data: only ``val.csv`` and ``test.csv`` of perov_5 are available in this project, so the
  model trains on the 3,787 validation crystals and is evaluated on ``test.csv`` (the
  reference trains on the 11,356 training crystals and uses val for early stopping).
  Set ``train_split="train"`` once ``train.csv`` is present.
- Size: encoder/decoder width 64 instead of 128, 2 interaction blocks each instead of
  4 (DimeNet++) and 3 (GemNet-T), 12 neighbours instead of 20, latent and head width 128
  instead of 256 (step times in ``benchmarks/results/recipes.md``).
- Length: batch 32 (reference 512), 8,000 steps (~67 epochs of val.csv) instead of
  3,000 epochs; teacher forcing for the first half, as the reference
  (``teacher_forcing_max_epoch`` 1500 of 3000): epochs 0-33 of ~67.
- Optimizer: constant Adam lr 1e-3 (the reference's rate; its ReduceLROnPlateau on the
  validation loss is not available), global-norm clipping at 1 instead of CDVAE's
  element-wise clipping at 0.5; no EMA (CDVAE keeps none).

Everything else is the reference: loss weights, noise levels (coordinates 10 -> 0.01,
types 5 -> 0.01, 50 levels), cutoff 7 A, and Langevin sampling with 100 steps per level
and step_lr 1e-4 (5,000 decoder calls per batch: slow on CPU; ``--steps`` lowers the
steps per level).
"""

from _cdvae import cdvae_cpu

from genmodels.models.cdvae import CDVAEConfig


def config() -> CDVAEConfig:
    return cdvae_cpu(
        dataset="perov_5",
        max_atoms=20,
        teacher_forcing_max_epoch=33,
        steps=8000,
        log_every=100,
        ckpt_every=500,
    )
