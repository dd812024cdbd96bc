"""CDVAE's network (Xie et al., ICLR 2022): periodic encoder, latent heads and decoder.

The method (losses, decoding) is :mod:`genmodels.models.cdvae`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array
from genmodels.nets.mlp import ReLUMLP
from genmodels.nets.periodic import PeriodicDecoder, PeriodicEncoder

__all__ = ["CDVAEModel", "CDVAEStat"]


class CDVAEStat(nnx.Variable):
    """Fixed data statistics (lattice / property scalers): not trained, checkpointed."""


class CDVAEModel(nnx.Module):
    """Encoder, latent heads and decoder of CDVAE (Xie et al., ICLR 2022, Sec. 3).

    Heads as txie-93/cdvae ``build_mlp``; the lattice target is ``[lengths / N^(1/3),
    angles]`` standardized with the training statistics stored in the model.

    Args:
      config: a :class:`~genmodels.models.cdvae.CDVAEConfig` (sizes).
      stats: ``lattice_mean``, ``lattice_std`` ([6]), ``property_mean``, ``property_std``.
      rngs: parameter RNGs.
    """

    def __init__(self, config: Any, stats: dict[str, Any], *, rngs: nnx.Rngs):
        c = config
        d = c.latent_dim
        self.max_atoms = c.max_atoms
        self.encoder = PeriodicEncoder(
            c.num_types,
            hidden=c.enc_hidden,
            out_dim=d,
            num_blocks=c.enc_blocks,
            num_rbf=c.num_rbf,
            cutoff=c.cutoff,
            max_neighbors=c.max_neighbors,
            rngs=rngs,
        )
        self.fc_mu = nnx.Linear(d, d, rngs=rngs)
        self.fc_var = nnx.Linear(d, d, rngs=rngs)
        h, layers = c.hidden_dim, c.fc_num_layers
        self.fc_num_atoms = ReLUMLP(d, h, layers, c.max_atoms + 1, rngs=rngs)
        self.fc_lattice = ReLUMLP(d, h, layers, 6, rngs=rngs)
        self.fc_composition = ReLUMLP(d, h, layers, c.num_types, rngs=rngs)
        self.fc_property = ReLUMLP(d, h, layers, 1, rngs=rngs) if c.predict_property else None
        self.decoder = PeriodicDecoder(
            c.num_types,
            d + (1 if c.coord_process == "flow" else 0),  # the flow's time joins the latent
            hidden=c.dec_hidden,
            num_blocks=c.dec_blocks,
            num_rbf=c.num_rbf,
            cutoff=c.cutoff,
            max_neighbors=c.max_neighbors,
            rngs=rngs,
        )
        f32 = jnp.float32
        self.lattice_mean = CDVAEStat(jnp.asarray(stats["lattice_mean"], f32).reshape(6))
        self.lattice_std = CDVAEStat(jnp.asarray(stats["lattice_std"], f32).reshape(6))
        self.property_mean = CDVAEStat(jnp.asarray(stats["property_mean"], f32).reshape(()))
        self.property_std = CDVAEStat(jnp.asarray(stats["property_std"], f32).reshape(()))

    def encode(self, types: Array, frac: Array, lattice: Array, node_mask: Array):
        """``(mu, logvar)``, each [B, latent_dim] (CDVAE ``encode`` before sampling)."""
        hidden = self.encoder(types, frac, lattice, node_mask)
        return self.fc_mu(hidden), self.fc_var(hidden)

    def scale_lattice(self, lattice: Array, num_atoms: Array) -> Array:
        """Standardized ``[lengths / N^(1/3), angles]`` [B, 6] (the lattice target)."""
        n13 = num_atoms.astype(jnp.float32)[:, None] ** (1.0 / 3.0)
        x = jnp.concatenate([lattice[:, :3] / n13, lattice[:, 3:]], -1)
        return (x - self.lattice_mean[...]) / self.lattice_std[...]

    def unscale_lattice(self, scaled: Array, num_atoms: Array) -> Array:
        """Lattice parameters [B, 6] from standardized head outputs (``predict_lattice``)."""
        x = scaled * self.lattice_std[...] + self.lattice_mean[...]
        n13 = num_atoms.astype(jnp.float32)[:, None] ** (1.0 / 3.0)
        return jnp.concatenate([x[:, :3] * n13, x[:, 3:]], -1)

    def decode_stats(self, z: Array, num_atoms: Array | None = None):
        """Atom count, lattice and composition from ``z`` (CDVAE ``decode_stats``).

        Args:
          z: [B, latent_dim].
          num_atoms: [B] counts to scale the lattice with; ``None``: the count head's
            argmax, clipped to 1..max_atoms.

        Returns:
          ``(num_atom_logits [B, max_atoms + 1], num_atoms [B] int32, scaled_lattice
          [B, 6], lattice [B, 6], composition_logits [B, K])``.
        """
        logits = self.fc_num_atoms(z)
        if num_atoms is None:
            num_atoms = jnp.clip(jnp.argmax(logits, -1), 1, self.max_atoms)
        num_atoms = num_atoms.astype(jnp.int32)
        scaled = self.fc_lattice(z)
        lattice = self.unscale_lattice(scaled, num_atoms)
        return logits, num_atoms, scaled, lattice, self.fc_composition(z)

    def predict_property(self, z: Array) -> Array:
        """[B] property in data units (the head's standardized output, unscaled)."""
        if self.fc_property is None:
            raise ValueError("this CDVAE model has no property head (predict_property=False)")
        return self.fc_property(z)[:, 0] * self.property_std[...] + self.property_mean[...]
