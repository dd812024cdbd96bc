"""PPGN transformer (PARD): block-causal mask, padding, equivariance, causality, jit; PARD's
output heads and input residual."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.nets.ppgn import (
    MonotoneMLP,
    PardHeads,
    PardNet,
    PPGNBlock,
    PPGNTransformer,
    PPGNTransformerConfig,
    causal_block_mask,
    edge_mask_from_causal,
)

C, CE = 16, 8
SMALL = PPGNTransformerConfig(hidden=C, edge_hidden=CE, layers=2, heads=2)

# One graph of 8 slots: block 0 real {0, 1}; block 1 real {2, 3}, virtual {4};
# block 2 real {5}, virtual {6}; slot 7 padding.
BLOCK = np.array([0, 0, 1, 1, 1, 2, 2, -1])
VIRT = np.array([0, 0, 0, 0, 1, 0, 1, 0], bool)


def _net(seed=0, **kw) -> PPGNTransformer:
    return dataclasses.replace(SMALL, **kw).make(nnx.Rngs(seed))


def _features(b, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, n, C)).astype(np.float32)
    e = rng.normal(size=(b, n, n, CE)).astype(np.float32)
    return x, e


def _node_edge_mask(counts, n):
    m = np.arange(n)[None] < np.asarray(counts)[:, None]
    return m[:, :, None] & m[:, None, :]


def _causal():
    block = jnp.asarray(np.stack([BLOCK, np.roll(BLOCK, 3)]))
    virt = jnp.asarray(np.stack([VIRT, np.roll(VIRT, 3)]))
    return block, virt, causal_block_mask(block, virt)


def _run(net, x, e, edge_mask, causal=None):
    """Eager forward (all tests share B = 2, N = 8, so the per-op compiles are reused)."""
    out = net(jnp.asarray(x), jnp.asarray(e), jnp.asarray(edge_mask), causal)
    return tuple(np.asarray(o) for o in out)


def test_causal_block_mask_by_hand():
    block = jnp.asarray([[0, 0, 1, -1]])
    virt = jnp.asarray([[False, False, True, False]])
    got = np.asarray(causal_block_mask(block, virt))[0]
    want = np.array(
        [
            [1, 1, 0, 0],  # real node of block 0: its own block
            [1, 1, 0, 0],
            [1, 1, 1, 0],  # virtual node of block 1: earlier real nodes and itself
            [0, 0, 0, 0],  # padding reads nothing
        ],
        bool,
    )
    np.testing.assert_array_equal(got, want)
    sym = np.asarray(edge_mask_from_causal(jnp.asarray(got)))
    np.testing.assert_array_equal(sym, want | want.T)
    # virtual nodes of one block read each other; real nodes never read virtual ones
    got = np.asarray(causal_block_mask(jnp.asarray(BLOCK), jnp.asarray(VIRT)))
    assert got[4, 4] and got[6, 6] and got[6, 4] == 0 and got[6, 2] and got[6, 5] == 0
    assert not got[~VIRT][:, VIRT].any()


@pytest.mark.parametrize(
    "kw", [{}, {"transformer_only": True}, {"add_transpose": False}], ids=["full", "tf", "no_t"]
)
def test_shapes_and_zero_padding(kw):
    net = _net(**kw)
    x, e = _features(2, 8)
    mask = _node_edge_mask([8, 3], 8)
    xo, eo = _run(net, x, e, mask)
    assert xo.shape == (2, 8, C) and eo.shape == (2, 8, 8, CE)
    node = mask.any(-1)
    assert np.all(xo[~node] == 0) and np.all(eo[~mask] == 0)
    assert np.all(np.isfinite(xo)) and np.all(np.isfinite(eo))
    assert np.all(xo[node] != 0) and np.any(eo[mask] != 0)


def test_padding_independence():
    net = _net()
    x, e = _features(2, 8, seed=1)
    mask = _node_edge_mask([8, 3], 8)
    xo, eo = _run(net, x, e, mask)
    x2, e2 = _features(2, 8, seed=2)
    node = mask.any(-1)
    x2 = np.where(node[..., None], x, 100 * x2)
    e2 = np.where(mask[..., None], e, 100 * e2)
    xo2, eo2 = _run(net, x2, e2, mask)
    np.testing.assert_array_equal(xo2, xo)
    np.testing.assert_array_equal(eo2, eo)
    # with a causal mask: everything outside the pair mask causal | causal^T is ignored
    _, _, causal = _causal()
    full = np.ones((2, 8, 8), bool)
    x, e = _features(2, 8, seed=3)
    xo, eo = _run(net, x, e, full, causal)
    pair = np.asarray(edge_mask_from_causal(causal))
    x2, e2 = _features(2, 8, seed=4)
    x2 = np.where(pair.any(-1)[..., None], x, x2)
    e2 = np.where(pair[..., None], e, e2)
    xo2, eo2 = _run(net, x2, e2, full, causal)
    np.testing.assert_array_equal(xo2, xo)
    np.testing.assert_array_equal(eo2, eo)
    assert np.all(xo[~pair.any(-1)] == 0) and np.all(eo[~pair] == 0)


def test_permutation_equivariance():
    net = _net()
    x, e = _features(2, 8, seed=5)
    mask = _node_edge_mask([8, 5], 8)
    perm = np.random.default_rng(6).permutation(8)
    xo, eo = _run(net, x, e, mask)
    xp, ep = _run(net, x[:, perm], e[:, perm][:, :, perm], mask[:, perm][:, :, perm])
    np.testing.assert_allclose(xp, xo[:, perm], atol=1e-5)
    np.testing.assert_allclose(ep, eo[:, perm][:, :, perm], atol=1e-5)
    # causal: block ids and virtual flags move with the nodes
    block, virt, causal = _causal()
    full = np.ones((2, 8, 8), bool)
    xo, eo = _run(net, x, e, full, causal)
    causal_p = causal_block_mask(block[:, perm], virt[:, perm])
    xp, ep = _run(net, x[:, perm], e[:, perm][:, :, perm], full, causal_p)
    np.testing.assert_allclose(xp, xo[:, perm], atol=1e-5)
    np.testing.assert_allclose(ep, eo[:, perm][:, :, perm], atol=1e-5)


def _perturb(x, e, nodes, seed):
    """New features on ``nodes`` and on every pair that touches them."""
    x2, e2 = _features(2, 8, seed=seed)
    x, e = x.copy(), e.copy()
    x[:, nodes] = x2[:, nodes]
    e[:, nodes] = e2[:, nodes]
    e[:, :, nodes] = e2[:, :, nodes]
    return x, e


def test_causality():
    net = _net(seed=1)
    causal = causal_block_mask(
        jnp.asarray(np.stack([BLOCK] * 2)), jnp.asarray(np.stack([VIRT] * 2))
    )
    full = np.ones((2, 8, 8), bool)
    x, e = _features(2, 8, seed=7)
    xo, eo = _run(net, x, e, full, causal)
    real = np.flatnonzero((BLOCK >= 0) & ~VIRT)
    # a later block (its real and virtual nodes, their pairs) leaves blocks 0 and 1 alone
    early = np.arange(5)  # blocks 0 and 1, the virtual node 4 of block 1 included
    xl, el = _run(net, *_perturb(x, e, [5, 6], seed=8), full, causal)
    np.testing.assert_allclose(xl[:, early], xo[:, early], atol=1e-6)
    np.testing.assert_allclose(el[:, early][:, :, early], eo[:, early][:, :, early], atol=1e-6)
    assert np.abs(xl[:, 5:7] - xo[:, 5:7]).max() > 1e-3
    # block 1 alone: block 0 is untouched, block 1 is not
    xl, el = _run(net, *_perturb(x, e, [2, 3, 4], seed=9), full, causal)
    np.testing.assert_allclose(xl[:, :2], xo[:, :2], atol=1e-6)
    np.testing.assert_allclose(el[:, :2, :2], eo[:, :2, :2], atol=1e-6)
    # virtual nodes: no real node and no pair of real nodes sees them
    xv, ev = _run(net, *_perturb(x, e, [4, 6], seed=10), full, causal)
    np.testing.assert_allclose(xv[:, real], xo[:, real], atol=1e-6)
    np.testing.assert_allclose(ev[:, real][:, :, real], eo[:, real][:, :, real], atol=1e-6)
    assert np.abs(xv[:, [4, 6]] - xo[:, [4, 6]]).max() > 1e-3
    # ... but a virtual node reads the real nodes of earlier blocks
    xr, _ = _run(net, *_perturb(x, e, [0], seed=11), full, causal)
    assert np.abs(xr[:, 4] - xo[:, 4]).max() > 1e-3  # block 1 reads block 0
    xr, _ = _run(net, *_perturb(x, e, [2], seed=12), full, causal)
    assert np.abs(xr[:, 6] - xo[:, 6]).max() > 1e-3  # block 2 reads block 1
    # the virtual node 4 does not read the real nodes of its own block 1
    np.testing.assert_allclose(xr[:, 4], xo[:, 4], atol=1e-6)


def test_ppgn_product_matches_brute_force():
    """The two-einsum causal product equals the sum over k with A_ik or A_jk."""
    blk = PPGNBlock(CE, rngs=nnx.Rngs(3))
    _, e = _features(2, 8, seed=13)
    _, _, causal = _causal()
    pair = edge_mask_from_causal(causal).astype(jnp.float32)
    got = np.asarray(blk(jnp.asarray(e), pair, causal))
    pm = pair[..., None]
    en = blk.ln1(jnp.asarray(e)) * pm
    u = jax.nn.silu(blk.mlp1(jnp.concatenate([en, jnp.swapaxes(en, 1, 2)], -1))) * pm
    v = jax.nn.silu(blk.mlp2(en)) * pm
    a = np.asarray(causal)
    sel = a[:, :, None, :] | a[:, None, :, :]  # [B, i, j, k]
    prod = np.einsum("bijk,bikc,bkjc->bijc", sel, np.asarray(u), np.asarray(v))
    want = e + np.asarray(blk.lin(jnp.asarray(prod)) * pm)
    want = want + np.asarray(blk.mlp3(blk.ln2(jnp.asarray(want)) * pm) * pm)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_jit_matches_eager():
    net = _net(layers=1)  # one layer: a shorter compile
    x, e = _features(2, 8, seed=14)
    _, _, causal = _causal()
    full = jnp.ones((2, 8, 8), bool)
    xj, ej = _run(net, x, e, full, causal)
    graphdef, state = nnx.split(net)
    xo, eo = jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))(
        state, jnp.asarray(x), jnp.asarray(e), full, causal
    )
    np.testing.assert_allclose(xj, np.asarray(xo), atol=1e-5)
    np.testing.assert_allclose(ej, np.asarray(eo), atol=1e-5)


# ------------------------------------------------------------------ PARD's heads and residual


def test_monotone_mlp_is_nondecreasing_in_0_1_whatever_the_weight_signs():
    phi = MonotoneMLP(32, rngs=nnx.Rngs(0))
    u = jnp.linspace(0.0, 1.0, 101)
    y = np.asarray(phi(u))
    assert np.all((y > 0) & (y < 1)) and np.all(np.diff(y) >= 0) and y[-1] > y[0]
    # the weights enter through |w|: negated weights give the same, still monotone, phi
    phi.w1[...] = -phi.w1[...]
    phi.w2[...] = -phi.w2[...]
    np.testing.assert_array_equal(np.asarray(phi(u)), y)


def test_reference_heads_shapes_symmetry_and_permutation_equivariance():
    heads = PardHeads(C, CE, 5, 3, rngs=nnx.Rngs(2))
    x, e = _features(2, 8, seed=7)
    block, virt, causal = _causal()
    nl, el = (np.asarray(o) for o in heads(jnp.asarray(x), jnp.asarray(e), causal))
    assert nl.shape == (2, 8, 5) and el.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(el, el.transpose(0, 2, 1, 3), atol=1e-6)
    perm = np.random.default_rng(8).permutation(8)
    causal_p = causal_block_mask(block[:, perm], virt[:, perm])
    nlp, elp = heads(jnp.asarray(x[:, perm]), jnp.asarray(e[:, perm][:, :, perm]), causal_p)
    np.testing.assert_allclose(np.asarray(nlp), nl[:, perm], atol=1e-5)
    np.testing.assert_allclose(np.asarray(elp), el[:, perm][:, :, perm], atol=1e-5)
    # nodes pool only the pairs they may read: a pair in no causal row (real 2 and virtual
    # 4 of block 1) changes nothing; one that virtual 4 reads (real 0 of block 0) does
    for i, j, moves in ((2, 4, False), (0, 4, True)):
        e2 = e.copy()
        e2[0, i, j] += 1.0
        e2[0, j, i] += 1.0
        nl2, el2 = (np.asarray(o) for o in heads(jnp.asarray(x), jnp.asarray(e2), causal))
        assert np.array_equal(nl2, nl) != moves and np.array_equal(el2, el) != moves


def _pard_net(**kw):
    cfg = dataclasses.replace(SMALL, **kw)
    return PardNet(cfg, 5, 4, max_blocks=8, max_size=8, max_degree=7, rngs=nnx.Rngs(3))


def _pard_inputs(seed=9):
    rng = np.random.default_rng(seed)
    block, virt, _ = _causal()
    nodes = jnp.asarray(rng.integers(0, 5, (2, 8)))
    edges = rng.integers(0, 4, (2, 8, 8))
    edges = jnp.asarray(np.triu(edges, 1) + np.triu(edges, 1).transpose(0, 2, 1))
    degree = jnp.asarray(rng.integers(0, 4, (2, 8)))
    return nodes, edges, block, virt, degree, jnp.array([3.0, 17.0]), 20


@pytest.mark.parametrize("heads", ["reference", "mlp"])
def test_input_residual_adds_phi_times_the_one_hot_of_x_t(heads):
    net = _pard_net(output_heads=heads)
    args = _pard_inputs()
    nodes, edges, t, steps = args[0], args[1], args[5], args[6]
    nl, el, _ = net(*args)
    net.input_residual = False  # the same parameters without the residual
    nl0, el0, _ = net(*args)
    net.input_residual = True
    u = 1.0 - t / steps
    want_n = np.asarray(net.phi_node(u))[:, None, None] * np.eye(5)[np.asarray(nodes)]
    want_e = np.asarray(net.phi_edge(u))[:, None, None, None] * np.eye(4)[np.asarray(edges)]
    np.testing.assert_allclose(np.asarray(nl - nl0), want_n, atol=1e-5)
    np.testing.assert_allclose(np.asarray(el - el0), want_e, atol=1e-5)
    # phi = 0 (its output bias at -inf) is the network built without the residual
    plain = _pard_net(output_heads=heads, input_residual=False)
    for phi in (net.phi_node, net.phi_edge):
        phi.b2[...] = jnp.asarray(-jnp.inf)
    for got, want in zip(net(*args), plain(*args)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_pard_net_switches_build_the_stated_modules():
    default = nnx.state(_pard_net(), nnx.Param)
    legacy = nnx.state(
        _pard_net(output_heads="mlp", input_residual=False, absolute_block_id=False), nnx.Param
    )
    assert {"out", "phi_node", "phi_edge", "block_embed"} <= set(default)
    assert not {"node_out", "edge_out"} & set(default)
    assert {"node_out", "edge_out"} <= set(legacy)
    assert not {"out", "phi_node", "phi_edge", "block_embed"} & set(legacy)
    with pytest.raises(ValueError, match="output_heads"):
        PPGNTransformerConfig(output_heads="linear")


def test_pard_net_is_permutation_equivariant_with_the_reference_heads():
    net = _pard_net()
    nodes, edges, block, virt, degree, t, steps = _pard_inputs()
    nl, el, h = (np.asarray(o) for o in net(nodes, edges, block, virt, degree, t, steps))
    perm = np.random.default_rng(10).permutation(8)
    pe = lambda a: a[:, perm][:, :, perm]  # noqa: E731
    out = net(nodes[:, perm], pe(edges), block[:, perm], virt[:, perm], degree[:, perm], t, steps)
    np.testing.assert_allclose(np.asarray(out[0]), nl[:, perm], atol=1e-4)
    np.testing.assert_allclose(np.asarray(out[1]), pe(el), atol=1e-4)
    np.testing.assert_allclose(np.asarray(out[2]), h[:, perm], atol=1e-4)
