"""MLPs: a time-conditioned one for low-dimensional data (the toy recipe, closed-form
studies), the two-layer SiLU block of the graph transformers' feed-forward parts and
CDVAE's ReLU heads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array
from genmodels.nets.embed import sinusoidal_embedding


class TimeMLP(nnx.Module):
    """``f(x, t)``: an MLP on ``[x, emb(t)]`` with SiLU activations.

    Args:
      dim: data dimension (input and output).
      hidden: hidden width.
      depth: number of hidden layers.
      time_dim: size of the sinusoidal time embedding.
      time_scale: ``t`` is multiplied by this before embedding (``t`` in [0, 1] needs
        a large scale for the sinusoids to vary).
      rngs: parameter initialization keys.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        depth: int = 3,
        time_dim: int = 32,
        time_scale: float = 1000.0,
        *,
        rngs: nnx.Rngs,
    ):
        self.time_dim = time_dim
        self.time_scale = time_scale
        sizes = [dim + time_dim] + [hidden] * depth
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = nnx.Linear(hidden, dim, rngs=rngs)

    def __call__(self, x: Array, t: Array) -> Array:
        # x [B, D], t [B]
        h = jnp.concatenate([x, sinusoidal_embedding(t * self.time_scale, self.time_dim)], -1)
        for layer in self.layers:
            h = jax.nn.silu(layer(h))
        return self.out(h)


class SiLUMLP(nnx.Module):
    """``Linear -> SiLU -> Linear`` (the feed-forward block of the graph transformers).

    Args:
      din, dhid, dout: input, hidden and output widths.
      rngs: parameter initialization keys.
    """

    def __init__(self, din: int, dhid: int, dout: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(din, dhid, rngs=rngs)
        self.l2 = nnx.Linear(dhid, dout, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        # x [..., din] -> [..., dout]
        return self.l2(jax.nn.silu(self.l1(x)))


class ReLUMLP(nnx.Module):
    """``Linear-ReLU``, ``(Linear-ReLU) x (layers - 1)``, ``Linear`` (CDVAE ``build_mlp``).

    Parameters live under ``hidden.<i>`` and ``out`` (CDVAE checkpoints rely on the names).

    Args:
      din, hidden, dout: input, hidden and output widths.
      layers: hidden ``Linear-ReLU`` layers (at least 1).
      rngs: parameter initialization keys.
    """

    def __init__(self, din: int, hidden: int, layers: int, dout: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.List(
            [nnx.Linear(din, hidden, rngs=rngs)]
            + [nnx.Linear(hidden, hidden, rngs=rngs) for _ in range(layers - 1)]
        )
        self.out = nnx.Linear(hidden, dout, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        # x [..., din] -> [..., dout]
        for lin in self.hidden:
            x = jax.nn.relu(lin(x))
        return self.out(x)
