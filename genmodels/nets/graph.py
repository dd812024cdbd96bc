"""GDSS score networks for dense graphs (flax.nnx).

Jo, Lee, Hwang, *Score-based Generative Modeling of Graphs via the System of SDEs*,
ICML 2022, Sec. 3 (the permutation-equivariant score networks ``s_theta,X`` and
``s_phi,A``), following the reference code ``models/`` of harryjo97/GDSS:

- :class:`ScoreNetworkX`: ``depth`` dense GCN layers with tanh, the input and
  every layer output concatenated, then a 3-layer ELU MLP; masked by the node flags.
- :class:`ScoreNetworkA`: graph multi-head attention (GMH, Baek et al. 2021)
  layers acting on the channels ``[A, A^2, ..., A^{c_init}]``; the channels of every
  layer are concatenated and a 3-layer ELU MLP maps each (i, j) entry to one score.
  The output is symmetric, with a zero diagonal and zero padding.

Both take ``(x [B, N, F], adj [B, N, N], node_mask [B, N])``. Like GDSS, neither takes
the diffusion time: for a VP (or sub-VP) SDE GDSS uses ``score = -net(...) / std(t)``,
for a VE SDE ``score = net(...)`` (GDSS ``losses.get_score_fn``); that scaling belongs to
the model wrapper, not to these modules.

Per-channel modules (GDSS keeps a Python list of ``Attention`` modules, one per
adjacency channel) are stored here with the channel as a leading parameter axis, which
computes the same maps with the same parameter counts in a few batched einsums.

Speed on CPU (``benchmarks/nets_graph.py``) without changing the function: ScoreNetworkA
keeps its symmetric hidden channels as the N(N-1)/2 pairs ``i < j`` (their diagonals never
reach the score), so every per-entry MLP runs once per pair; the final MLP runs once per
pair when the input adjacency is symmetric (a ``lax.cond``; both orientations otherwise);
the GCN normalisation is shared by Q, K and V, whose projections are one batched matmul;
ELU uses ``exp`` with a derivative from its output (``expm1`` is slow under XLA:CPU).

Initialisation follows the PyTorch reference: GCN weights Glorot-uniform with zero bias
(``models/layers.py``), linear layers PyTorch's default ``U(-1/sqrt(fan_in),
1/sqrt(fan_in))`` for weights and biases.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Array = jax.Array

__all__ = [
    "GDSS_NET_CONFIGS",
    "MLP",
    "Attention",
    "AttentionLayer",
    "DenseGCNConv",
    "GDSSNetConfig",
    "GraphFieldNet",
    "ScoreNetworkA",
    "ScoreNetworkX",
    "pow_tensor",
]


def _mask_x(x: Array, node_mask: Array) -> Array:
    return x * node_mask[..., :, None].astype(x.dtype)


def _mask_adj(adj: Array, node_mask: Array) -> Array:
    """Zero rows and columns of padded nodes; ``adj`` is [B, N, N] or [B, N, N, C]."""
    m = node_mask.astype(adj.dtype)
    if adj.ndim == 4:  # channel-last
        return adj * m[:, :, None, None] * m[:, None, :, None]
    return adj * m[:, :, None] * m[:, None, :]


@jax.custom_jvp
def _elu(x: Array) -> Array:
    """ELU (alpha 1), ``x`` if ``x > 0`` else ``exp(x) - 1``: the same function as
    ``jax.nn.elu`` up to float32 rounding.

    ``jax.nn.elu`` uses ``expm1``, which XLA's CPU backend evaluates about twice as slowly
    as ``exp``, and its derivative goes through both ``where`` branches; here the
    derivative reuses the output (``elu'(x) = elu(x) + 1`` for ``x <= 0``).
    """
    return jnp.where(x > 0, x, jnp.exp(jnp.minimum(x, 0.0)) - 1.0)


@_elu.defjvp
def _elu_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = _elu(x)
    return y, jnp.where(x > 0, dx, (y + 1.0) * dx)


def pow_tensor(adj: Array, cnum: int) -> Array:
    """Powers ``[A, A^2, ..., A^cnum]`` stacked channel-last (GDSS ``pow_tensor``).

    Args:
      adj: [B, N, N].
      cnum: number of powers.

    Returns:
      [B, N, N, cnum].
    """
    return jnp.stack(_powers(adj, cnum), axis=-1)


def _powers(adj: Array, cnum: int) -> list[Array]:
    out = [adj]
    cur = adj
    for _ in range(cnum - 1):
        cur = cur @ adj
        out.append(cur)
    return out


def _gcn_norm(adj: Array) -> Array:
    """``D^-1/2 A' D^-1/2`` with ``A'`` = ``adj`` whose diagonal is set to 1 and degrees
    clamped at 1 (PyTorch Geometric ``DenseGCNConv``, as GDSS uses it).

    Args: adj [..., N, N]. Returns: [..., N, N].
    """
    n = adj.shape[-1]
    a = jnp.where(jnp.eye(n, dtype=bool), jnp.ones_like(adj), adj)
    d = jnp.maximum(a.sum(-1), 1.0) ** -0.5  # [..., N]
    return d[..., :, None] * a * d[..., None, :]


class _Pairs:
    """Static index maps between dense [.., N, N] matrices and their P = N(N-1)/2
    off-diagonal pairs ``i < j`` (the order of ``numpy.triu_indices(N, 1)``).

    ScoreNetworkA's hidden channels are symmetric and their diagonals never reach the
    output (the GCN sets the diagonal to 1, the final score zeroes it), so the network
    works on the pairs only: every per-entry MLP runs on P rows instead of N^2.
    """

    def __init__(self, n: int):
        iu, ju = np.triu_indices(n, 1)
        self.n, self.p = n, len(iu)
        self.upper = iu * n + ju  # flat index of (i, j), i < j
        self.lower = ju * n + iu  # flat index of (j, i)
        pid = np.full((n, n), self.p)  # the diagonal reads slot P
        pid[iu, ju] = np.arange(self.p)
        pid[ju, iu] = np.arange(self.p)
        self.sym = pid.reshape(-1)
        self.iu, self.ju = iu, ju

    def take(self, a: Array, idx: np.ndarray) -> Array:
        """Args: a [..., N, N]. Returns: [..., P], entries ``a.flat[idx]``."""
        flat = a.reshape(*a.shape[:-2], self.n * self.n)
        return jnp.take(flat, idx, axis=-1, mode="clip")

    def dense(self, s: Array, diag: float) -> Array:
        """Symmetric matrices from pairs. Args: s [..., P]. Returns: [..., N, N]."""
        s = jnp.concatenate([s, jnp.full((*s.shape[:-1], 1), diag, s.dtype)], -1)
        out = jnp.take(s, self.sym, axis=-1, mode="clip")
        return out.reshape(*s.shape[:-1], self.n, self.n)

    def mask(self, node_mask: Array) -> Array:
        """Args: node_mask [B, N]. Returns: [B, P], 1 where both ends are real nodes."""
        m = node_mask.astype(jnp.float32)
        return m[:, self.iu] * m[:, self.ju]


def _torch_uniform(fan_in: int) -> Callable:
    """PyTorch's ``nn.Linear`` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _linear(din: int, dout: int, rngs: nnx.Rngs) -> nnx.Linear:
    init = _torch_uniform(din)
    return nnx.Linear(din, dout, kernel_init=init, bias_init=init, rngs=rngs)


class DenseGCNConv(nnx.Module):
    """Dense graph convolution ``D^-1/2 (A + I) D^-1/2 X W + b`` (Kipf & Welling 2017).

    As GDSS's ``DenseGCNConv`` (from PyTorch Geometric): the diagonal is *set* to 1
    (not added), degrees are clamped at 1 before the inverse square root.

    Args:
      in_features: F_in.
      out_features: F_out.
      rngs: parameter RNGs.
    """

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nnx.Param(
            nnx.initializers.glorot_uniform()(rngs.params(), (in_features, out_features))
        )
        self.bias = nnx.Param(jnp.zeros((out_features,)))

    def __call__(self, x: Array, adj: Array) -> Array:
        """Args: x [B, N, F_in], adj [B, N, N]. Returns: [B, N, F_out]."""
        return self.propagate(x, _gcn_norm(adj))

    def propagate(self, x: Array, norm: Array) -> Array:
        """The layer given the normalised adjacency ``norm`` [B, N, N] (shared by layers)."""
        return norm @ (x @ self.weight[...]) + self.bias[...]


class MLP(nnx.Module):
    """``num_layers`` linear layers with ``activation`` between them (GDSS ``MLP``).

    Args:
      num_layers: number of linear layers (1 = a single linear map).
      input_dim, hidden_dim, output_dim: widths.
      activation: applied after every layer but the last.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        *,
        activation: Callable[[Array], Array] = jax.nn.relu,
        rngs: nnx.Rngs,
    ):
        if num_layers < 1:
            raise ValueError("MLP needs at least one layer")
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.linears = nnx.List([_linear(a, b, rngs) for a, b in zip(dims[:-1], dims[1:])])
        self.activation = activation

    def __call__(self, x: Array) -> Array:
        """Args: x [..., input_dim]. Returns: [..., output_dim]."""
        return self.rest(self.linears[0](x))

    def rest(self, h: Array) -> Array:
        """The MLP after its first linear layer. Args: h [..., hidden] (first layer's
        output, before the activation). Returns: [..., output_dim]."""
        for layer in self.linears[1:]:
            h = layer(self.activation(h))
        return h


class _ChannelLinear(nnx.Module):
    """``C`` independent linear maps of shared inputs, optionally GCN-propagated per channel.

    Without ``adjc``: ``x W_c + b_c``. With ``adjc``: the dense GCN of each channel,
    ``D_c^-1/2 A'_c D_c^-1/2 x W_c + b_c`` (bias after the propagation, as GDSS's
    ``DenseGCNConv``).
    """

    def __init__(self, channels: int, din: int, dout: int, kernel_init, bias_init, rngs):
        self.weight = nnx.Param(kernel_init(rngs.params(), (channels, din, dout)))
        self.bias = nnx.Param(bias_init(rngs.params(), (channels, dout)))

    def __call__(self, x: Array, adjc: Array | None = None) -> Array:
        """Args: x [B, N, F] or [B, C, N, F]; adjc [B, N, N, C] or None.

        Returns: [B, C, N, O].
        """
        eq = "bnf,cfo->bcno" if x.ndim == 3 else "bcnf,cfo->bcno"
        h = jnp.einsum(eq, x, self.weight[...])  # [B, C, N, O]
        if adjc is not None:
            h = _gcn_norm(jnp.moveaxis(adjc, -1, 1)) @ h  # [B, C, N, N] @ [B, C, N, O]
        return h + self.bias[...][None, :, None, :]


def _channel_gcn(channels: int, din: int, dout: int, rngs: nnx.Rngs) -> _ChannelLinear:
    # Glorot-uniform per channel (batch_axis keeps C out of the fan), zero bias: as
    # GDSS's DenseGCNConv.reset_parameters.
    glorot = nnx.initializers.variance_scaling(1.0, "fan_avg", "uniform", batch_axis=(0,))
    return _ChannelLinear(channels, din, dout, glorot, nnx.initializers.zeros, rngs)


def _channel_torch_linear(channels: int, din: int, dout: int, rngs: nnx.Rngs) -> _ChannelLinear:
    init = _torch_uniform(din)
    return _ChannelLinear(channels, din, dout, init, init, rngs)


class Attention(nnx.Module):
    """Graph multi-head attention, one independent head set per adjacency channel.

    GDSS ``Attention`` (Baek et al. 2021) for each of the ``channels`` channels, with the
    channels' weights stacked on a leading axis so one layer is a few batched einsums
    (GDSS keeps a Python list of per-channel modules; the maps and parameter counts are
    the same). Q and K come from GCNs (``conv='GCN'``) or 2-layer tanh MLPs
    (``conv='MLP'``), V from a GCN. The attention matrix is
    ``tanh(Q_h K_h^T / sqrt(out_dim))`` averaged over the heads and symmetrised; the
    reference scales by ``sqrt(out_dim)``, not by the head width, and so does this module.

    Args:
      channels: number of adjacency channels C.
      in_dim: node feature width.
      attn_dim: Q/K width (split into ``num_heads`` heads; must be divisible).
      out_dim: V width.
      num_heads: number of heads.
      conv: ``'GCN'`` or ``'MLP'``.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        channels: int,
        in_dim: int,
        attn_dim: int,
        out_dim: int,
        *,
        num_heads: int = 4,
        conv: str = "GCN",
        rngs: nnx.Rngs,
    ):
        if attn_dim % num_heads:
            raise ValueError(f"attn_dim={attn_dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.out_dim = out_dim
        self.conv = conv
        if conv == "GCN":
            self.gnn_q = _channel_gcn(channels, in_dim, attn_dim, rngs)
            self.gnn_k = _channel_gcn(channels, in_dim, attn_dim, rngs)
        elif conv == "MLP":
            # GDSS: MLP(2, in_dim, 2 * attn_dim, attn_dim, activate_func=tanh)
            self.gnn_q = nnx.List(
                [
                    _channel_torch_linear(channels, in_dim, 2 * attn_dim, rngs),
                    _channel_torch_linear(channels, 2 * attn_dim, attn_dim, rngs),
                ]
            )
            self.gnn_k = nnx.List(
                [
                    _channel_torch_linear(channels, in_dim, 2 * attn_dim, rngs),
                    _channel_torch_linear(channels, 2 * attn_dim, attn_dim, rngs),
                ]
            )
        else:
            raise ValueError(f"conv must be 'GCN' or 'MLP', got {conv!r}")
        self.gnn_v = _channel_gcn(channels, in_dim, out_dim, rngs)

    def __call__(self, x: Array, adjc: Array) -> tuple[Array, Array]:
        """Args: x [B, N, F], adjc [B, N, N, C].

        Returns: V [B, C, N, out_dim], attention [B, N, N, C] (symmetric).
        """
        q, k, v = self.qkv(x, jnp.moveaxis(adjc, -1, 1))
        a = self.scores(q, k)  # [C, B, N, N]
        a = (a + jnp.swapaxes(a, -1, -2)) / 2
        return jnp.moveaxis(v, 0, 1), jnp.transpose(a, (1, 2, 3, 0))

    def qkv(self, x: Array, adj_cf: Array) -> tuple[Array, Array, Array]:
        """Q, K, V of every channel, channel-major.

        The GCN propagation runs before the per-channel projection (``(Â x) W = Â (x W)``,
        reassociated: ``x`` is narrower than Q|K|V) and is shared by Q, K and V, whose
        weights are concatenated into one batched matmul.

        Args: x [B, N, F]; adj_cf [B, C, N, N] (channel-first).
        Returns: q [C, B, N, D], k [C, B, N, D], v [C, B, N, out_dim].
        """
        px = jnp.einsum("bcij,bjf->cbif", _gcn_norm(adj_cf), x)  # [C, B, N, F]
        if self.conv == "GCN":
            lins = (self.gnn_q, self.gnn_k, self.gnn_v)
            w = jnp.concatenate([lin.weight[...] for lin in lins], -1)  # [C, F, 2D + O]
            bias = jnp.concatenate([lin.bias[...] for lin in lins], -1)
            h = jnp.einsum("cbnf,cfo->cbno", px, w) + bias[:, None, None, :]
            d = self.gnn_q.weight.shape[-1]
            return h[..., :d], h[..., d : 2 * d], h[..., 2 * d :]
        v = jnp.einsum("cbnf,cfo->cbno", px, self.gnn_v.weight[...])
        v = v + self.gnn_v.bias[...][:, None, None, :]
        # both first layers of the Q and K MLPs in one matmul of the shared input
        w1 = jnp.concatenate([self.gnn_q[0].weight[...], self.gnn_k[0].weight[...]], -1)
        b1 = jnp.concatenate([self.gnn_q[0].bias[...], self.gnn_k[0].bias[...]], -1)
        h = jnp.tanh(jnp.einsum("bnf,cfo->cbno", x, w1) + b1[:, None, None, :])
        e = self.gnn_q[0].weight.shape[-1]
        q, k = (
            jnp.einsum("cbnf,cfo->cbno", hh, lin.weight[...]) + lin.bias[...][:, None, None, :]
            for hh, lin in ((h[..., :e], self.gnn_q[1]), (h[..., e:], self.gnn_k[1]))
        )
        return q, k, v

    def scores(self, q: Array, k: Array) -> Array:
        """``mean_h tanh(Q_h K_h^T / sqrt(out_dim))`` before symmetrisation.

        Args: q, k [C, B, N, D]. Returns: [C, B, N, N].
        """
        return self.score_sum(q, k) / self.num_heads

    def score_sum(self, q: Array, k: Array) -> Array:
        """``sum_h tanh(Q_h K_h^T / sqrt(out_dim))``. Args: q, k [C, B, N, D]. Returns:
        [C, B, N, N]."""
        c, b, n, d = q.shape
        h = self.num_heads
        # scaling Q rather than the scores keeps the (large) score tensor free of a
        # broadcast constant, which XLA's CPU dot fusion would materialise
        qh = (q * (1.0 / math.sqrt(self.out_dim))).reshape(c, b, n, h, d // h)
        kh = k.reshape(c, b, n, h, d // h)
        return jnp.tanh(jnp.einsum("cbihd,cbjhd->cbhij", qh, kh)).sum(axis=2)


class AttentionLayer(nnx.Module):
    """One GMH layer of ScoreNetworkA (GDSS ``AttentionLayer``): C_in -> C_out channels.

    Each input channel has its own attention (see :class:`Attention`); their V outputs
    are mixed by a 2-layer ELU MLP into the new node features (masked, then tanh), and
    the attention matrices together with the input channels are mapped per entry by a
    ``num_linears``-layer ELU MLP to the output channels, symmetrised as ``M + M^T``.

    Args:
      num_linears: layers of the channel MLP.
      conv_input_dim: node feature width in.
      attn_dim: Q/K width.
      conv_output_dim: node feature width out.
      input_dim: adjacency channels in (C_in).
      output_dim: adjacency channels out (C_out).
      num_heads: attention heads.
      conv: ``'GCN'`` or ``'MLP'``.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        num_linears: int,
        conv_input_dim: int,
        attn_dim: int,
        conv_output_dim: int,
        input_dim: int,
        output_dim: int,
        *,
        num_heads: int = 4,
        conv: str = "GCN",
        rngs: nnx.Rngs,
    ):
        self.attn = Attention(
            input_dim,
            conv_input_dim,
            attn_dim,
            conv_output_dim,
            num_heads=num_heads,
            conv=conv,
            rngs=rngs,
        )
        hidden = 2 * max(input_dim, output_dim)
        self.mlp = MLP(num_linears, 2 * input_dim, hidden, output_dim, activation=_elu, rngs=rngs)
        self.multi_channel = MLP(
            2, input_dim * conv_output_dim, hidden, conv_output_dim, activation=_elu, rngs=rngs
        )

    def __call__(self, x: Array, adjc: Array, node_mask: Array) -> tuple[Array, Array]:
        """Args: x [B, N, F_in], adjc [B, N, N, C_in], node_mask [B, N].

        Returns: x_out [B, N, F_out], adj_out [B, N, N, C_out] (symmetric, masked).
        """
        q, k, v = self.attn.qkv(x, jnp.moveaxis(adjc, -1, 1))
        a = self.attn.scores(q, k)  # [C, B, N, N]
        att = jnp.transpose((a + jnp.swapaxes(a, -1, -2)) / 2, (1, 2, 3, 0))  # [B, N, N, C]
        m = self.mlp(jnp.concatenate([att, adjc], -1))  # [B, N, N, C_out]
        m = m + jnp.swapaxes(m, 1, 2)
        return self.node_update(v, node_mask), _mask_adj(m, node_mask)

    def node_update(self, v: Array, node_mask: Array) -> Array:
        """New node features from the channels' V. Args: v [C, B, N, F_out]. Returns:
        [B, N, F_out]."""
        c, _, _, f = v.shape
        # the MLP input is the channel-major concatenation [V_0 | V_1 | ...] (GDSS's
        # torch.cat(x_list, -1)); its first layer contracts (channel, feature) directly
        first = self.multi_channel.linears[0]
        w1 = first.kernel[...].reshape(c, f, -1)
        h = jnp.einsum("cbnf,cfo->bno", v, w1) + first.bias[...]
        return jnp.tanh(_mask_x(self.multi_channel.rest(h), node_mask))

    def pairs(
        self,
        x: Array,
        adj_cf: Array,
        up: Array,
        low: Array | None,
        pair_mask: Array,
        node_mask: Array,
        pairs: _Pairs,
    ) -> tuple[Array, Array]:
        """The layer on the off-diagonal pairs (used inside :class:`ScoreNetworkA`).

        ``adj_out[i, j] = M(i, j) + M(j, i)`` where ``M(i, j) = mlp([att_ij, adj_ij])`` and
        ``att`` is symmetric; when the input channels are symmetric (``low`` is None),
        ``M(j, i) = M(i, j)`` and the MLP runs once per pair.

        Args:
          x: [B, N, F_in]; adj_cf: [B, C_in, N, N] input channels (diagonal unused).
          up, low: [B, P, C_in] the input channels at (i, j) and (j, i), ``i < j``;
            ``low`` None when the channels are symmetric.
          pair_mask: [B, P]; node_mask: [B, N]; pairs: the index maps.

        Returns: x_out [B, N, F_out], adj_out [B, P, C_out] (masked pairs ``i < j``).
        """
        q, k, v = self.attn.qkv(x, adj_cf)
        a = self.attn.score_sum(q, k)  # [C, B, N, N]
        # (mean_h + its transpose) / 2, the 1/H folded into one scale of the pairs
        scale = 0.5 / self.attn.num_heads
        att = (pairs.take(a, pairs.upper) + pairs.take(a, pairs.lower)) * scale  # [C, B, P]
        att = jnp.transpose(att, (1, 2, 0))  # [B, P, C]
        if low is None:
            m = 2 * self.mlp(jnp.concatenate([att, up], -1))
        else:  # one MLP call on both orientations
            m = self.mlp(jnp.stack([jnp.concatenate([att, e], -1) for e in (up, low)])).sum(0)
        return self.node_update(v, node_mask), m * pair_mask[..., None]


class ScoreNetworkX(nnx.Module):
    """GDSS node-feature score network ``s_theta,X``: GCN stack + MLP.

    Args:
      max_feat_num: node feature width F (input and output).
      depth: number of GCN layers.
      nhid: GCN width.
      rngs: parameter RNGs.
    """

    def __init__(self, max_feat_num: int, depth: int, nhid: int, *, rngs: nnx.Rngs):
        self.layers = nnx.List(
            [DenseGCNConv(max_feat_num if i == 0 else nhid, nhid, rngs=rngs) for i in range(depth)]
        )
        fdim = max_feat_num + depth * nhid
        self.final = MLP(3, fdim, 2 * fdim, max_feat_num, activation=_elu, rngs=rngs)

    def __call__(self, x: Array, adj: Array, node_mask: Array) -> Array:
        """Args: x [B, N, F], adj [B, N, N], node_mask [B, N]. Returns: [B, N, F], 0 on padding."""
        norm = _gcn_norm(adj)  # the same for every layer
        hs = [x]
        for layer in self.layers:
            x = jnp.tanh(layer.propagate(x, norm))
            hs.append(x)
        out = self.final(jnp.concatenate(hs, -1))  # [B, N, F]
        return _mask_x(out, node_mask)


class ScoreNetworkA(nnx.Module):
    """GDSS adjacency score network ``s_phi,A``: GMH layers over adjacency powers.

    The first layer maps ``c_init`` channels to ``c_hid`` with attention width ``nhid``,
    middle layers ``c_hid -> c_hid`` and the last ``c_hid -> c_final`` with attention
    width ``adim``; node features have width ``nhid`` after the first layer. The GDSS
    constructor's ``max_node_num`` is not needed (the diagonal mask follows the input).

    The channels every layer outputs are symmetric and their diagonals never reach the
    score (the GCNs set the diagonal to 1 and the score's diagonal is zeroed), so they
    are kept as the N(N-1)/2 pairs ``i < j`` and every per-entry MLP runs once per pair;
    only the input powers ``A^k`` may differ at (i, j) and (j, i) and are taken at both.
    The result is the GDSS function (up to float32 rounding) for any input.

    Args:
      max_feat_num: input node feature width F.
      nhid: node feature width inside the layers.
      num_layers: number of GMH layers (>= 2).
      num_linears: layers of each channel MLP.
      c_init, c_hid, c_final: adjacency channels (powers at the input, hidden, last).
      adim: attention width of the layers after the first.
      num_heads: attention heads.
      conv: ``'GCN'`` or ``'MLP'`` for Q/K.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        max_feat_num: int,
        nhid: int,
        num_layers: int,
        num_linears: int,
        c_init: int,
        c_hid: int,
        c_final: int,
        adim: int,
        *,
        num_heads: int = 4,
        conv: str = "GCN",
        rngs: nnx.Rngs,
    ):
        if num_layers < 2:
            raise ValueError("ScoreNetworkA needs num_layers >= 2 (first and last layers)")
        self.c_init = c_init
        layers = []
        for i in range(num_layers):
            if i == 0:
                args = (max_feat_num, nhid, nhid, c_init, c_hid)
            elif i == num_layers - 1:
                args = (nhid, adim, nhid, c_hid, c_final)
            else:
                args = (nhid, adim, nhid, c_hid, c_hid)
            layers.append(
                AttentionLayer(num_linears, *args, num_heads=num_heads, conv=conv, rngs=rngs)
            )
        self.layers = nnx.List(layers)
        fdim = c_init + c_hid * (num_layers - 1) + c_final
        self.final = MLP(3, fdim, 2 * fdim, 1, activation=_elu, rngs=rngs)

    def __call__(self, x: Array, adj: Array, node_mask: Array) -> Array:
        """Args: x [B, N, F], adj [B, N, N], node_mask [B, N].

        Returns: [B, N, N], zero diagonal, zero on padded rows/columns; symmetric when
        ``adj`` is. (Under ``jax.vmap`` the symmetric/general ``lax.cond`` becomes a select
        that evaluates both branches: correct, but without the saving.)
        """
        pairs = _Pairs(adj.shape[-1])
        pm = pairs.mask(node_mask).astype(adj.dtype)  # [B, P]
        adj_cf = jnp.stack(_powers(adj, self.c_init), 1)  # [B, c_init, N, N]
        up = jnp.swapaxes(pairs.take(adj_cf, pairs.upper), 1, 2)  # [B, P, c_init]
        low = jnp.swapaxes(pairs.take(adj_cf, pairs.lower), 1, 2)
        x, s = self.layers[0].pairs(x, adj_cf, up, low, pm, node_mask, pairs)
        chans = [s]  # [B, P, C] each
        for layer in self.layers[1:]:
            dense = pairs.dense(jnp.swapaxes(s, 1, 2), 1.0)  # [B, C, N, N]
            x, s = layer.pairs(x, dense, s, None, pm, node_mask, pairs)
            chans.append(s)
        s_all = jnp.concatenate(chans, -1)  # [B, P, fdim - c_init]

        def symmetric(s_all, up, low):
            out = self.final(jnp.concatenate([up, s_all], -1))[..., 0]
            return out, out

        # rematerialised, so that its residuals are its inputs: lax.cond fills the residual
        # slots of the branch not taken with zeros, and these are the small ones
        @jax.checkpoint
        def general(s_all, up, low):
            out = self.final(jnp.stack([jnp.concatenate([e, s_all], -1) for e in (up, low)]))
            return out[0, ..., 0], out[1, ..., 0]

        # A symmetric adjacency (every GDSS input) gives A^k(i, j) = A^k(j, i): both
        # orientations of a pair have the same features and the final MLP runs once.
        is_sym = jnp.all(adj == jnp.swapaxes(adj, -1, -2))
        out_up, out_low = jax.lax.cond(is_sym, symmetric, general, s_all, up, low)
        zero = jnp.zeros((pm.shape[0], 1), pm.dtype)
        flat = jnp.concatenate([out_up * pm, out_low * pm, zero], -1)
        idx = np.full((pairs.n, pairs.n), 2 * pairs.p)  # diagonal -> 0
        idx[pairs.iu, pairs.ju] = np.arange(pairs.p)
        idx[pairs.ju, pairs.iu] = pairs.p + np.arange(pairs.p)
        score = jnp.take(flat, idx.reshape(-1), axis=-1, mode="clip")
        return score.reshape(adj.shape)


@dataclass(frozen=True)
class GDSSNetConfig:
    """Network sizes of one GDSS config (``config/<dataset>.yaml``, ``data`` + ``model``).

    ``x_*`` fields configure :class:`ScoreNetworkX`, the others :class:`ScoreNetworkA`;
    ``nhid`` is shared, as in GDSS ``load_model_params``.
    """

    max_node_num: int
    max_feat_num: int
    depth: int
    nhid: int
    num_layers: int
    num_linears: int
    adim: int
    c_init: int = 2
    c_hid: int = 8
    c_final: int = 4
    num_heads: int = 4
    conv: str = "GCN"

    def make_x(self, rngs: nnx.Rngs) -> ScoreNetworkX:
        """The :class:`ScoreNetworkX` of this config."""
        return ScoreNetworkX(self.max_feat_num, self.depth, self.nhid, rngs=rngs)

    def make_adj(self, rngs: nnx.Rngs) -> ScoreNetworkA:
        """The :class:`ScoreNetworkA` of this config."""
        return ScoreNetworkA(
            self.max_feat_num,
            self.nhid,
            self.num_layers,
            self.num_linears,
            self.c_init,
            self.c_hid,
            self.c_final,
            self.adim,
            num_heads=self.num_heads,
            conv=self.conv,
            rngs=rngs,
        )


class GraphFieldNet(nnx.Module):
    """GDSS's two networks as one field ``(state, label, ctx) -> {"x", "adj"}``.

    GDSS's networks take no time input; here the noise label (a flow's ``t``, EDM's
    ``c_noise``) is appended to the node features as one more channel on the real nodes
    (``time_input``; off: GDSS's time-free networks), so both read ``F + 1`` channels and
    ScoreNetworkX's extra output channel is dropped. Submodules ``x`` (ScoreNetworkX) and
    ``adj`` (ScoreNetworkA), as GDSS's (per-module gradient clipping keys on them).

    Args:
      net: GDSS network sizes.
      time_input: append the label as a node channel.
      rngs: parameter RNGs.
    """

    def __init__(self, net: GDSSNetConfig, time_input: bool = True, *, rngs: nnx.Rngs):
        self.num_feat = net.max_feat_num
        self.time_input = bool(time_input)
        wide = dataclasses.replace(net, max_feat_num=net.max_feat_num + 1) if time_input else net
        self.x = wide.make_x(rngs)
        self.adj = wide.make_adj(rngs)

    def __call__(self, state: dict, label: Array, ctx: dict, *, train: bool = False, rngs=None):
        """Args:
          state: ``{"x": [B, N, F], "adj": [B, N, N]}`` (symmetric ``adj``).
          label: [B] (or scalar) noise label, ignored without ``time_input``.
          ctx: ``{"node_mask": [B, N], ...}``.
          train, rngs: unused (no dropout).

        Returns:
          ``{"x": [B, N, F], "adj": [B, N, N]}``, zero on padding, ``adj`` symmetric with
          a zero diagonal.
        """
        del train, rngs
        x, adj, node_mask = state["x"], state["adj"], ctx["node_mask"]
        h = x
        if self.time_input:
            lab = jnp.broadcast_to(jnp.asarray(label, jnp.float32).reshape(-1), x.shape[:1])
            lab = lab.astype(x.dtype).reshape(-1, 1, 1) * node_mask[..., None]  # [B, N, 1]
            h = jnp.concatenate([x, lab.astype(x.dtype)], -1)  # [B, N, F + 1]
        out_x = self.x(h, adj, node_mask)[..., : self.num_feat]  # [B, N, F]
        return {"x": out_x, "adj": self.adj(h, adj, node_mask)}


#: Sizes from harryjo97/GDSS ``config/community_small.yaml``, ``ego_small.yaml``,
#: ``enzymes.yaml``, ``grid.yaml``, ``qm9.yaml`` and ``zinc250k.yaml`` (all use
#: ScoreNetworkX for x, ScoreNetworkA for adj, conv GCN, 4 heads, c_init/c_hid/c_final
#: 2/8/4). For QM9 and ZINC250k ``max_feat_num`` counts atom types (``init: atom``).
GDSS_NET_CONFIGS: dict[str, GDSSNetConfig] = {
    "community_small": GDSSNetConfig(
        max_node_num=20, max_feat_num=10, depth=3, nhid=32, num_layers=5, num_linears=2, adim=32
    ),
    "ego_small": GDSSNetConfig(
        max_node_num=18, max_feat_num=17, depth=2, nhid=32, num_layers=5, num_linears=2, adim=32
    ),
    "ENZYMES": GDSSNetConfig(
        max_node_num=125, max_feat_num=10, depth=5, nhid=32, num_layers=7, num_linears=2, adim=32
    ),
    "grid": GDSSNetConfig(
        max_node_num=361, max_feat_num=5, depth=5, nhid=32, num_layers=7, num_linears=2, adim=32
    ),
    "QM9": GDSSNetConfig(
        max_node_num=9, max_feat_num=4, depth=2, nhid=16, num_layers=3, num_linears=3, adim=16
    ),
    "ZINC250k": GDSSNetConfig(
        max_node_num=38, max_feat_num=9, depth=2, nhid=16, num_layers=6, num_linears=3, adim=16
    ),
}
