"""CDVAE on mp_20 at the reference sizes (GPU; needs data/crystals/mp_20/train.csv).

Reference: txie-93/cdvae ``conf/model/vae.yaml``, ``conf/model/encoder/dimenet.yaml``,
``conf/model/decoder/gemnet.yaml``, ``conf/data/mp_20.yaml``, ``conf/optim/default.yaml``.

Reference settings: latent and head width 256, one hidden layer per head, encoder width
128 with 4 blocks, decoder width 128 with 3 blocks, cutoff 7 A, 20 neighbours,
``max_atoms`` 20, batch 256, 1,000 epochs with teacher forcing up to epoch 500,
Adam lr 1e-3, loss weights 1/10/10/1/1 (atoms, lattice, coordinates, types,
composition) and beta 0.01, noise levels 10 -> 0.01 (coordinates) and 5 -> 0.01 (types)
in 50 steps, Langevin sampling with 100 steps per level and step_lr 1e-4.

Departures: the reference lowers the rate by 0.6 after 30 epochs without improvement of
the validation loss (ReduceLROnPlateau, floor 1e-4); the training loop has no validation
pass, so the rate follows a cosine from 1e-3 down to the same floor 1e-4 instead.
Gradients are clipped to global norm 1 instead of element-wise to 0.5. No EMA (CDVAE
keeps none).
"""

from genmodels.models.cdvae import CDVAEConfig
from genmodels.train import OptimConfig, TrainConfig

# 27,136 training crystals at batch 256: 106 full batches per epoch
STEPS_PER_EPOCH = 106


def config() -> CDVAEConfig:
    return CDVAEConfig(
        dataset="mp_20",
        train_split="train",
        eval_split="test",
        max_atoms=20,
        teacher_forcing_max_epoch=500,
        sample_batch=256,
        train=TrainConfig(
            steps=1000 * STEPS_PER_EPOCH,
            batch_size=256,
            ema_decay=0.0,
            log_every=100,
            ckpt_every=2000,
        ),
        optim=OptimConfig(lr=1e-3, clip_norm=1.0, schedule="cosine", final_lr_frac=0.1),
    )
