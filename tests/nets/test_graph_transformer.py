"""Graph transformer: permutation equivariance, symmetric edges, padding, time-agnostic mode."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.nets.graph_transformer import GraphTransformer, GraphTransformerConfig

KN, KE = 4, 4  # real node / edge classes; vocabularies are K + 1 (mask id K)
SMALL = GraphTransformerConfig(dx=16, de=8, heads=2, layers=2, ffn_x=16, ffn_e=8)


def _net(time_conditioning=False, seed=0) -> GraphTransformer:
    return SMALL.make(KN + 1, KE + 1, time_conditioning, nnx.Rngs(seed))


def _inputs(b, n, counts, seed=0):
    """Random token graphs (symmetric edges, masks included) with the given node counts."""
    rng = np.random.default_rng(seed)
    nodes = rng.integers(0, KN + 1, (b, n))
    edges = rng.integers(0, KE + 1, (b, n, n))
    edges = np.triu(edges, 1)
    edges = edges + edges.transpose(0, 2, 1)
    mask = (np.arange(n)[None] < np.asarray(counts)[:, None]).astype(np.float32)
    return jnp.asarray(nodes), jnp.asarray(edges), jnp.asarray(mask)


def test_shapes_symmetry_and_zero_padding():
    net = _net()
    nodes, edges, mask = _inputs(2, 6, [6, 1])
    xl, el = net(nodes, edges, mask)
    assert xl.shape == (2, 6, KN) and el.shape == (2, 6, 6, KE)
    el = np.asarray(el)
    np.testing.assert_array_equal(el, el.transpose(0, 2, 1, 3))
    m = np.asarray(mask)
    assert np.all(np.asarray(xl)[m == 0] == 0)
    pair = m[:, :, None] * m[:, None, :]
    assert np.all(el[pair == 0] == 0)
    assert np.all(np.isfinite(el)) and np.any(el != 0)


def test_edge_output_is_symmetric_for_asymmetric_input():
    net = _net()
    rng = np.random.default_rng(1)
    nodes = jnp.asarray(rng.integers(0, KN + 1, (2, 6)))
    edges = jnp.asarray(rng.integers(0, KE + 1, (2, 6, 6)))  # not symmetric
    _, el = net(nodes, edges, jnp.ones((2, 6)))
    np.testing.assert_array_equal(np.asarray(el), np.asarray(el).transpose(0, 2, 1, 3))


@pytest.mark.parametrize("time_conditioning", [False, True])
def test_permutation_equivariance(time_conditioning):
    net = _net(time_conditioning)
    nodes, edges, mask = _inputs(2, 6, [6, 4], seed=2)
    t = jnp.asarray([0.3, 0.8])
    perm = np.random.default_rng(3).permutation(6)
    xl, el = net(nodes, edges, mask, t)
    xp, ep = net(nodes[:, perm], edges[:, perm][:, :, perm], mask[:, perm], t)
    np.testing.assert_allclose(np.asarray(xp), np.asarray(xl)[:, perm], atol=1e-5)
    np.testing.assert_allclose(np.asarray(ep), np.asarray(el)[:, perm][:, :, perm], atol=1e-5)


def test_padding_independence():
    """Real outputs ignore padded tokens and the padded size N."""
    net = _net()
    nodes, edges, mask = _inputs(2, 6, [6, 3], seed=4)
    xl, el = net(nodes, edges, mask)
    # other values in padded positions: same outputs
    rng = np.random.default_rng(5)
    pad = np.asarray(mask) == 0
    nodes2 = np.where(pad, rng.integers(0, KN + 1, pad.shape), np.asarray(nodes))
    pair = np.asarray(mask)[:, :, None] * np.asarray(mask)[:, None, :]
    edges2 = np.where(pair == 0, rng.integers(0, KE + 1, pair.shape), np.asarray(edges))
    xl2, el2 = net(jnp.asarray(nodes2), jnp.asarray(edges2), mask)
    np.testing.assert_array_equal(np.asarray(xl2), np.asarray(xl))
    np.testing.assert_array_equal(np.asarray(el2), np.asarray(el))
    # three more padded nodes: same outputs on the real block
    big_n = np.zeros((2, 9), np.int64)
    big_n[:, :6] = np.asarray(nodes)
    big_e = np.zeros((2, 9, 9), np.int64)
    big_e[:, :6, :6] = np.asarray(edges)
    big_m = np.zeros((2, 9), np.float32)
    big_m[:, :6] = np.asarray(mask)
    xb, eb = net(jnp.asarray(big_n), jnp.asarray(big_e), jnp.asarray(big_m))
    np.testing.assert_allclose(np.asarray(xb)[:, :6], np.asarray(xl), atol=1e-5)
    np.testing.assert_allclose(np.asarray(eb)[:, :6, :6], np.asarray(el), atol=1e-5)


def test_time_is_ignored_without_time_conditioning():
    nodes, edges, mask = _inputs(2, 6, [6, 2], seed=6)
    net = _net(False)
    a = net(nodes, edges, mask, jnp.asarray([0.1, 0.2]))
    b = net(nodes, edges, mask, jnp.asarray([0.9, 0.5]))
    c = net(nodes, edges, mask)
    for u, v, w in zip(a, b, c):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
        np.testing.assert_array_equal(np.asarray(u), np.asarray(w))
    tnet = _net(True)
    a = tnet(nodes, edges, mask, jnp.asarray([0.1, 0.2]))
    b = tnet(nodes, edges, mask, jnp.asarray([0.9, 0.5]))
    assert not np.allclose(np.asarray(a[0]), np.asarray(b[0]))
    with pytest.raises(ValueError, match="time-conditioned"):
        tnet(nodes, edges, mask)
