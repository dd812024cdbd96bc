"""A crystal property regressor: the periodic encoder followed by a ReLU MLP head.

For a crystal with atom classes ``k_i``, fractional coordinates ``f_i`` and lattice ``L``::

    h = PeriodicEncoder(k, f, L)        # [B, H], mean-pooled atom features (DimeNet++-like)
    y = MLP_ReLU(h)                     # [B], the standardized property

It plays the part of CDVAE's property model (txie-93/cdvae ``CrystGNN_Supervise`` with
``conf/model/encoder/dimenet.yaml``, ``num_targets: 1``; checkpoints in
``cdvae/prop_models/<dataset>``), which scores generated crystals for the property
Wasserstein distance and the optimisation success rates. There the DimeNet++ output blocks
are the head; here a separate head follows the encoder's linear output.
"""

from __future__ import annotations

from dataclasses import dataclass

from flax import nnx

from genmodels.core.types import Array
from genmodels.nets.mlp import ReLUMLP
from genmodels.nets.periodic import PeriodicEncoder

__all__ = ["PropertyNet", "PropertyNetConfig"]


@dataclass(frozen=True)
class PropertyNetConfig:
    """Sizes of a :class:`PropertyNet` (reference: DimeNet++ width 128, 4 blocks, 20
    neighbours, cutoff 7 A).

    Attributes:
      num_types: atom classes (class ``k`` is atomic number ``k + 1``).
      hidden: encoder width; num_blocks: its interaction blocks.
      num_rbf, cutoff, max_neighbors: radial basis size, graph radius (A), neighbours.
      head_hidden, head_layers: width of the encoder output and the head's hidden layers.
    """

    num_types: int = 100
    hidden: int = 64
    num_blocks: int = 2
    num_rbf: int = 6
    cutoff: float = 7.0
    max_neighbors: int = 12
    head_hidden: int = 128
    head_layers: int = 2

    def make(self, *, rngs: nnx.Rngs) -> PropertyNet:
        """A freshly initialised :class:`PropertyNet` of these sizes."""
        return PropertyNet(self, rngs=rngs)


class PropertyNet(nnx.Module):
    """``(types, frac, lattice, node_mask) -> [B]`` standardized property (module docstring).

    Args:
      config: the sizes.
      rngs: parameter RNGs.
    """

    def __init__(self, config: PropertyNetConfig, *, rngs: nnx.Rngs):
        c = config
        self.encoder = PeriodicEncoder(
            c.num_types, hidden=c.hidden, out_dim=c.head_hidden, num_blocks=c.num_blocks,
            num_rbf=c.num_rbf, cutoff=c.cutoff, max_neighbors=c.max_neighbors, rngs=rngs,
        )  # fmt: skip
        self.head = ReLUMLP(c.head_hidden, c.head_hidden, c.head_layers, 1, rngs=rngs)

    def __call__(self, types: Array, frac: Array, lattice: Array, node_mask: Array) -> Array:
        """Predict the standardized property.

        Args:
          types: [B, N] int classes; frac: [B, N, 3]; lattice: [B, 6] (A, degrees);
            node_mask: [B, N], 1 on real atoms.

        Returns:
          [B] standardized predictions.
        """
        return self.head(self.encoder(types, frac, lattice, node_mask))[:, 0]
