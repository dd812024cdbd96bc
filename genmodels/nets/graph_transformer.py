"""A small dense graph transformer for categorical graphs (masked / discrete diffusion).

Inputs are token graphs: node tokens ``a`` [B, N] in ``{0, ..., K_node}`` and edge tokens
``b`` [B, N, N] in ``{0, ..., K_edge}`` (the last id of each is the mask token of
absorbing-state diffusion), a node mask ``m`` [B, N] and optionally the diffusion time
``t`` [B]. The layer follows the graph transformer of DiGress (Vignac et al., ICLR 2023,
Sec. 4 / App. B.1): edge features modulate the attention logits (FiLM) and the edges are
updated from the node pair and the modulated logits. With hidden sizes ``d_x`` (nodes),
``d_e`` (edges), ``H`` heads of size ``d = d_x / H``:

Embedding::

    h_i^0  = E_node[a_i] + w_n (n / c) (+ W_t phi(t))          # [B, N, d_x]
    e_ij^0 = E_edge[b_ij] for i != j, E_edge[self] on i == j    # [B, N, N, d_e]

with ``n = sum_i m_i`` the node count, ``c`` a fixed scale (``size_scale``) and ``phi``
a sinusoidal time embedding (only with ``time_conditioning``). Layer ``l`` (all ``(i, j)``
with ``m_i m_j = 1``)::

    q_i, k_i, v_i = W_q h_i, W_k h_i, W_v h_i                      # H heads of size d
    (mu_ij, beta_ij) = W_e e_ij                                     # [H] each
    s_ij = (q_i . k_j) / sqrt(d) * (1 + mu_ij) + beta_ij            # [B, N, N, H]
    alpha_ij = softmax_{j: m_j = 1}(s_ij)
    h_i <- LN(h_i + W_o concat_heads(sum_j alpha_ij v_j))
    h_i <- LN(h_i + FFN(h_i))
    e_ij <- LN(e_ij + W_2 SiLU(W_1 [e_ij, s_ij] + P h_i + Q h_j))

Outputs: node logits ``MLP_x(h_i)`` [B, N, K_node] and symmetric edge logits
``(L_ij + L_ji) / 2`` with ``L_ij = MLP_e(e_ij)`` [B, N, N, K_edge]; logits cover the real
categories only (no mask logit: MDLM's SUBS parameterization).

Properties: permutation-equivariant (every map is per node, per pair or a masked sum over
nodes); padded nodes and pairs are zeroed after every layer and excluded from every
softmax, so the outputs on real nodes do not depend on padded tokens or on N; padded
outputs are 0. With ``time_conditioning=False`` the time argument is ignored: the
masked-diffusion posterior is time-agnostic (Zheng et al. 2024; MDLM trains without time
conditioning by default).

Departures from DiGress: no global features ``y`` and no extra structural features
(cycles, spectrum); the attention is the usual dot product per head (DiGress keeps one
score per channel); the node count enters as ``n / c``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.nets.embed import sinusoidal_embedding
from genmodels.nets.mlp import SiLUMLP

Array = jax.Array

__all__ = ["GraphTransformer", "GraphTransformerConfig", "GraphTransformerLayer"]

# Logit of a padded key: finite (a fully padded row stays NaN-free), exp() underflows to 0.
_NEG = -1e9


class GraphTransformerLayer(nnx.Module):
    """One layer of the module docstring: edge-modulated attention, node FFN, edge update.

    Args:
      dx: node width d_x (divisible by ``heads``).
      de: edge width d_e.
      heads: H.
      ffn_x: hidden width of the node FFN.
      ffn_e: hidden width of the edge update.
      rngs: parameter RNGs.
    """

    def __init__(self, dx: int, de: int, heads: int, ffn_x: int, ffn_e: int, *, rngs: nnx.Rngs):
        if dx % heads:
            raise ValueError(f"node width {dx} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nnx.Linear(dx, 3 * dx, rngs=rngs)
        self.film = nnx.Linear(de, 2 * heads, rngs=rngs)
        self.out = nnx.Linear(dx, dx, rngs=rngs)
        self.ln_att = nnx.LayerNorm(dx, rngs=rngs)
        self.ffn = SiLUMLP(dx, ffn_x, dx, rngs=rngs)
        self.ln_ffn = nnx.LayerNorm(dx, rngs=rngs)
        self.e_in = nnx.Linear(de + heads, ffn_e, rngs=rngs)
        self.e_pq = nnx.Linear(dx, 2 * ffn_e, use_bias=False, rngs=rngs)
        self.e_out = nnx.Linear(ffn_e, de, rngs=rngs)
        self.ln_e = nnx.LayerNorm(de, rngs=rngs)

    def __call__(self, h: Array, e: Array, node_mask: Array) -> tuple[Array, Array]:
        """Args: h [B, N, dx], e [B, N, N, de], node_mask [B, N] (1 real, 0 padding).

        Returns: ``(h, e)`` of the same shapes, zero on padding.
        """
        b, n, dx = h.shape
        hd = dx // self.heads
        m = node_mask.astype(h.dtype)
        pair = m[:, :, None] * m[:, None, :]  # [B, N, N]
        q, k, v = jnp.split(self.qkv(h).reshape(b, n, 3, self.heads, hd), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]  # [B, N, H, hd]
        mu, beta = jnp.split(self.film(e), 2, axis=-1)  # [B, N, N, H] each
        s = jnp.einsum("bihd,bjhd->bijh", q, k) / jnp.sqrt(float(hd))
        s = s * (1.0 + mu) + beta  # [B, N, N, H]
        logits = jnp.where(m[:, None, :, None] > 0, s, _NEG)
        att = jax.nn.softmax(logits, axis=2)  # over keys j
        o = jnp.einsum("bijh,bjhd->bihd", att, v).reshape(b, n, dx)
        h = self.ln_att(h + self.out(o))
        h = self.ln_ffn(h + self.ffn(h)) * m[..., None]
        p, qn = jnp.split(self.e_pq(h), 2, axis=-1)  # [B, N, ffn_e] each
        u = self.e_in(jnp.concatenate([e, s], axis=-1)) + p[:, :, None] + qn[:, None, :]
        e = self.ln_e(e + self.e_out(jax.nn.silu(u))) * pair[..., None]
        return h, e


class GraphTransformer(nnx.Module):
    """Dense graph transformer over node and edge tokens (see the module docstring).

    Args:
      node_vocab: K_node + 1 (real node classes plus the mask id K_node).
      edge_vocab: K_edge + 1 (real edge classes plus the mask id K_edge).
      dx, de: node and edge widths.
      heads: attention heads.
      layers: number of layers L.
      ffn_x, ffn_e: hidden widths of the node FFN and the edge update.
      time_conditioning: add an embedding of ``t`` to the inputs; ``False`` ignores ``t``.
      time_scale: ``t`` in [0, 1] is multiplied by this before the sinusoidal embedding.
      size_scale: the node count enters as ``n / size_scale`` (a constant, not the padded
        size N, so that the outputs do not depend on the padding).
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        node_vocab: int,
        edge_vocab: int,
        *,
        dx: int = 64,
        de: int = 32,
        heads: int = 4,
        layers: int = 4,
        ffn_x: int = 128,
        ffn_e: int = 64,
        time_conditioning: bool = False,
        time_scale: float = 1000.0,
        size_scale: float = 10.0,
        rngs: nnx.Rngs,
    ):
        self.node_vocab, self.edge_vocab = node_vocab, edge_vocab
        self.size_scale = size_scale
        self.time_conditioning = time_conditioning
        self.time_scale = time_scale
        self.node_embed = nnx.Embed(node_vocab, dx, rngs=rngs)
        # one extra edge id for the diagonal ("self" pair), which is no real token
        self.edge_embed = nnx.Embed(edge_vocab + 1, de, rngs=rngs)
        self.size_embed = nnx.Param(jnp.zeros((dx,)))
        if time_conditioning:
            self.time_x = SiLUMLP(dx, dx, dx, rngs=rngs)
            self.time_e = nnx.Linear(dx, de, rngs=rngs)
        self.blocks = nnx.List(
            [GraphTransformerLayer(dx, de, heads, ffn_x, ffn_e, rngs=rngs) for _ in range(layers)]
        )
        self.head_x = SiLUMLP(dx, dx, node_vocab - 1, rngs=rngs)
        self.head_e = SiLUMLP(de, de, edge_vocab - 1, rngs=rngs)

    def __call__(
        self,
        nodes: Array,
        edges: Array,
        node_mask: Array,
        t: Array | None = None,
    ) -> tuple[Array, Array]:
        """Logits of the clean tokens.

        Args:
          nodes: int [B, N] node tokens in ``[0, node_vocab)``.
          edges: int [B, N, N] edge tokens in ``[0, edge_vocab)``; the diagonal is ignored,
            the upper and lower triangles are read as given.
          node_mask: [B, N], 1 for real nodes and 0 for padding.
          t: [B] times; required with ``time_conditioning``, ignored otherwise.

        Returns:
          ``(node_logits [B, N, K_node], edge_logits [B, N, N, K_edge])`` with the edge
          logits symmetric in (i, j); zero on padded nodes and pairs.
        """
        b, n = nodes.shape
        m = node_mask.astype(jnp.float32)
        pair = m[:, :, None] * m[:, None, :]  # [B, N, N]
        diag = jnp.eye(n, dtype=bool)
        nodes = jnp.where(m > 0, nodes, 0).astype(jnp.int32)
        edges = jnp.where(pair > 0, edges, 0).astype(jnp.int32)
        edges = jnp.where(diag, self.edge_vocab, edges)  # the "self" id on i == j
        h = self.node_embed(nodes)  # [B, N, dx]
        size = jnp.sum(m, axis=1) / self.size_scale  # [B]
        h = h + size[:, None, None] * self.size_embed[...]
        e = self.edge_embed(edges)  # [B, N, N, de]
        if self.time_conditioning:
            if t is None:
                raise ValueError("this GraphTransformer is time-conditioned: pass t [B]")
            dx = h.shape[-1]
            temb = self.time_x(sinusoidal_embedding(jnp.asarray(t) * self.time_scale, dx))
            h = h + temb[:, None, :]
            e = e + self.time_e(temb)[:, None, None, :]
        h = h * m[..., None]
        e = e * pair[..., None]
        for block in self.blocks:
            h, e = block(h, e, node_mask)
        node_logits = self.head_x(h) * m[..., None]  # [B, N, K_node]
        edge_logits = self.head_e(e)  # [B, N, N, K_edge]
        edge_logits = 0.5 * (edge_logits + jnp.swapaxes(edge_logits, 1, 2))
        return node_logits, edge_logits * pair[..., None]


@dataclass(frozen=True)
class GraphTransformerConfig:
    """Sizes of a :class:`GraphTransformer` (vocabularies come from the method).

    Attributes:
      dx, de: node and edge widths.
      heads: attention heads (divides ``dx``).
      layers: number of layers.
      ffn_x, ffn_e: hidden widths of the node FFN and the edge update.
      time_scale: multiplier of ``t`` before the sinusoidal embedding.
      size_scale: the node count enters the embedding as ``n / size_scale``.
    """

    dx: int = 64
    de: int = 32
    heads: int = 4
    layers: int = 4
    ffn_x: int = 128
    ffn_e: int = 64
    time_scale: float = 1000.0
    size_scale: float = 10.0

    def make(
        self, node_vocab: int, edge_vocab: int, time_conditioning: bool, rngs: nnx.Rngs
    ) -> GraphTransformer:
        """The network for ``node_vocab`` / ``edge_vocab`` tokens (mask ids included)."""
        return GraphTransformer(
            node_vocab,
            edge_vocab,
            dx=self.dx,
            de=self.de,
            heads=self.heads,
            layers=self.layers,
            ffn_x=self.ffn_x,
            ffn_e=self.ffn_e,
            time_conditioning=time_conditioning,
            time_scale=self.time_scale,
            size_scale=self.size_scale,
            rngs=rngs,
        )
