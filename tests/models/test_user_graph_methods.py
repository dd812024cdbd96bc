"""Every generic-graph method on a user's graph6 file (``--dataset PATH``): the task is
sized to the file's largest training graph, and (``slow``) one training step runs, with
tiny nets."""

import dataclasses

import jax
import networkx as nx
import numpy as np
import optax
import pytest
from flax import nnx

from genmodels.datasets.user import UserData
from genmodels.nets.graph_transformer import GraphTransformerConfig
from genmodels.nets.ppgn import PPGNTransformerConfig
from genmodels.recipes import load_recipe

RECIPES = [
    "gdss_community_small",
    "pard_community_small",
    "mdm_community_small",
    "flow_community_small",
    "pfgmpp_community_small",
]


@pytest.fixture(scope="module")
def g6(tmp_path_factory):
    """16 cycles, paths and ladders of 4-11 nodes, one graph6 line each."""
    graphs = []
    for i in range(16):
        n = 5 + i % 7
        kind = i % 3
        g = nx.cycle_graph(n) if kind == 0 else nx.path_graph(n) if kind == 1 else None
        graphs.append(g if g is not None else nx.ladder_graph(n // 2))
    path = tmp_path_factory.mktemp("user_graphs") / "mine.g6"
    path.write_bytes(b"".join(nx.to_graph6_bytes(g, header=False) for g in graphs))
    return path, graphs


def tiny(cfg, path):
    """``cfg`` on ``path`` with a tiny network and batch."""
    kind = type(cfg).__name__
    if kind.startswith("Pard"):
        net = PPGNTransformerConfig(hidden=16, edge_hidden=8, layers=1, heads=2)
    elif kind.startswith("MDM"):
        net = GraphTransformerConfig(dx=16, de=8, heads=2, layers=1, ffn_x=16, ffn_e=8)
    else:  # GDSS's two networks (GDSS, PFGM++, flow)
        net = dataclasses.replace(
            cfg.net, depth=1, nhid=8, num_layers=2, adim=8, c_hid=2, num_linears=1
        )
    train = dataclasses.replace(cfg.train, steps=1, batch_size=4, progress=False)
    data = UserData(test_fraction=0.25, split_seed=1)
    return dataclasses.replace(cfg, dataset=str(path), data=data, net=net, train=train)


@pytest.mark.parametrize("recipe", RECIPES)
def test_method_is_sized_to_a_users_file(recipe, g6, monkeypatch, tmp_path):
    """The task, the method and the training batches use the file's largest training
    graph as N, not community_small's 20."""
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    path, _ = g6
    method = tiny(load_recipe(recipe)[0], path).build()
    train, test = method.task.splits
    assert len(train) == 12 and len(test) == 4
    n = max(g.number_of_nodes() for g in train)
    assert method.task.max_nodes == n < 20
    if recipe.startswith(("pard", "mdm")):
        assert method.max_nodes == n
    batch = method.loader().batch(0)
    adj = batch["bonds" if recipe.startswith("pard") else "adj"]
    assert adj.shape == (4, n, n)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_method_trains_one_step_on_a_users_file(recipe, g6, monkeypatch, tmp_path):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    method = tiny(load_recipe(recipe)[0], g6[0]).build()
    model = method.init_model(jax.random.PRNGKey(0))
    batch = method.loader().batch(0)
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, batch, key):
        loss, grads = nnx.value_and_grad(lambda m: method.loss_fn(m, batch, key)[0])(model)
        opt.update(model, grads)
        return loss

    assert np.isfinite(float(step(model, opt, batch, jax.random.PRNGKey(1))))
