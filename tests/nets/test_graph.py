"""GDSS score networks: sizes equal the reference checkpoints, equivariance, masking, symmetry."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.nets.graph import GDSS_NET_CONFIGS, Attention, DenseGCNConv, GDSSNetConfig

# Parameter totals of the state dicts in harryjo97/GDSS checkpoints/<dataset>/gdss_*.pth
# (x_state_dict, adj_state_dict; read from the archive's tensor shapes, 2026-11-27).
GDSS_PARAM_COUNTS = {
    "community_small": (72434, 134369),
    "ego_small": (44093, 135713),
    "ENZYMES": (182066, 204113),
    "grid": (170081, 203153),
    "QM9": (8564, 23825),
    "ZINC250k": (11429, 62873),
}

# community_small layout at a width that keeps the test fast
SMALL = GDSSNetConfig(
    max_node_num=9, max_feat_num=5, depth=2, nhid=8, num_layers=3, num_linears=2, adim=8
)


def _build(make, seed):
    """Build a module with random parameters drawn by numpy.

    The properties tested here hold for any parameter values, and drawing them on the
    host avoids compiling one XLA random kernel per parameter shape (slow on CPU).
    """
    graphdef, state = nnx.split(nnx.eval_shape(make))
    rng = np.random.default_rng(seed)

    def draw(s):
        scale = 1.0 / np.sqrt(s.shape[-2]) if len(s.shape) >= 2 else 0.1
        return jnp.asarray(rng.uniform(-scale, scale, s.shape), s.dtype)

    return nnx.merge(graphdef, jax.tree.map(draw, state))


def _count(model):
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("name", list(GDSS_PARAM_COUNTS))
def test_parameter_counts_match_gdss_checkpoints(name):
    cfg = GDSS_NET_CONFIGS[name]
    nx_, na = GDSS_PARAM_COUNTS[name]
    # abstract init: shapes only, no compute
    mx = nnx.eval_shape(lambda: cfg.make_x(nnx.Rngs(0)))
    ma = nnx.eval_shape(lambda: cfg.make_adj(nnx.Rngs(0)))
    assert (_count(mx), _count(ma)) == (nx_, na)


def _inputs(b, n, f, counts, seed=0):
    rng = np.random.default_rng(seed)
    mask = (np.arange(n)[None] < np.asarray(counts)[:, None]).astype(np.float32)
    pair = mask[:, :, None] * mask[:, None, :] * (1 - np.eye(n))
    a = rng.uniform(-0.5, 1.5, size=(b, n, n))
    a = np.triu(a, 1)
    a = (a + a.transpose(0, 2, 1)) * pair
    x = rng.normal(size=(b, n, f)) * mask[..., None]
    return (jnp.asarray(x, jnp.float32), jnp.asarray(a, jnp.float32), jnp.asarray(mask))


@pytest.fixture(scope="module")
def nets():
    mx = _build(lambda: SMALL.make_x(nnx.Rngs(0)), 0)
    ma = _build(lambda: SMALL.make_adj(nnx.Rngs(0)), 1)

    @jax.jit
    def run(x, adj, mask):
        return mx(x, adj, mask), ma(x, adj, mask)

    return run


def test_shapes_masking_symmetry(nets):
    x, adj, mask = _inputs(2, 9, 5, [9, 2])
    sx, sa = nets(x, adj, mask)
    assert sx.shape == (2, 9, 5) and sa.shape == (2, 9, 9)
    assert sx.dtype == jnp.float32 and sa.dtype == jnp.float32
    sx, sa, m = np.asarray(sx), np.asarray(sa), np.asarray(mask).astype(bool)
    assert np.all(np.isfinite(sx)) and np.all(np.isfinite(sa))
    assert np.all(sx[~m] == 0)
    assert np.all(sa[~m] == 0) and np.all(sa.transpose(0, 2, 1)[~m] == 0)
    assert np.all(np.diagonal(sa, axis1=1, axis2=2) == 0)
    np.testing.assert_allclose(sa, sa.transpose(0, 2, 1), atol=1e-6)
    assert np.abs(sa[m[:, :, None] & m[:, None, :]]).max() > 0  # not trivially zero
    assert np.abs(sx[m]).max() > 0


def test_permutation_equivariance(nets):
    x, adj, mask = _inputs(2, 9, 5, [9, 6], seed=1)
    perm = np.random.default_rng(2).permutation(9)  # mixes real and padded slots
    sx, sa = nets(x, adj, mask)
    px, pa = nets(x[:, perm], adj[:, perm][:, :, perm], mask[:, perm])
    np.testing.assert_allclose(np.asarray(px), np.asarray(sx)[:, perm], atol=2e-5)
    np.testing.assert_allclose(np.asarray(pa), np.asarray(sa)[:, perm][:, :, perm], atol=2e-5)


def test_padding_does_not_change_real_outputs(nets):
    """Garbage node features in padded slots change nothing: padding never leaks into the
    real nodes' scores (the adjacency is zero-padded, as samplers keep it)."""
    x, adj, mask = _inputs(2, 9, 5, [6, 8], seed=3)
    sx, sa = nets(x, adj, mask)
    # garbage in the padded slots of the inputs
    rng = np.random.default_rng(4)
    junk = np.asarray(mask)[..., None] < 0.5
    x2 = jnp.where(jnp.asarray(junk), jnp.asarray(rng.normal(size=x.shape), jnp.float32), x)
    sx2, sa2 = nets(x2, adj, mask)
    np.testing.assert_allclose(np.asarray(sx2), np.asarray(sx), atol=1e-6)
    np.testing.assert_allclose(np.asarray(sa2), np.asarray(sa), atol=1e-6)


def test_dense_gcn_hand_case():
    """D^-1/2 (A with unit diagonal) D^-1/2 X W + b, with a diagonal that is set, not added."""
    conv = _build(lambda: DenseGCNConv(2, 2, rngs=nnx.Rngs(0)), 0)
    conv.weight[...] = jnp.eye(2)
    conv.bias[...] = jnp.array([0.5, -1.0])
    a = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)  # path 0-1-2
    x = np.array([[1, 0], [0, 1], [2, 2]], np.float32)
    at = a + np.eye(3)
    d = 1 / np.sqrt(at.sum(1))
    expected = (d[:, None] * at * d[None, :]) @ x + np.array([0.5, -1.0])
    run = jax.jit(lambda x, a: conv(x, a))
    got = run(jnp.asarray(x)[None], jnp.asarray(a)[None])[0]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)
    got_loop = run(jnp.asarray(x)[None], jnp.asarray(a + np.eye(3, dtype=np.float32))[None])[0]
    np.testing.assert_allclose(np.asarray(got_loop), expected, rtol=1e-6)


def test_attention_per_channel_formula():
    """Channel c: A_c = sym(mean_h tanh(Q_h K_h^T / sqrt(out_dim))), Q = GCN_c(x, adj_c);
    channels are independent (their own weights and adjacency)."""
    att = _build(lambda: Attention(2, 3, 4, 5, num_heads=2, rngs=nnx.Rngs(0)), 6)
    x, adj, mask = _inputs(1, 6, 3, [6], seed=5)
    adjc = jnp.stack([adj, adj**2 + 0.3 * adj], -1)  # [1, 6, 6, 2]
    v, a = jax.jit(lambda x, adjc: att(x, adjc))(x, adjc)
    xn, an = np.asarray(x[0], np.float64), np.asarray(adjc[0], np.float64)
    for c in range(2):
        ac = an[..., c].copy()
        np.fill_diagonal(ac, 1.0)
        d = np.maximum(ac.sum(1), 1.0) ** -0.5
        norm = d[:, None] * ac * d[None, :]

        def gcn(lin, c=c, norm=norm):
            w, b = np.asarray(lin.weight[...][c]), np.asarray(lin.bias[...][c])
            return norm @ (xn @ w) + b

        q, k, vv = gcn(att.gnn_q), gcn(att.gnn_k), gcn(att.gnn_v)
        heads = [
            np.tanh(q[:, h * 2 : h * 2 + 2] @ k[:, h * 2 : h * 2 + 2].T / np.sqrt(5))
            for h in range(2)
        ]
        ref = np.mean(heads, axis=0)
        ref = (ref + ref.T) / 2
        np.testing.assert_allclose(np.asarray(a[0, :, :, c]), ref, atol=1e-5)
        np.testing.assert_allclose(np.asarray(v[0, c]), vv, atol=1e-5)


def test_attention_mlp_conv_and_bad_conv():
    """conv='MLP' (2-layer tanh MLPs for Q, K; GCN for V) has GDSS's parameter count and
    gives symmetric attention; an unknown conv is rejected."""
    make = lambda: Attention(2, 3, 4, 5, num_heads=2, conv="MLP", rngs=nnx.Rngs(0))  # noqa: E731
    att = _build(make, 7)
    # per channel: Q, K = MLP(2, 3, 8, 4) -> (3*8+8)+(8*4+4) each; V = GCN(3, 5) -> 3*5+5
    assert _count(att) == 2 * (2 * (3 * 8 + 8 + 8 * 4 + 4) + 3 * 5 + 5)
    x, adj, _ = _inputs(1, 6, 3, [6], seed=8)
    v, a = jax.jit(lambda x, adjc: att(x, adjc))(x, jnp.stack([adj, adj], -1))
    assert v.shape == (1, 2, 6, 5) and a.shape == (1, 6, 6, 2)
    np.testing.assert_allclose(np.asarray(a), np.asarray(a).transpose(0, 2, 1, 3), atol=1e-6)
    with pytest.raises(ValueError, match="conv"):
        Attention(1, 3, 4, 5, conv="GIN", rngs=nnx.Rngs(0))


def _reference_adj_net(net, x, adj, mask):
    """ScoreNetworkA written densely, channel by channel, as GDSS's PyTorch code computes it
    (N^2 entries everywhere, Python loops over channels, jax.nn.elu, no pair tricks)."""
    m = mask[:, :, None] * mask[:, None, :]
    n = adj.shape[-1]

    def gcn_norm(a):
        a = jnp.where(jnp.eye(n, dtype=bool), 1.0, a)
        d = jnp.maximum(a.sum(-1), 1.0) ** -0.5
        return d[..., :, None] * a * d[..., None, :]

    def mlp(mod, h):
        for i, lin in enumerate(mod.linears):
            h = h @ lin.kernel[...] + lin.bias[...]
            if i < len(mod.linears) - 1:
                h = jax.nn.elu(h)
        return h

    chans = [adj]
    for _ in range(net.c_init - 1):
        chans.append(chans[-1] @ adj)
    adjc = jnp.stack(chans, -1)  # [B, N, N, C]
    outs = [adjc]
    for layer in net.layers:
        att_mod, heads = layer.attn, layer.attn.num_heads
        vs, atts = [], []
        for c in range(adjc.shape[-1]):
            norm = gcn_norm(adjc[..., c])

            def gcn(lin, c=c, norm=norm, x=x):
                return norm @ (x @ lin.weight[...][c]) + lin.bias[...][c]

            q, k, v = gcn(att_mod.gnn_q), gcn(att_mod.gnn_k), gcn(att_mod.gnn_v)
            dh = q.shape[-1] // heads
            a = jnp.mean(
                jnp.stack(
                    [
                        jnp.tanh(
                            q[..., h * dh : (h + 1) * dh]
                            @ jnp.swapaxes(k[..., h * dh : (h + 1) * dh], -1, -2)
                            / np.sqrt(att_mod.out_dim)
                        )
                        for h in range(heads)
                    ]
                ),
                0,
            )
            atts.append((a + jnp.swapaxes(a, -1, -2)) / 2)
            vs.append(v)
        x = jnp.tanh(mlp(layer.multi_channel, jnp.concatenate(vs, -1)) * mask[..., None])
        mm = mlp(layer.mlp, jnp.concatenate([jnp.stack(atts, -1), adjc], -1))
        adjc = (mm + jnp.swapaxes(mm, 1, 2)) * m[..., None]
        outs.append(adjc)
    score = mlp(net.final, jnp.concatenate(outs, -1))[..., 0]
    return score * (1 - jnp.eye(n)) * m


@pytest.fixture(scope="module")
def adj_value_and_vjp():
    """Output and parameter VJP of ScoreNetworkA (SMALL) or of the dense reference; one
    compilation each, shared by the symmetric and non-symmetric cases."""
    graphdef, state = nnx.split(_build(lambda: SMALL.make_adj(nnx.Rngs(0)), 9))

    @functools.partial(jax.jit, static_argnums=0)
    def run(reference, x, adj, mask, w):
        fn = _reference_adj_net if reference else (lambda n, *a: n(*a))
        out, vjp = jax.vjp(lambda st: fn(nnx.merge(graphdef, st), x, adj, mask), state)
        return out, vjp(w)[0]

    return run


@pytest.mark.parametrize("symmetric", [True, False])
def test_adj_net_equals_dense_reference(adj_value_and_vjp, symmetric):
    """The pair-wise ScoreNetworkA (symmetric channels kept once per pair, the final MLP
    once per pair when A = A^T) is GDSS's dense computation, values and parameter
    gradients, for symmetric and non-symmetric adjacency."""
    x, adj, mask = _inputs(2, 9, 5, [9, 6], seed=10)
    if not symmetric:  # a different weight on each side of the diagonal
        adj = adj + 0.3 * jnp.tril(adj, -1)
    w = jnp.asarray(np.random.default_rng(11).normal(size=adj.shape), jnp.float32)
    out, g_got = adj_value_and_vjp(False, x, adj, mask, w)
    ref, g_ref = adj_value_and_vjp(True, x, adj, mask, w)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=2e-6)
    assert (np.abs(np.asarray(out - jnp.swapaxes(out, 1, 2))).max() > 1e-4) == (not symmetric)
    for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5 * (1 + np.abs(b).max()))
