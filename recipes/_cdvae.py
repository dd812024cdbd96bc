"""Shared base of the CPU-sized CDVAE recipes (txie-93/cdvae ``conf/model/vae.yaml``).

The departures common to ``cdvae_perov5`` and ``cdvae_carbon24`` (see their docstrings):
training on ``val.csv`` and evaluating on ``test.csv``, encoder/decoder width 64 with 2
interaction blocks each, 12 neighbours, latent and head width 128, batch 32, constant
Adam lr 1e-3 with global-norm clipping at 1, no EMA.
"""

from genmodels.models.cdvae import CDVAEConfig
from genmodels.train import OptimConfig, TrainConfig


def cdvae_cpu(
    *,
    dataset: str,
    max_atoms: int,
    teacher_forcing_max_epoch: int,
    steps: int,
    log_every: int,
    ckpt_every: int,
) -> CDVAEConfig:
    """A CPU-sized CDVAE config trained ``steps`` steps of batch 32 on ``val.csv``."""
    return CDVAEConfig(
        dataset=dataset,
        train_split="val",
        eval_split="test",
        max_atoms=max_atoms,
        latent_dim=128,
        hidden_dim=128,
        enc_hidden=64,
        enc_blocks=2,
        dec_hidden=64,
        dec_blocks=2,
        max_neighbors=12,
        teacher_forcing_max_epoch=teacher_forcing_max_epoch,
        sample_batch=128,
        train=TrainConfig(
            steps=steps, batch_size=32, ema_decay=0.0, log_every=log_every, ckpt_every=ckpt_every
        ),
        optim=OptimConfig(lr=1e-3, clip_norm=1.0, schedule="constant"),
    )
