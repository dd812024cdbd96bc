"""A permutation-equivariant set transformer over padded token sets (no positions).

Used by masked diffusion over crystal compositions: a crystal's atoms are a multiset of
element tokens, so the network must not see an order.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array
from genmodels.nets.embed import sinusoidal_embedding
from genmodels.nets.mlp import SiLUMLP

__all__ = ["SetBlock", "SetTransformer", "SetTransformerConfig"]

# Logit of a padded key: finite (a fully padded row stays NaN-free), exp() underflows to 0.
_NEG = -1e9


class SetBlock(nnx.Module):
    """Pre-LN transformer block over a padded set: ``h <- h + W_o MHA(LN(h))`` with keys
    restricted to ``m_j = 1``, then ``h <- h + FFN(LN(h))``; padded rows are zeroed.

    Args:
      dim: width (divisible by ``heads``).
      heads: attention heads.
      ffn: hidden width of the FFN.
      rngs: parameter RNGs.
    """

    def __init__(self, dim: int, heads: int, ffn: int, *, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.ln_att = nnx.LayerNorm(dim, rngs=rngs)
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.out = nnx.Linear(dim, dim, rngs=rngs)
        self.ln_ffn = nnx.LayerNorm(dim, rngs=rngs)
        self.ffn = SiLUMLP(dim, ffn, dim, rngs=rngs)

    def __call__(self, h: Array, mask: Array) -> Array:
        """Args: h [B, N, D], mask [B, N] (1 real, 0 padding). Returns [B, N, D]."""
        b, n, d = h.shape
        hd = d // self.heads
        m = mask.astype(h.dtype)
        qkv = self.qkv(self.ln_att(h)).reshape(b, n, 3, self.heads, hd)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, N, H, hd]
        s = jnp.einsum("bihd,bjhd->bijh", q, k) / jnp.sqrt(float(hd))  # [B, N, N, H]
        s = jnp.where(m[:, None, :, None] > 0, s, _NEG)
        att = jax.nn.softmax(s, axis=2)  # over keys j
        o = jnp.einsum("bijh,bjhd->bihd", att, v).reshape(b, n, d)
        h = h + self.out(o)
        h = h + self.ffn(self.ln_ffn(h))
        return h * m[..., None]


class SetTransformer(nnx.Module):
    """``(tokens [B, N], mask [B, N], t [B]) -> logits [B, N, K]`` over the K real
    categories (SUBS: no mask logit).

    Embedding ``h_i = E[x_i] + w_n (n / c) (+ MLP(phi(t)))`` with ``n`` the number of real
    elements, ``c`` a fixed scale and ``phi`` a sinusoidal embedding (only with
    ``time_conditioning``); then ``layers`` :class:`SetBlock` s, a final LayerNorm and an
    MLP head. Every map is per element or a masked sum over elements, so permuting the
    real elements permutes the outputs, and outputs on real elements depend neither on the
    padded tokens nor on N. Padded outputs are 0.

    Args:
      vocab: K + 1 (real categories plus the mask id K).
      dim, heads, layers, ffn: sizes.
      time_conditioning: add an embedding of ``t``; ``False`` ignores ``t``.
      time_scale: ``t`` in [0, 1] is multiplied by this before the sinusoidal embedding.
      size_scale: the element count enters as ``n / size_scale``.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        vocab: int,
        *,
        dim: int = 64,
        heads: int = 4,
        layers: int = 3,
        ffn: int = 128,
        time_conditioning: bool = False,
        time_scale: float = 1000.0,
        size_scale: float = 10.0,
        rngs: nnx.Rngs,
    ):
        self.vocab = vocab
        self.time_conditioning = time_conditioning
        self.time_scale = time_scale
        self.size_scale = size_scale
        self.embed = nnx.Embed(vocab, dim, rngs=rngs)
        self.size_embed = nnx.Param(jnp.zeros((dim,)))
        if time_conditioning:
            self.time_mlp = SiLUMLP(dim, dim, dim, rngs=rngs)
        self.blocks = nnx.List([SetBlock(dim, heads, ffn, rngs=rngs) for _ in range(layers)])
        self.ln_out = nnx.LayerNorm(dim, rngs=rngs)
        self.head = SiLUMLP(dim, dim, vocab - 1, rngs=rngs)

    def __call__(self, tokens: Array, mask: Array, t: Array | None = None) -> Array:
        """Logits of the clean tokens.

        Args:
          tokens: int [B, N] in ``[0, vocab)``.
          mask: [B, N], 1 for real elements and 0 for padding.
          t: [B] times; required with ``time_conditioning``, ignored otherwise.

        Returns:
          [B, N, vocab - 1] logits, zero on padding.
        """
        m = mask.astype(jnp.float32)
        tokens = jnp.where(m > 0, tokens, 0).astype(jnp.int32)
        h = self.embed(tokens)  # [B, N, D]
        size = jnp.sum(m, axis=1) / self.size_scale  # [B]
        h = h + size[:, None, None] * self.size_embed[...]
        if self.time_conditioning:
            if t is None:
                raise ValueError("this SetTransformer is time-conditioned: pass t [B]")
            temb = sinusoidal_embedding(jnp.asarray(t) * self.time_scale, h.shape[-1])
            h = h + self.time_mlp(temb)[:, None, :]
        h = h * m[..., None]
        for block in self.blocks:
            h = block(h, m)
        return self.head(self.ln_out(h)) * m[..., None]


@dataclass(frozen=True)
class SetTransformerConfig:
    """Sizes of a :class:`SetTransformer` (the vocabulary comes from the method).

    Attributes:
      dim: token width.
      heads: attention heads (divides ``dim``).
      layers: number of blocks.
      ffn: FFN hidden width.
      time_scale: multiplier of ``t`` before the sinusoidal embedding.
      size_scale: the atom count enters the embedding as ``n / size_scale``.
    """

    dim: int = 64
    heads: int = 4
    layers: int = 3
    ffn: int = 128
    time_scale: float = 1000.0
    size_scale: float = 10.0

    def make(self, vocab: int, time_conditioning: bool, rngs: nnx.Rngs) -> SetTransformer:
        """The network for ``vocab`` tokens (mask id included)."""
        return SetTransformer(
            vocab,
            dim=self.dim,
            heads=self.heads,
            layers=self.layers,
            ffn=self.ffn,
            time_conditioning=time_conditioning,
            time_scale=self.time_scale,
            size_scale=self.size_scale,
            rngs=rngs,
        )
