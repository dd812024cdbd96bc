"""The higher-order graph transformer of PARD: attention layers interleaved with PPGN blocks.

PARD (Zhao et al., NeurIPS 2024) generates a graph block by block; its denoiser works on
dense node features ``X`` [B, N, C] and edge features ``E`` [B, N, N, C_e] and alternates a
transformer block (nodes attend to nodes, edges steer the attention and carry values) with a
PPGN block (Maron et al. 2019: an edge update by a channel-wise matrix product, which is as
expressive as the 3-WL test). Every block is pre-norm with residual updates. A boolean
``edge_mask`` [B, N, N] marks the real pairs; an optional ``causal`` [B, N, N] mask (``i``
may read ``j``, see :func:`causal_block_mask`) makes the network autoregressive over blocks.

Masks: with a causal mask the pair mask becomes ``M = edge_mask & (causal | causal^T)``;
the node mask is ``m_i = any_j M_ij``; the attention mask is ``A = causal`` (or ``M``
without one). ``LN`` below is LayerNorm followed by the mask of its position.

Transformer block (``H`` heads of size ``d = C / H``)::

    x~ = LN(X),  e~ = LN(E)
    (a_i, b_i) = W_qk x~_i,   (p_ij, r_ij) = U_qk e~_ij             # C_e channels each
    s_ij  = a_i + b_j
    f_ij  = SiLU(r_ij + SiLU(s_ij) * p_ij + s_ij) M_ij              # [B, N, N, C_e]
    E_ij <- E_ij + W_oe f_ij M_ij
    alpha_ij^h = softmax_{j: A_ij}(w_h . f_ij)                      # 0 on masked rows
    y_i^h = sum_j alpha_ij^h (V x~_j m_j + V' f_ij M_ij)^h           # [B, N, H, d]
    X_i <- X_i + W_o concat_h(y_i^h) m_i
    X_i <- X_i + MLP(LN(X)_i) m_i                                    # hidden 2C

PPGN block on the edges::

    e~ = LN(E)
    u = SiLU(MLP_1([e~, e~^T])) M,    v = SiLU(MLP_2(e~)) M         # [B, N, N, C_e]
    P_ij = sum_{k: A_ik or A_jk} u_ik v_kj                          # per channel
    E_ij <- E_ij + W_p P_ij M_ij
    E_ij <- E_ij + MLP_3(LN(E)_ij) M_ij                              # hidden 2 C_e

(``[e~, e~^T]`` only with ``add_transpose``; without a causal mask ``P = u @ v`` over every
``k``.) The restricted product is computed as ``(u * A) @ v + (u * (1 - A)) @ (v * A^T)``,
i.e. two batched einsums. The network ends with ``X <- MLP(LN(X)) m`` and
``E <- MLP(LN(E)) M`` (``Linear -> SiLU -> Linear``, widths C and C_e).

Properties: permutation-equivariant (per node / per pair maps, masked sums over nodes);
padded nodes and pairs are zeroed and never read, so real outputs do not depend on them and
padded outputs are 0. With the block-causal mask, a real node or a pair of real nodes of
block ``b`` only reads real nodes of blocks ``<= b``, and real nodes never read virtual ones.

Departure from the reference code: LayerNorm (per position, then masked) replaces its
masked BatchNorm, whose batch statistics couple the samples of a batch and need running
averages at sampling time. Inputs are channels-last; the reference is channels-first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.nets.embed import sinusoidal_embedding
from genmodels.nets.mlp import SiLUMLP

Array = jax.Array

__all__ = [
    "MonotoneMLP",
    "PPGNBlock",
    "PardHeads",
    "PardNet",
    "PPGNTransformer",
    "PPGNTransformerConfig",
    "PPGNTransformerLayer",
    "causal_block_mask",
    "edge_mask_from_causal",
    "parallel_outputs",
    "prefix_pool",
]

# Logit of a masked key: finite (a fully masked row stays NaN-free), exp() underflows to 0.
_NEG = -1e9


def causal_block_mask(block_id: Array, virtual: Array) -> Array:
    """Which node may read which under block-wise autoregression (PARD).

    Args:
      block_id: int [B, N] block of each node; ``-1`` marks padding.
      virtual: bool [B, N], true for the virtual (to-be-generated) nodes of a block.

    Returns:
      bool [B, N, N]; entry ``(i, j)`` is true iff both nodes are real (``block_id >= 0``)
      and either they share block and virtual flag, or ``j`` is a non-virtual node of an
      earlier block than ``i``.
    """
    bi, bj = block_id[..., :, None], block_id[..., None, :]
    vi, vj = virtual[..., :, None], virtual[..., None, :]
    real = (bi >= 0) & (bj >= 0)
    same = (bi == bj) & (vi == vj)
    earlier = (bi > bj) & ~vj
    return real & (same | earlier)


def edge_mask_from_causal(causal: Array) -> Array:
    """The symmetric pair mask ``causal | causal^T`` ([..., N, N] bool)."""
    return causal | jnp.swapaxes(causal, -1, -2)


class PPGNTransformerLayer(nnx.Module):
    """The transformer block of the module docstring (pre-norm, residual).

    Args:
      dx: node width C (divisible by ``heads``).
      de: edge width C_e.
      heads: H.
      rngs: parameter RNGs.
    """

    def __init__(self, dx: int, de: int, heads: int, *, rngs: nnx.Rngs):
        if dx % heads:
            raise ValueError(f"node width {dx} is not divisible by {heads} heads")
        self.heads = heads
        self.ln_x = nnx.LayerNorm(dx, rngs=rngs)
        self.ln_e = nnx.LayerNorm(de, rngs=rngs)
        self.ln_ffn = nnx.LayerNorm(dx, rngs=rngs)
        self.qk_node = nnx.Linear(dx, 2 * de, rngs=rngs)
        self.qk_edge = nnx.Linear(de, 2 * de, rngs=rngs)
        self.v_node = nnx.Linear(dx, dx, rngs=rngs)
        self.v_edge = nnx.Linear(de, dx, rngs=rngs)
        self.o_node = nnx.Linear(dx, dx, rngs=rngs)
        self.o_edge = nnx.Linear(de, de, rngs=rngs)
        self.att = nnx.Linear(de, heads, rngs=rngs)
        self.ffn = SiLUMLP(dx, 2 * dx, dx, rngs=rngs)

    def __call__(
        self, x: Array, e: Array, pair: Array, node: Array, att_mask: Array
    ) -> tuple[Array, Array]:
        """Args: x [B, N, C], e [B, N, N, C_e]; float masks pair [B, N, N], node [B, N];
        bool att_mask [B, N, N] (row i: the keys j that i reads).

        Returns: ``(x, e)`` of the same shapes.
        """
        b, n, dx = x.shape
        hd = dx // self.heads
        pm, nm = pair[..., None], node[..., None]
        xn = self.ln_x(x) * nm  # [B, N, C]
        xq, xk = jnp.split(self.qk_node(xn), 2, axis=-1)  # [B, N, C_e] each
        en = self.ln_e(e) * pm  # [B, N, N, C_e]
        eq, ek = jnp.split(self.qk_edge(en), 2, axis=-1)  # [B, N, N, C_e] each
        s = xq[:, :, None, :] + xk[:, None, :, :]  # [B, N, N, C_e]
        f = jax.nn.silu(ek + jax.nn.silu(s) * eq + s) * pm  # [B, N, N, C_e]
        e = e + self.o_edge(f) * pm

        logits = jnp.where(att_mask[..., None], self.att(f), _NEG)  # [B, N, N, H]
        att = jax.nn.softmax(logits, axis=2) * att_mask[..., None]  # over keys j
        xv = (self.v_node(xn) * nm).reshape(b, n, self.heads, hd)  # [B, N, H, d]
        ev = (self.v_edge(f) * pm).reshape(b, n, n, self.heads, hd)  # [B, N, N, H, d]
        y = jnp.einsum("bijh,bjhd->bihd", att, xv) + jnp.einsum("bijh,bijhd->bihd", att, ev)
        x = x + self.o_node(y.reshape(b, n, dx)) * nm
        x = x + self.ffn(self.ln_ffn(x) * nm) * nm
        return x, e


class PPGNBlock(nnx.Module):
    """The PPGN block of the module docstring (pre-norm, residual), on the edges only.

    Args:
      de: edge width C_e.
      add_transpose: feed ``[e~, e~^T]`` to the first branch.
      rngs: parameter RNGs.
    """

    def __init__(self, de: int, add_transpose: bool = True, *, rngs: nnx.Rngs):
        self.add_transpose = add_transpose
        self.ln1 = nnx.LayerNorm(de, rngs=rngs)
        self.ln2 = nnx.LayerNorm(de, rngs=rngs)
        self.mlp1 = SiLUMLP((2 if add_transpose else 1) * de, de, de, rngs=rngs)
        self.mlp2 = SiLUMLP(de, de, de, rngs=rngs)
        self.lin = nnx.Linear(de, de, rngs=rngs)
        self.mlp3 = SiLUMLP(de, 2 * de, de, rngs=rngs)

    def __call__(self, e: Array, pair: Array, causal: Array | None) -> Array:
        """Args: e [B, N, N, C_e]; float pair mask [B, N, N]; bool causal [B, N, N] or None.

        Returns: ``e`` of the same shape.
        """
        pm = pair[..., None]
        en = self.ln1(e) * pm
        u_in = jnp.concatenate([en, jnp.swapaxes(en, 1, 2)], -1) if self.add_transpose else en
        u = jax.nn.silu(self.mlp1(u_in)) * pm  # [B, N, N, C_e], u_ik
        v = jax.nn.silu(self.mlp2(en)) * pm  # [B, N, N, C_e], v_kj
        if causal is None:
            prod = jnp.einsum("bikc,bkjc->bijc", u, v)
        else:
            # sum over k with A_ik or A_jk: (u A) v + (u (1 - A)) (v A^T)
            a = causal.astype(e.dtype)[..., None]  # A_ik on u's (i, k)
            at = jnp.swapaxes(a, 1, 2)  # A_jk on v's (k, j)
            prod = jnp.einsum("bikc,bkjc->bijc", u * a, v)
            prod = prod + jnp.einsum("bikc,bkjc->bijc", u * (1.0 - a), v * at)
        e = e + self.lin(prod) * pm
        e = e + self.mlp3(self.ln2(e) * pm) * pm
        return e


class PPGNTransformer(nnx.Module):
    """PARD's PPGN transformer over dense node and edge features (see the module docstring).

    Args:
      hidden: node width C (divisible by ``heads``).
      edge_hidden: edge width C_e.
      layers: number of (transformer, PPGN) layer pairs.
      heads: attention heads.
      add_transpose: the PPGN's first branch also reads the transposed edges.
      transformer_only: leave out the PPGN blocks.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        hidden: int = 256,
        edge_hidden: int = 64,
        *,
        layers: int = 8,
        heads: int = 8,
        add_transpose: bool = True,
        transformer_only: bool = False,
        rngs: nnx.Rngs,
    ):
        self.transformer_only = transformer_only
        self.attn = nnx.List(
            [PPGNTransformerLayer(hidden, edge_hidden, heads, rngs=rngs) for _ in range(layers)]
        )
        self.ppgn = nnx.List(
            []
            if transformer_only
            else [PPGNBlock(edge_hidden, add_transpose, rngs=rngs) for _ in range(layers)]
        )
        self.ln_x = nnx.LayerNorm(hidden, rngs=rngs)
        self.ln_e = nnx.LayerNorm(edge_hidden, rngs=rngs)
        self.head_x = SiLUMLP(hidden, hidden, hidden, rngs=rngs)
        self.head_e = SiLUMLP(edge_hidden, edge_hidden, edge_hidden, rngs=rngs)

    def __call__(
        self, x: Array, e: Array, edge_mask: Array, causal: Array | None = None
    ) -> tuple[Array, Array]:
        """Node and edge features after all layers.

        Args:
          x: [B, N, C] node features.
          e: [B, N, N, C_e] edge features.
          edge_mask: bool [B, N, N], true on real pairs (symmetric).
          causal: bool [B, N, N] or None; ``causal[b, i, j]``: node ``i`` may read node
            ``j`` (e.g. :func:`causal_block_mask`).

        Returns:
          ``(x [B, N, C], e [B, N, N, C_e])``, zero on masked nodes and pairs.
        """
        edge_mask = edge_mask.astype(bool)
        if causal is not None:
            causal = causal.astype(bool)
            edge_mask = edge_mask & edge_mask_from_causal(causal)
        att_mask = edge_mask if causal is None else causal
        node_mask = jnp.any(edge_mask, axis=-1)  # [B, N]
        pair = edge_mask.astype(x.dtype)
        node = node_mask.astype(x.dtype)
        pm, nm = pair[..., None], node[..., None]
        x, e = x * nm, e * pm
        for i, attn in enumerate(self.attn):
            x, e = attn(x, e, pair, node, att_mask)
            if not self.transformer_only:
                e = self.ppgn[i](e, pair, causal)
        x = self.head_x(self.ln_x(x) * nm) * nm
        e = self.head_e(self.ln_e(e) * pm) * pm
        return x, e


@dataclass(frozen=True)
class PPGNTransformerConfig:
    """Sizes of a :class:`PPGNTransformer`, and the options of :class:`PardNet` around it.

    The three PARD options default to the reference (LingxiaoShawn/Pard ``pard/config.py``:
    ``input_residual: True``, ``use_absolute_blockid: True``; ``pard/parallel/task.py``
    builds ``VirtualBlockOutDecoder`` as its output heads).

    Attributes:
      hidden: node width C (divisible by ``heads``).
      edge_hidden: edge width C_e.
      layers: number of (transformer, PPGN) layer pairs.
      heads: attention heads.
      add_transpose: the PPGN's first branch also reads the transposed edges.
      transformer_only: leave out the PPGN blocks.
      output_heads: ``reference`` (:class:`PardHeads`: edges pooled to nodes, nodes
        combined into edges) or ``mlp`` (one MLP per stream on the symmetrized edges).
      input_residual: add ``phi(1 - t/T) onehot(x_t)`` to the logits (:class:`MonotoneMLP`).
      absolute_block_id: embed each node's block id (off for the reference's zinc250k
        and grid configs; the relative block offset on edges is always embedded).
    """

    hidden: int = 256
    edge_hidden: int = 64
    layers: int = 8
    heads: int = 8
    add_transpose: bool = True
    transformer_only: bool = False
    # PardNet's options around the transformer
    output_heads: Literal["reference", "mlp"] = "reference"
    input_residual: bool = True
    absolute_block_id: bool = True

    def __post_init__(self):
        if self.output_heads not in ("reference", "mlp"):
            raise ValueError(f"unknown output_heads {self.output_heads!r}; choose reference or mlp")

    def make(self, rngs: nnx.Rngs) -> PPGNTransformer:
        """The network with these sizes."""
        return PPGNTransformer(
            self.hidden,
            self.edge_hidden,
            layers=self.layers,
            heads=self.heads,
            add_transpose=self.add_transpose,
            transformer_only=self.transformer_only,
            rngs=rngs,
        )


# ------------------------------------------------------------------ PARD's network

# relative block offsets on edges are clipped to [-_REL, _REL]
_REL = 8


class MonotoneMLP(nnx.Module):
    """PARD's ``phi`` of the input residual (the reference's ``MonotonicMLP(128, 2)``)::

        phi(u) = sigmoid(|w_2| . SiLU(|w_1| u + b_1) + b_2)         # R -> (0, 1)

    The absolute values make ``phi`` nondecreasing in ``u`` wherever the hidden
    pre-activations ``|w_1| u + b_1`` exceed -1.28 (SiLU's minimum); with ``u = 1 - t/T``
    in [0, 1] and ``b_1 >= 0`` (weights and biases start as U[0, 1) draws, as in the
    reference) that holds.

    Args:
      hidden: width H of the hidden layer (reference: 128).
      rngs: parameter RNGs.
    """

    def __init__(self, hidden: int = 128, *, rngs: nnx.Rngs):
        k1, k2, k3, k4 = jax.random.split(rngs.params(), 4)
        self.w1 = nnx.Param(jax.random.uniform(k1, (hidden,)))
        self.b1 = nnx.Param(jax.random.uniform(k2, (hidden,)))
        self.w2 = nnx.Param(jax.random.uniform(k3, (hidden,)))
        self.b2 = nnx.Param(jax.random.uniform(k4, ()))

    def __call__(self, u: Array) -> Array:
        """Args: u [...]. Returns: phi(u) [...]."""
        z = jax.nn.silu(u[..., None] * jnp.abs(self.w1[...]) + self.b1[...])  # [..., H]
        return jax.nn.sigmoid(z @ jnp.abs(self.w2[...]) + self.b2[...])


class _NormMLP(nnx.Module):
    """``Linear -> LayerNorm -> SiLU -> Linear`` (the reference's ``MLP`` with a norm)."""

    def __init__(self, din: int, dhid: int, dout: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(din, dhid, rngs=rngs)
        self.ln = nnx.LayerNorm(dhid, rngs=rngs)
        self.l2 = nnx.Linear(dhid, dout, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        # x [..., din] -> [..., dout]
        return self.l2(jax.nn.silu(self.ln(self.l1(x))))


class PardHeads(nnx.Module):
    """PARD's output heads (the reference's ``VirtualBlockOutDecoder`` with its
    ``edge_to_node`` and ``NodeEdgeCombiner``, ``pard/parallel/conditioning.py``).

    With ``A`` the block-causal mask (row ``i``: the nodes ``i`` reads, ``i`` included),
    node mask ``m`` and pair mask ``M = A | A^T``::

        s_i  = [e_ii, sum_j A_ij (e_ij + e_ji) / (2 sum_j A_ij)]       # [B, N, 2 C_e]
        h_i <- SiLU(W_h [s_i, h_i]) m_i                                 # [B, N, C]
        (a_i, b_i) = W_a h_i,   g_ij = W_g e_ij                         # 2 C_e channels each
        u_ij = a_j + b_i
        f_ij = SiLU(u_ij + g_ij + SiLU(W_1 u_ij) * SiLU(W_2 g_ij))       # [B, N, N, 2 C_e]
        f_ij <- (f_ij + f_ji) M_ij
        node logits = MLP_x(h),   edge logits = MLP_e(f)

    with ``MLP = Linear -> LayerNorm -> SiLU -> Linear`` of hidden widths C and C_e (the
    reference normalizes with its masked batch norm there).

    Args:
      c, ce: node and edge widths C, C_e.
      num_node_classes, num_edge_classes: K_node, K_edge.
      rngs: parameter RNGs.
    """

    def __init__(self, c: int, ce: int, num_node_classes: int, num_edge_classes: int, *,
                 rngs: nnx.Rngs):  # fmt: skip
        self.pool = nnx.Linear(2 * ce + c, c, rngs=rngs)
        self.node_pair = nnx.Linear(c, 4 * ce, rngs=rngs)
        self.edge_in = nnx.Linear(ce, 2 * ce, rngs=rngs)
        self.fuse_node = nnx.Linear(2 * ce, 2 * ce, rngs=rngs)
        self.fuse_edge = nnx.Linear(2 * ce, 2 * ce, rngs=rngs)
        self.node_out = _NormMLP(c, c, num_node_classes, rngs=rngs)
        self.edge_out = _NormMLP(2 * ce, ce, num_edge_classes, rngs=rngs)

    def __call__(self, h: Array, e: Array, causal: Array) -> tuple[Array, Array]:
        """Args: h [B, N, C], e [B, N, N, C_e], bool causal [B, N, N] (``A``).

        Returns: logits ``(nodes [B, N, K_node], edges [B, N, N, K_edge])``, the edge
        logits symmetric.
        """
        a = causal.astype(h.dtype)
        pair = jnp.maximum(a, jnp.swapaxes(a, 1, 2))[..., None]  # M  [B, N, N, 1]
        node = (jnp.sum(a, -1) > 0).astype(h.dtype)[..., None]  # m  [B, N, 1]
        h, e = h * node, e * pair
        diag = jnp.diagonal(e, axis1=1, axis2=2).swapaxes(1, 2)  # e_ii  [B, N, C_e]
        both = jnp.einsum("bij,bijc->bic", a, e) + jnp.einsum("bij,bjic->bic", a, e)
        mean = 0.5 * both / jnp.maximum(jnp.sum(a, -1), 1.0)[..., None]  # [B, N, C_e]
        h = jax.nn.silu(self.pool(jnp.concatenate([diag, mean, h], -1))) * node  # [B, N, C]
        pa, pb = jnp.split(self.node_pair(h), 2, axis=-1)  # [B, N, 2 C_e] each
        u = pa[:, None, :, :] + pb[:, :, None, :]  # u_ij = a_j + b_i  [B, N, N, 2 C_e]
        g = self.edge_in(e)  # [B, N, N, 2 C_e]
        f = jax.nn.silu(u + g + jax.nn.silu(self.fuse_node(u)) * jax.nn.silu(self.fuse_edge(g)))
        f = (f + jnp.swapaxes(f, 1, 2)) * pair
        return self.node_out(h), self.edge_out(f)


class PardNet(nnx.Module):
    """The PARD denoiser and next-block head (Zhao et al., NeurIPS 2024).

    Node features are embeddings of the node class, absolute block id (``net.
    absolute_block_id``), block degree, virtual flag and (on virtual nodes only) the step
    ``t``; edge features embed the edge class, the relative block offset and the
    (virtual, virtual) pair type; both go through the block-causal
    :class:`PPGNTransformer`. The output heads (``net.output_heads``: :class:`PardHeads`, or
    one MLP per stream on the symmetrized edges) give clean-class logits, to which the
    input residual (``net.input_residual``, the reference's ``phi_node`` / ``phi_edge``)
    adds

        l(x)_k += phi(1 - t/T) 1{x_t = k}                             (one phi per stream)

    The next-block head reads the mean real-node features of the blocks generated so far
    and predicts the next block's size (``0`` = stop) and, given the size, its degree.

    Args:
      net: PPGN-transformer sizes and the options above.
      num_node_classes, num_edge_classes: K_node, K_edge (edge class 0 = no edge; a
        virtual class, when the process has one, counted in).
      max_blocks: largest block id embedded (larger ids share the last row).
      max_size: largest block size the head can predict.
      max_degree: largest block degree.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        net: PPGNTransformerConfig,
        num_node_classes: int,
        num_edge_classes: int,
        max_blocks: int,
        max_size: int,
        max_degree: int,
        *,
        rngs: nnx.Rngs,
    ):
        c, ce = net.hidden, net.edge_hidden
        self.max_blocks, self.max_size, self.max_degree = max_blocks, max_size, max_degree
        self.num_classes = (num_node_classes, num_edge_classes)
        self.absolute_block_id = net.absolute_block_id
        self.output_heads, self.input_residual = net.output_heads, net.input_residual
        self.node_embed = nnx.Embed(num_node_classes, c, rngs=rngs)
        self.edge_embed = nnx.Embed(num_edge_classes, ce, rngs=rngs)
        if net.absolute_block_id:
            self.block_embed = nnx.Embed(max_blocks + 1, c, rngs=rngs)
        self.degree_embed = nnx.Embed(max_degree + 1, c, rngs=rngs)
        self.virtual_embed = nnx.Embed(2, c, rngs=rngs)
        self.rel_embed = nnx.Embed(2 * _REL + 1, ce, rngs=rngs)
        self.pair_embed = nnx.Embed(4, ce, rngs=rngs)
        self.time_mlp = SiLUMLP(c, c, c, rngs=rngs)
        self.body = net.make(rngs)
        if net.output_heads == "mlp":
            self.node_out = SiLUMLP(c, c, num_node_classes, rngs=rngs)
            self.edge_out = SiLUMLP(ce, ce, num_edge_classes, rngs=rngs)
        else:
            self.out = PardHeads(c, ce, num_node_classes, num_edge_classes, rngs=rngs)
        if net.input_residual:
            self.phi_node, self.phi_edge = MonotoneMLP(rngs=rngs), MonotoneMLP(rngs=rngs)
        self.size_head = SiLUMLP(c + 1, c, max_size + 1, rngs=rngs)
        self.size_embed = nnx.Embed(max_size + 1, c, rngs=rngs)
        self.degree_head = SiLUMLP(c + 1, c, max_degree + 1, rngs=rngs)

    def __call__(
        self,
        nodes: Array,
        edges: Array,
        block_id: Array,
        virtual: Array,
        degree: Array,
        t: Array,
        steps: int,
    ) -> tuple[Array, Array, Array]:
        """Clean-class logits of every node and pair of a (partially virtual) graph.

        Args:
          nodes: [B, M] node classes; edges: [B, M, M] edge classes.
          block_id: [B, M] block of each node (-1: absent).
          virtual: [B, M] bool, the nodes being denoised.
          degree: [B, M] the degree of each node's block.
          t: [B] diffusion steps (read on virtual nodes and by the input residual).
          steps: T (times enter as ``t / T``).

        Returns:
          ``(node_logits [B, M, K_node], edge_logits [B, M, M, K_edge], h [B, M, C])``:
          symmetric edge logits, and the node features the next-block head reads (under
          ``jit`` a caller that reads only ``h`` never computes the logits).
        """
        present = block_id >= 0
        causal = causal_block_mask(block_id, virtual)  # [B, M, M]
        edge_mask = causal | jnp.swapaxes(causal, -1, -2)
        bid = jnp.clip(block_id, 0, self.max_blocks)
        temb = self.time_mlp(sinusoidal_embedding(t / steps * 1000.0, self.node_embed.features))
        h = (
            self.node_embed(nodes)
            + self.degree_embed(jnp.clip(degree, 0, self.max_degree))
            + self.virtual_embed(virtual.astype(jnp.int32))
            + virtual[..., None] * temb[:, None, :]
        )
        if self.absolute_block_id:
            h = h + self.block_embed(bid)
        h = h * present[..., None]
        rel = jnp.clip(bid[:, :, None] - bid[:, None, :], -_REL, _REL) + _REL
        pair = 2 * virtual[:, :, None].astype(jnp.int32) + virtual[:, None, :].astype(jnp.int32)
        e = self.edge_embed(edges) + self.rel_embed(rel) + self.pair_embed(pair)
        e = e * edge_mask[..., None]
        h, e = self.body(h, e, edge_mask, causal)  # [B, M, C], [B, M, M, C_e]

        if self.output_heads == "reference":
            node_logits, edge_logits = self.out(h, e, causal)
        else:
            node_logits = self.node_out(h)
            edge_logits = self.edge_out(0.5 * (e + jnp.swapaxes(e, 1, 2)))
        if self.input_residual:
            u = 1.0 - t / steps  # [B]
            kn, ke = self.num_classes
            node_logits = node_logits + self.phi_node(u)[:, None, None] * jax.nn.one_hot(nodes, kn)
            edge_logits = edge_logits + self.phi_edge(u)[:, None, None, None] * jax.nn.one_hot(
                edges, ke
            )
        return node_logits, edge_logits, h

    def next_size_logits(self, pooled: Array, count: Array) -> Array:
        """[..., max_size + 1] logits of the next block's size from pooled real features."""
        return self.size_head(jnp.concatenate([pooled, count[..., None]], -1))

    def next_degree_logits(self, pooled: Array, count: Array, size: Array) -> Array:
        """[..., max_degree + 1] logits of the next block's degree given its size."""
        z = pooled + self.size_embed(jnp.clip(size, 0, self.max_size))
        return self.degree_head(jnp.concatenate([z, count[..., None]], -1))


def parallel_outputs(
    model: PardNet,
    x0: Array,
    xt: Array,
    e0: Array,
    et: Array,
    block_id: Array,
    block_degree: Array,
    t: Array,
    steps: int,
) -> tuple[Array, Array, Array]:
    """The denoising logits of every block in one pass over the doubled graph.

    Nodes ``0..N-1`` are the clean (real) graph, nodes ``N..2N-1`` its noised (virtual)
    copy; the virtual copy of block ``b`` sees its own block and the real blocks ``< b``
    (:func:`~genmodels.nets.ppgn.causal_block_mask`), so its outputs equal those of a
    sequential pass over the real blocks ``< b`` plus the noised block ``b``.

    Args:
      model: the network.
      x0, xt: [B, N] clean and noised node classes.
      e0, et: [B, N, N] clean and noised edge classes (symmetric).
      block_id: [B, N] blocks (-1: padding); block_degree: [B, Bm].
      t: [B] steps; steps: T.

    Returns:
      ``(node_logits [B, N, K_node], edge_logits [B, P, K_edge], h_real [B, N, C])``:
      each node's and each pair's logits from the block that generates it (a pair belongs
      to the later of its two blocks), and the real nodes' features.
    """
    n = x0.shape[1]
    node_mask = block_id >= 0
    bi, bj = block_id[:, :, None], block_id[:, None, :]
    vv = jnp.where(bi == bj, et, 0)
    vr = jnp.where(bj < bi, et, 0)  # virtual i -> real j of an earlier block
    edges2 = jnp.concatenate(
        [jnp.concatenate([e0, jnp.swapaxes(vr, 1, 2)], 2), jnp.concatenate([vr, vv], 2)], 1
    )  # [B, 2N, 2N]
    nodes2 = jnp.concatenate([x0, xt], 1)
    bid2 = jnp.concatenate([block_id, block_id], 1)
    virt2 = jnp.concatenate([jnp.zeros_like(node_mask), node_mask], 1)
    deg_node = jnp.take_along_axis(block_degree, jnp.maximum(block_id, 0), 1) * node_mask
    deg2 = jnp.concatenate([deg_node, deg_node], 1)
    node_logits, edge_logits, h = model(nodes2, edges2, bid2, virt2, deg2, t, steps)
    same = edge_logits[:, n:, n:]  # (virtual i, virtual j) of one block
    cross = edge_logits[:, n:, :n]  # (virtual i, real j); symmetric logits
    pair = jnp.where(
        (bi == bj)[..., None],
        same,
        jnp.where((bj < bi)[..., None], cross, jnp.swapaxes(cross, 1, 2)),
    )
    iu, ju = np.triu_indices(n, 1)
    return node_logits[:, n:], pair[:, iu, ju], h[:, :n]  # edges: the strict upper triangle


def prefix_pool(h: Array, block_id: Array, num_blocks: int) -> tuple[Array, Array]:
    """Mean real-node features of every prefix ``blocks <= b`` and its node fraction.

    Args:
      h: [B, N, C] real-node features; block_id: [B, N] (-1: padding).
      num_blocks: Bm.

    Returns:
      ``(pooled [B, Bm, C], count [B, Bm])`` with ``count`` = prefix nodes / N.
    """
    n = h.shape[1]
    onehot = jax.nn.one_hot(block_id, num_blocks) * (block_id >= 0)[..., None]  # [B, N, Bm]
    sums = jnp.cumsum(jnp.einsum("bnk,bnc->bkc", onehot, h), axis=1)
    counts = jnp.cumsum(jnp.sum(onehot, 1), axis=1)  # [B, Bm]
    return sums / jnp.maximum(counts, 1.0)[..., None], counts / n
