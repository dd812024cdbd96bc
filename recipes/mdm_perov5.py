"""Masked diffusion + first-hitting sampler over perov_5 compositions (atom types only; CPU).

Method: :mod:`genmodels.models.mdm_crystals`. One token per atom (the 56 elements of
perov_5's val and test splits), atom counts drawn from the training crystals (always 5
in perov_5), a permutation-equivariant set transformer, MDLM's NELBO, and the
first-hitting sampler (5 network calls per batch) with float64-grade categorical draws.

References: the loss and sampler follow MDLM (Sahoo et al. 2024; kuleshov-group/mdlm
``configs/config.yaml``: AdamW lr 3e-4, no weight decay, 2500 constant warm-up steps,
batch 512, EMA 0.9999, clip 1, times in [1e-3, 1], antithetic, no time conditioning)
and Zheng et al. 2024 (first-hitting sampler, float64 categorical draws); the data are
CDVAE's perov_5 (Xie et al. 2022).

Departures, for a CPU budget (training time in ``benchmarks/results/recipes.md``):

- Data: only ``val.csv`` and ``test.csv`` of perov_5 are available in this project, so
  the model trains on the 3,787 validation crystals and is evaluated on ``test.csv``
  (set ``train_split="train"`` once ``train.csv`` is present; the vocabulary is then
  read from train and test).
- Task: compositions only. CDVAE-style generators produce atom types jointly with the
  lattice and coordinates; here the lattice and coordinates are not modelled, so the
  comparable CDVAE figures are compositional validity and the element-count
  Wasserstein distance.
- Network: MDLM's DiT on text is replaced by a 3-block set transformer (width 64,
  4 heads, 112k parameters) without positional encoding.
- Length and optimizer: 2000 steps at batch 256 (135 epochs of val.csv), lr 1e-3 with
  100 warm-up steps and a cosine decay to 1e-4, EMA 0.999 (0.9999 averages over too
  many of 2000 steps). Unchanged from MDLM: the linear schedule ``alpha = 1 - t``,
  times in [1e-3, 1], no time conditioning, antithetic times, the NELBO weighting,
  clipping at 1, no weight decay.
"""

from _mdm import mdm

from genmodels.models.mdm_crystals import MDMCrystalConfig, SetTransformerConfig


def config() -> MDMCrystalConfig:
    return mdm(
        MDMCrystalConfig,
        dataset="perov_5",
        train_split="val",
        eval_split="test",
        net=SetTransformerConfig(dim=64, heads=4, layers=3, ffn=128),
        sample_steps=100,
        sample_batch=1000,
        steps=2000,
        batch_size=256,
        warmup_steps=100,
        log_every=100,
    )
