"""PFGM++ and flow matching on graphs. Molecules (pfgmpp_qm9, flow_qm9): loss,
constraints, an exact-denoiser check of the Heun sampler, BOSS grids and the command line,
on the 28-molecule QM9-like csv (``mini_data`` of conftest.py). Generic graphs
(pfgmpp_community_small, flow_community_small): training, sampling, decoding and the MMD
metrics on community_small, and the shipped models against an Erdos-Renyi baseline."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.domains.graphs import corrupt_graph
from genmodels.models.flow import FlowMethod
from genmodels.models.pfgmpp import PFGMPPMethod
from genmodels.models.tasks.graphs import GraphTask
from genmodels.models.tasks.molecules import MoleculeTask
from genmodels.recipes import load_recipe
from genmodels.samplers.registry import run_sampler

RECIPES = ["pfgmpp_qm9", "flow_qm9"]
GENERIC = ["pfgmpp_community_small", "flow_community_small"]


def tiny(cfg, steps=2, batch=16):
    net = dataclasses.replace(
        cfg.net, depth=1, nhid=8, num_layers=2, adim=8, c_hid=2, num_linears=1
    )
    train = dataclasses.replace(
        cfg.train, steps=steps, batch_size=batch, log_every=1, ckpt_every=steps, progress=False
    )
    optim = dataclasses.replace(cfg.optim, lr=3e-3, warmup_steps=0, schedule="constant")
    return dataclasses.replace(
        cfg, net=net, train=train, optim=optim, sample_batch=8, eval_fcd=False
    )


def tiny_method(name, data, **changes):
    cfg = dataclasses.replace(tiny(load_recipe(name)[0]), **changes)
    method = cfg.build()
    method.task.__dict__["data"] = data  # cached_property slot
    return cfg, method


def _train(name, data, steps=30):
    """A tiny model trained ``steps`` Adam steps on one 16-molecule batch, with the loss
    of every step; the keys cycle through five, so the first and last five steps see the
    same noise."""
    import optax

    _, method = tiny_method(name, data)
    model = method.init_model(jax.random.PRNGKey(0))
    opt = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    batch = {k: jnp.asarray(v) for k, v in method.loader().batch(0).items()}

    @nnx.jit
    def step(model, opt, key):
        loss, grads = nnx.value_and_grad(lambda m: method.loss_fn(m, batch, key)[0])(model)
        opt.update(model, grads)
        return loss

    key = jax.random.PRNGKey(1)
    losses = [float(step(model, opt, jax.random.fold_in(key, i % 5))) for i in range(steps)]
    return method, model, np.asarray(losses)


@pytest.fixture(scope="module")
def trained(mini_data):
    """``get(name) -> (method, model, losses)``, trained once per module."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _train(name, mini_data)
        return cache[name]

    return get


@pytest.mark.parametrize("name", RECIPES)
def test_training_reduces_a_finite_loss(name, trained):
    _, _, losses = trained(name)
    assert np.all(np.isfinite(losses))
    before, after = losses[:5].mean(), losses[-5:].mean()
    assert after < 0.9 * before, losses


@pytest.mark.parametrize("name", RECIPES)
def test_corruption_is_symmetric_and_zero_on_padding(name, mini_data):
    _, method = tiny_method(name, mini_data)
    x0, ctx = method.task.dense_batch(method.loader().batch(0))
    t = jnp.full((x0["x"].shape[0],), 0.7)
    corrupt = jax.jit(lambda key: corrupt_graph(method.processes, key, x0, t, ctx)[0])
    xt = corrupt(jax.random.PRNGKey(0))
    adj, m = np.asarray(xt["adj"]), np.asarray(ctx["masks"]["adj"])
    np.testing.assert_array_equal(adj, adj.transpose(0, 2, 1))
    assert np.all(adj[m == 0] == 0) and np.any(adj[m > 0] != np.asarray(x0["adj"])[m > 0])
    assert np.all(np.asarray(xt["x"])[np.asarray(ctx["node_mask"]) == 0] == 0)


@pytest.mark.parametrize(
    ("name", "sampler", "nfe"),
    [
        ("pfgmpp_qm9", "heun", 5),
        pytest.param("pfgmpp_qm9", "euler", 3, marks=pytest.mark.slow),
        ("flow_qm9", "euler", 3),
        pytest.param("flow_qm9", "heun", 6, marks=pytest.mark.slow),
    ],
)
def test_samples_are_symmetric_with_zero_diagonal_and_padding(name, sampler, nfe, trained):
    method, model, _ = trained(name)
    state, ctx, info = method.sample_states(
        model, jax.random.PRNGKey(1), 8, sampler=sampler, steps=3
    )
    assert int(info["nfe"]) == nfe
    assert state["x"].shape == (8, 9, 4)  # a round of 8 graphs, whatever sample_batch is
    adj, mask = np.asarray(state["adj"]), np.asarray(ctx["masks"]["adj"])
    assert np.all(np.isfinite(adj)) and np.all(np.isfinite(np.asarray(state["x"])))
    np.testing.assert_array_equal(adj, adj.transpose(0, 2, 1))
    assert np.all(adj[mask == 0] == 0)  # padding and diagonal exactly zero
    assert np.all(np.asarray(state["x"])[np.asarray(ctx["node_mask"]) == 0] == 0)


@pytest.mark.parametrize("D", [128.0, float("inf")])
def test_heun_with_the_exact_denoiser_lands_on_the_data(D, mini_data):
    """Ten 3-atom molecules as the data: with their exact PFGM++ posterior mean (a product
    of the two leaves' kernels, N_x = 12 and N_adj = 3 free entries) the method's Heun
    sampler ends on the molecules themselves."""
    _, method = tiny_method("pfgmpp_qm9", mini_data, D=D)
    smiles = ["CCC", "CCO", "COC", "C1CC1", "C1CO1", "CC=O", "NC=O", "OC=O", "CC#C", "CC#N"]
    pts, pctx = method.task.domain.encode(smiles)  # x [M, 9, 4], adj [M, 9, 9]
    dims = {"x": 3 * 4, "adj": 3}
    # full-matrix squared distances count each adj pair twice
    halves = {"x": 1.0, "adj": 0.5}

    def denoise(state, sigma, ctx):
        logits = 0.0
        for k in ("x", "adj"):
            d2 = halves[k] * jnp.sum((state[k][:, None] - pts[k][None]) ** 2, axis=(2, 3))
            s2 = sigma[:, None] ** 2
            if np.isinf(D):
                logits = logits - d2 / (2 * s2)
            else:
                logits = logits - (dims[k] + D) / 2 * jnp.log1p(d2 / (s2 * D))
        post = jax.nn.softmax(logits, axis=-1)  # [B, M]
        hi = jax.lax.Precision.HIGHEST
        return {k: jnp.einsum("bm,m...->b...", post, pts[k], precision=hi) for k in pts}

    b = 16
    ctx = jax.tree.map(lambda v: jnp.repeat(v[:1], b, axis=0), pctx)
    shapes = {"x": (b, 9, 4), "adj": (b, 9, 9)}
    procs, cons = method.processes, method.task.constrain
    run = jax.jit(
        lambda key: run_sampler(
            "heun", denoise, procs, ctx, key, shapes=shapes, steps=18, constrain=cons
        )[0]
    )
    out = run(jax.random.PRNGKey(0))
    dist = sum(
        jnp.sqrt(jnp.sum((out[k][:, None] - pts[k][None]) ** 2, axis=(2, 3))) for k in pts
    )  # [B, M]
    assert float(jnp.max(jnp.min(dist, axis=1))) < 1e-3
    assert len(set(np.asarray(jnp.argmin(dist, axis=1)).tolist())) >= 2


@pytest.mark.slow  # ~60 s; BOSS grids and sampler: tests/models/test_boss.py, test_image_methods.py
def test_boss_grids_and_the_boss_sampler(trained, tmp_path):
    from genmodels.samplers.boss import compute_boss_grids, write_boss_grids

    method, model, _ = trained("flow_qm9")
    ks = (2, 3, 4)
    grids, info = compute_boss_grids(
        method.boss_problem(model), jax.random.PRNGKey(0), num_samples=8, fine_steps=10, ks=ks,
        batch_size=8, progress=False,
    )  # fmt: skip
    assert sorted(grids) == list(ks) and info["cost_matrix"].shape == (11, 11)
    for k, g in grids.items():
        assert g.shape == (k + 1,) and g[0] == 1.0 and g[-1] == 0.0 and np.all(np.diff(g) < 0)
        assert info["cost"][k] <= info["uniform_cost"][k] + 1e-6

    method.checkpoint_dir = tmp_path
    with pytest.raises(
        FileNotFoundError, match=f"genmodels boss-grids RECIPE --checkpoint {tmp_path}"
    ):
        method.sample_states(model, jax.random.PRNGKey(1), 8, sampler="boss", steps=3)
    write_boss_grids(tmp_path / "boss_grids.json", grids)
    state, ctx, info = method.sample_states(
        model, jax.random.PRNGKey(1), 8, sampler="boss", steps=3
    )
    assert int(info["nfe"]) == 3
    adj = np.asarray(state["adj"])
    np.testing.assert_array_equal(adj, adj.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="no BOSS grid for 7 steps"):
        method.sample_states(model, jax.random.PRNGKey(1), 8, sampler="boss", steps=7)


def test_recipes_build_gdss_sized_networks():
    for name, cls in (("pfgmpp_qm9", PFGMPPMethod), ("flow_qm9", FlowMethod)):
        cfg, _ = load_recipe(name)
        assert cfg.train.batch_size % 8 == 0
        method = cfg.build()
        assert isinstance(method, cls) and isinstance(method.task, MoleculeTask)
        assert method.sample_suffix == ".smi"
        model = nnx.eval_shape(lambda m=method: m.init_model(jax.random.PRNGKey(0)))
        n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
        assert 5e3 < n < 1e5, n
    assert load_recipe("pfgmpp_qm9")[0].D == 128.0


# each takes 45-80 s on 2 cores (mostly compiling the training loop's sharded step and
# initialising the networks): `pytest -m slow tests/models/test_graph_continuous.py`
@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_cli_trains_samples_and_evaluates(name, mini_data, tmp_path, capsys, monkeypatch):
    """``genmodels train`` (3 steps) -> ``sample`` (8 raw molecules) -> ``evaluate``; for the
    flow also the missing-grid error, ``genmodels boss-grids`` and
    ``--sampler boss --steps K``. The recipe is shrunk (tiny networks, the fixture's data)
    behind every command's recipe lookup."""
    import genmodels.cli
    import genmodels.recipes
    from genmodels.cli import main
    from genmodels.samplers.boss import read_boss_grids

    real = genmodels.recipes.load_recipe

    def small(n):
        cfg, info = real(n)
        return (tiny(cfg, steps=3, batch=8) if n == name else cfg), info

    monkeypatch.setattr(genmodels.recipes, "load_recipe", small)
    monkeypatch.setattr(genmodels.cli, "load_recipe", small)
    monkeypatch.setattr(MoleculeTask, "data", property(lambda self: mini_data))
    run = tmp_path / "run"
    assert main(["train", name, "--workdir", str(run)]) == 0
    out = tmp_path / "m.smi"
    argv = ["sample", name, "--checkpoint", str(run), "--num", "8", "--batch-size", "8"]
    if name == "flow_qm9":
        assert main([*argv, "--sampler", "boss", "--steps", "3", "--out", str(out)]) == 1
        assert f"boss-grids RECIPE --checkpoint {run}" in capsys.readouterr().err
        grids = ["--num-samples", "8", "--fine-steps", "10", "--batch-size", "8"]
        assert main(["boss-grids", name, "--checkpoint", str(run), *grids, "--ks", "2", "3"]) == 0
        stored = read_boss_grids(run / "boss_grids.json")
        assert sorted(stored) == [2, 3]
        for k, g in stored.items():  # K + 1 times from 1 (noise) down to 0 (data)
            assert g.shape == (k + 1,) and g[0] == 1 and g[-1] == 0 and np.all(np.diff(g) < 0)
        argv += ["--sampler", "boss", "--steps", "3"]
    assert main([*argv, "--no-correction", "True", "--out", str(out)]) == 0
    raw = out.read_text().splitlines()
    assert len(raw) == 8
    capsys.readouterr()
    assert main(["evaluate", name, "--samples", str(out)]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    want = {"validity", "validity_wo_correction", "uniqueness", "novelty", "nspdk"}
    assert want <= set(got), got
    assert got["validity_wo_correction"] == pytest.approx(np.mean([bool(s) for s in raw]))


# ------------------------------------------------------------------ generic graphs


def test_generic_recipes_build_the_generic_task():
    for name, cls in zip(GENERIC, (PFGMPPMethod, FlowMethod)):
        cfg, _ = load_recipe(name)
        assert cfg.train.batch_size % 8 == 0
        method = cfg.build()
        assert isinstance(method, cls) and isinstance(method.task, GraphTask)
        assert method.sample_suffix == ".g6"
        assert method.task.domain.max_nodes == cfg.net.max_node_num == 20


@pytest.mark.slow  # 30-70 s each: the same state and networks are trained in
# test_training_reduces_a_finite_loss, sampled in test_generic_graph_pretrained.py and
# tests/test_sharded_sampling.py, evaluated (MMD suite) in tests/models/test_gdss.py
@pytest.mark.parametrize("name", GENERIC)
def test_generic_recipe_trains_samples_and_evaluates(name, tmp_path):
    """Two training steps on community_small, then the loader's state is noised
    symmetrically, and sampled graphs decode to simple graphs scored by the MMD suite."""
    import networkx as nx

    from genmodels.models.run import sample_recipe, train_recipe

    cfg = dataclasses.replace(tiny(load_recipe(name)[0], batch=8), sample_steps=3)
    res = train_recipe(cfg, tmp_path / "run", progress=False)
    assert res.step == 2
    method = cfg.build()
    x0, ctx = method.task.dense_batch(method.loader().batch(0))
    assert x0["x"].shape == (8, 20, 10) and x0["adj"].shape == (8, 20, 20)
    t = jnp.full((8,), 0.7)
    xt = corrupt_graph(method.processes, jax.random.PRNGKey(0), x0, t, ctx)[0]
    adj, m = np.asarray(xt["adj"]), np.asarray(ctx["masks"]["adj"])
    np.testing.assert_array_equal(adj, adj.transpose(0, 2, 1))
    assert np.all(adj[m == 0] == 0) and np.any(adj[m > 0] != np.asarray(x0["adj"])[m > 0])

    out = sample_recipe(cfg, tmp_path / "run", num=6, out=tmp_path / "g")
    graphs = method.read_samples(out)
    assert out.suffix == ".g6" and len(graphs) == 6
    for g in graphs:
        assert 1 <= g.number_of_nodes() <= 20 and nx.number_of_selfloops(g) == 0
    got = method.evaluate(graphs)
    assert {"degree", "clustering", "orbit", "spectral"} <= set(got)
    assert got["num_samples"] == 6 and got["num_reference"] == 20
