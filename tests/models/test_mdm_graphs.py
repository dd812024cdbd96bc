"""Masked diffusion on generic graphs (community_small): tokens, loss, training, samplers
(NFE), files and metrics, with a tiny graph transformer."""

import dataclasses

import jax
import networkx as nx
import numpy as np
import pytest
from flax import nnx

from genmodels.domains.graphs import dense_to_pairs, pairs_to_dense
from genmodels.models.mdm_graphs import MDMEdgeNet, MDMGraphs
from genmodels.models.run import sample_recipe, train_recipe
from genmodels.nets.graph_transformer import GraphTransformerConfig
from genmodels.recipes import load_recipe

TINY_NET = GraphTransformerConfig(dx=16, de=8, heads=2, layers=1, ffn_x=16, ffn_e=8)
N = 20  # community_small's padded node count
MASK = 2  # the edge leaf's mask id
SAMPLERS = ("fhs", "ancestral")


def tiny(cfg, steps=2, batch=8):
    train = dataclasses.replace(
        cfg.train, steps=steps, batch_size=batch, log_every=1, ckpt_every=steps, progress=False
    )
    return dataclasses.replace(cfg, net=TINY_NET, train=train, sample_steps=10, sample_batch=4)


@pytest.fixture(scope="module")
def method():
    cfg, _ = load_recipe("mdm_community_small")
    return tiny(cfg).build()


def test_recipe_defaults():
    cfg, _ = load_recipe("mdm_community_small")
    assert cfg.sampler == "fhs" and cfg.precision == "float64"
    assert cfg.train.batch_size % 8 == 0
    m = cfg.build()
    assert isinstance(m, MDMGraphs) and m.max_nodes == N and m.sample_suffix == ".g6"


def test_loader_tokens_round_trip_to_the_training_adjacency(method):
    """The pairs are the encoded adjacency's upper triangle; padding pairs are masked."""
    train, _ = method.task.splits
    state, ctx = method.task.domain.encode(train)
    adj = np.asarray(state["adj"])  # [M, N, N]
    loader = method.loader()
    x0, tctx = method.tokens(loader.arrays)  # every training graph, in file order
    edges = np.asarray(x0["edges"])
    assert edges.shape == (len(train), N * (N - 1) // 2)
    np.testing.assert_array_equal(pairs_to_dense(edges, N), adj)
    real = np.asarray(ctx["node_mask"]) > 0
    want = dense_to_pairs(real[:, :, None] & real[:, None, :])
    np.testing.assert_array_equal(np.asarray(tctx["masks"]["edges"]) > 0, want)
    assert np.all(edges[~want] == 0)
    # a shuffled batch holds rows of the same set, with their own node masks
    batch = loader.batch(0)
    rows = {a.tobytes(): i for i, a in enumerate(np.asarray(loader.arrays["adj"]))}
    for a, m in zip(batch["adj"], batch["node_mask"]):
        i = rows[np.asarray(a).tobytes()]
        np.testing.assert_array_equal(m, loader.arrays["node_mask"][i])
    # corruption never masks padding
    _, xt, _ = method.corrupt(x0, tctx, jax.random.PRNGKey(0))
    xt = np.asarray(xt["edges"])
    assert np.all(xt[~want] == 0) and np.any(xt[want] == MASK)


def test_tiny_model_trains_and_the_recipe_samples_a_g6_file(tmp_path):
    cfg, _ = load_recipe("mdm_community_small")
    cfg = tiny(cfg, steps=3)
    res = train_recipe(cfg, tmp_path / "run", progress=False)
    assert res.step == 3
    method = cfg.build()
    batch = method.loader().batch(0)
    loss, metrics = nnx.jit(method.loss_fn)(res.model, batch, jax.random.PRNGKey(0))
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert np.isfinite(float(metrics["nll_per_token"]))
    out = sample_recipe(cfg, tmp_path / "run", num=5, out=tmp_path / "g")
    assert out.suffix == ".g6" and out.exists()
    graphs = method.read_samples(out)
    assert len(graphs) == 5
    for g in graphs:
        assert isinstance(g, nx.Graph) and not g.is_directed()
        assert 1 <= g.number_of_nodes() <= N
        assert nx.number_of_selfloops(g) == 0


class CountingNet(MDMEdgeNet):
    """Counts network evaluations at run time (inside the jitted sampling loops)."""

    calls: list = []

    def __call__(self, state, t, ctx):
        jax.debug.callback(lambda: CountingNet.calls.append(1))
        return super().__call__(state, t, ctx)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_count_calls_unmask_everything_and_keep_padding(method, sampler, precision):
    """FHS: one call per real pair of the batch's largest graph, max_b n_b (n_b - 1) / 2
    (the sampler's L_max); the cached ancestral sampler at most one per step."""
    model = CountingNet(TINY_NET, N, 2, False, rngs=nnx.Rngs(0))
    steps = 12
    CountingNet.calls.clear()
    state, ctx, info = method.sample_states(
        model, jax.random.PRNGKey(1), 4, sampler=sampler, steps=steps, precision=precision
    )
    jax.block_until_ready(state)
    jax.effects_barrier()
    edges = np.asarray(state["edges"])
    real = np.asarray(ctx["masks"]["edges"]) > 0
    assert np.all((edges[real] == 0) | (edges[real] == 1))  # no mask token left
    assert np.all(edges[~real] == 0)
    nodes = np.asarray(ctx["node_mask"]).sum(1).astype(int)
    train_counts = {g.number_of_nodes() for g in method.task.splits[0]}
    assert set(nodes.tolist()) <= train_counts
    np.testing.assert_array_equal(real.sum(1), nodes * (nodes - 1) // 2)
    nfe = int(info["nfe"])
    assert nfe == len(CountingNet.calls)
    if sampler == "fhs":
        assert nfe == int(np.max(nodes * (nodes - 1) // 2))
    else:
        assert 1 <= nfe <= steps
    for g, n in zip(method.decode(state, ctx), nodes):
        assert g.number_of_nodes() <= n and nx.number_of_selfloops(g) == 0


def test_bad_options_raise(method):
    model = method.init_model(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="cannot integrate masked"):
        method.sample_states(model, jax.random.PRNGKey(0), 2, sampler="euler")
    with pytest.raises(ValueError, match="precision"):
        method.sample_states(model, jax.random.PRNGKey(0), 2, precision="float16")
    with pytest.raises(ValueError, match="unknown options"):
        method.sample(model, jax.random.PRNGKey(0), 2, correction=False)
    with pytest.raises(ValueError, match="data set"):
        dataclasses.replace(method.config, dataset="qm9").build()


def test_evaluate_returns_the_mmd_suite(method, tmp_path):
    _, test = method.task.splits
    path = tmp_path / "t.g6"
    method.write_samples(test, path)
    got = method.evaluate(method.read_samples(path))
    assert {"degree", "clustering", "orbit", "spectral"} <= set(got)
    assert got["num_samples"] == got["num_reference"] == len(test)
    for k in ("degree", "clustering", "orbit", "spectral"):
        assert abs(got[k]) < 1e-6, (k, got[k])  # the test split against itself
