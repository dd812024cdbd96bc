"""Masked diffusion over crystal atom types: composition generation.

The method of :mod:`genmodels.models.mdm` on a crystal data set's compositions
(:class:`~genmodels.models.tasks.compositions.CompositionTask`) with one token per atom:
the leaf ``types`` [B, N] of element indices (mask id ``K``), padded beyond the atom count
drawn from the training crystals. The network, a
:class:`~genmodels.nets.set_transformer.SetTransformer`, is permutation equivariant, so
the model is a distribution over multisets of elements; ``fhs`` makes ``n`` network calls
for the batch's largest crystal. Lattice and coordinates are not modelled (CDVAE-style
generators produce them jointly with the atom types).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from flax import nnx
from jax.scipy.special import gammaln

from genmodels.core.types import Array, Context, State
from genmodels.models.mdm import MDM, MDMConfig
from genmodels.models.tasks.compositions import CompositionTask
from genmodels.nets.set_transformer import SetTransformer, SetTransformerConfig
from genmodels.nets.tokens import MDMCrystalNet

__all__ = [
    "MDMCrystalConfig",
    "MDMCrystalNet",
    "MDMCrystals",
    "SetTransformer",
    "SetTransformerConfig",
]


@dataclass(frozen=True)
class MDMCrystalConfig(MDMConfig):
    """A masked-diffusion recipe for crystal compositions (shared fields:
    :class:`~genmodels.models.mdm.MDMConfig`).

    Attributes:
      dataset: ``perov_5``, ``carbon_24``, ``mp_20`` or a user's path (with ``data``; its
        ``train`` and ``test`` splits, its elements the vocabulary).
      train_split: split trained on (its atom counts are sampled, its largest count is N).
      eval_split: default reference split of ``evaluate``.
      train_limit, eval_limit: load only the first rows of the training / other splits.
      elements: the vocabulary as element symbols; ``None``: every element present in
        ``train_split`` and ``eval_split``, sorted by atomic number.
      net: set-transformer sizes.
    """

    dataset: str = "perov_5"
    train_split: str = "train"
    eval_split: str = "test"
    train_limit: int | None = None
    eval_limit: int | None = None
    elements: tuple[str, ...] | None = None
    net: SetTransformerConfig = field(default_factory=SetTransformerConfig)
    sample_steps: int = 100
    sample_batch: int = 1000

    def build(self) -> MDMCrystals:
        return MDMCrystals(self)


class MDMCrystals(MDM):
    """Masked diffusion over the atom types of crystals: the leaf ``types`` [B, N]."""

    def __init__(self, config: MDMCrystalConfig):
        c = config
        task = CompositionTask(
            c.dataset, c.train_split, c.eval_split, c.train_limit, c.eval_limit, c.elements, c.data
        )
        super().__init__(config, task)

    @property
    def max_atoms(self) -> int:
        return self.task.max_atoms

    def vocab(self) -> dict[str, int]:
        return {"types": self.task.num_types}

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        return {"types": (batch, self.max_atoms)}

    def token_masks(self, node_mask: Array) -> dict[str, Array]:
        return {"types": node_mask}

    def tokens(self, batch: dict) -> tuple[State, Context]:
        """Args: ``{"types": [B, N]}`` vocabulary indices, -1 on padding (the task's)."""
        types = jnp.asarray(batch["types"]).astype(jnp.int32)
        return {"types": jnp.maximum(types, 0)}, self.context(types >= 0)

    def init_model(self, key: Array) -> MDMCrystalNet:
        c = self.config
        return MDMCrystalNet(c.net, self.task.num_types, c.time_conditioning, rngs=nnx.Rngs(key))

    def loss_metrics(self, loss: Array, per_leaf: dict, x0: State, ctx: Context) -> dict:
        """``nll_per_atom`` (the NELBO over the mean atom count, nats) and
        ``nll_composition``: the NELBO minus the mean ``log(n! / prod_e n_e!)``, a bound on
        the composition's NLL (the equivariant model spreads a composition's probability
        evenly over its distinct orderings)."""
        m = ctx["node_mask"]  # [B, N]
        natoms = jnp.sum(m, axis=1)  # [B]
        counts = jnp.sum(jax.nn.one_hot(x0["types"], self.task.num_types) * m[..., None], 1)
        log_orders = gammaln(natoms + 1.0) - jnp.sum(gammaln(counts + 1.0), axis=1)  # [B]
        return {
            "nll_per_atom": loss / jnp.mean(natoms),
            "nll_composition": loss - jnp.mean(log_orders),
        }
