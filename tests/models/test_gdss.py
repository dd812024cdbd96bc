"""GDSS: recipe smoke tests (tiny networks), sampler wiring, loss and round trips."""

import dataclasses

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from genmodels.domains.graphs import symmetric_noise
from genmodels.models.gdss import GDSSScore
from genmodels.models.run import sample_recipe, train_recipe
from genmodels.models.runner import Runner
from genmodels.recipes import load_recipe
from genmodels.samplers.registry import samplers_for

#: every registered sampler for SDEs (GDSS takes all of them)
SAMPLERS = sorted(samplers_for("sde"))

RECIPES = ["gdss_community_small", "gdss_ego_small", "gdss_enzymes", "gdss_grid"]
# 50-100 s each on 2 cores (the large-graph ones 125 and 361 nodes): slow-marked
# (``pytest -m slow tests/models/test_gdss.py``); GDSS trains, samples and evaluates in the
# default run through tests/cli/test_own_data_molecules.py, its pretrained generic-graph
# model in test_pretrained_samples_beat_an_erdos_renyi_baseline
RECIPE_PARAMS = [pytest.param(n, marks=pytest.mark.slow) for n in RECIPES]


def tiny(cfg, steps=2, batch=8):
    net = dataclasses.replace(
        cfg.net, depth=1, nhid=8, num_layers=2, adim=8, c_hid=2, num_linears=1
    )
    train = dataclasses.replace(
        cfg.train, steps=steps, batch_size=batch, log_every=1, ckpt_every=steps, progress=False
    )
    return dataclasses.replace(cfg, net=net, train=train, sample_steps=5, sample_batch=4)


@pytest.mark.parametrize("name", RECIPE_PARAMS)
def test_recipe_trains_and_samples_valid_graphs(name, tmp_path):
    cfg, _ = load_recipe(name)
    cfg = tiny(cfg)
    res = train_recipe(cfg, tmp_path / "run", progress=False)
    assert res.step == 2
    # sampling loads the parameters the reference samples with (use_ema per config)
    from flax import nnx

    from genmodels.models.run import load_recipe_model

    _, loaded, _ = load_recipe_model(cfg, tmp_path / "run")
    want = res.ema_model if cfg.sample_use_ema else res.model
    other = res.model if cfg.sample_use_ema else res.ema_model
    got_leaves = jax.tree.leaves(nnx.state(loaded, nnx.Param))
    for a, b in zip(got_leaves, jax.tree.leaves(nnx.state(want, nnx.Param))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(got_leaves, jax.tree.leaves(nnx.state(other, nnx.Param)))
    )
    out = sample_recipe(cfg, tmp_path / "run", num=5, out=tmp_path / "g")
    assert out.suffix == ".g6"
    method = cfg.build()
    graphs = method.read_samples(out)
    assert len(graphs) == 5
    for g in graphs:
        assert 1 <= g.number_of_nodes() <= cfg.net.max_node_num
        assert nx.number_of_selfloops(g) == 0


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_sampler_reports_nfe_and_respects_masks(sampler):
    cfg, _ = load_recipe("gdss_community_small")
    cfg = tiny(cfg)
    method = cfg.build()
    assert method.samplers[0] == cfg.sampler and sorted(method.samplers) == SAMPLERS
    model = method.init_model(jax.random.PRNGKey(0))
    state, ctx, info = method.sample_states(
        model, jax.random.PRNGKey(1), 4, sampler=sampler, steps=6
    )
    if sampler == "ode":  # fixed steps of diffrax's Tsit5: several stages a step
        assert int(info["nfe"]) >= 6
    else:
        assert int(info["nfe"]) == 6 * (2 if sampler.endswith("langevin") else 1)
    adj, mask = np.asarray(state["adj"]), np.asarray(ctx["masks"]["adj"])
    np.testing.assert_array_equal(adj, adj.transpose(0, 2, 1))  # symmetric
    assert np.all(adj[mask == 0] == 0)  # padding and diagonal exactly zero
    assert np.all(np.asarray(state["x"])[np.asarray(ctx["masks"]["x"])[..., 0] == 0] == 0)


@pytest.mark.slow  # the GDSS graph state is sharded in tests/test_sharded_sampling.py (flow_graphs-euler)
@pytest.mark.devices
def test_sampling_split_over_devices_gives_the_same_graphs(monkeypatch):
    sampler = "euler_langevin"
    if jax.device_count() < 2:
        pytest.skip("needs several (simulated) devices; .ci/run sets 8")
    cfg, _ = load_recipe("gdss_community_small")
    method = tiny(cfg).build()
    model = method.init_model(jax.random.PRNGKey(0))
    batch = 2 * jax.device_count()
    key = jax.random.PRNGKey(3)
    sharded, _, _ = method.sample_states(model, key, batch, sampler=sampler, steps=6)
    assert len(sharded["adj"].sharding.device_set) == jax.device_count()
    monkeypatch.setattr(jax, "local_device_count", lambda *a: 1)
    method.runner = Runner()  # its compiled calls hold the mesh
    single, _, _ = method.sample_states(model, key, batch, sampler=sampler, steps=6)
    assert len(single["adj"].sharding.device_set) == 1
    for k in ("x", "adj"):
        # equal up to float32 rounding (partitioned reductions sum in another order)
        np.testing.assert_allclose(
            np.asarray(sharded[k]), np.asarray(single[k]), rtol=1e-4, atol=1e-4
        )


def test_symmetric_noise_is_standard_normal_off_diagonal():
    z = np.asarray(symmetric_noise(jax.random.PRNGKey(0), (200, 10, 10)))
    np.testing.assert_array_equal(z, z.transpose(0, 2, 1))
    assert np.all(np.diagonal(z, axis1=1, axis2=2) == 0)
    off = z[:, np.triu_indices(10, 1)[0], np.triu_indices(10, 1)[1]]
    assert abs(off.mean()) < 0.03 and abs(off.std() - 1) < 0.03


def test_loss_of_a_zero_network_is_half_the_noise_energy():
    """With score 0 the GDSS loss is 0.5 * sum z^2 over real entries: for x that is
    0.5 * (#real nodes * F) in expectation, for adj 0.5 * n(n-1) (symmetric, zero diagonal)."""
    cfg, _ = load_recipe("gdss_community_small")
    method = tiny(cfg).build()
    batch = {k: jnp.asarray(v) for k, v in method.loader().batch(0).items()}

    class Zero(GDSSScore):
        def __call__(self, state, t, ctx):
            return {k: jnp.zeros_like(v) for k, v in state.items()}

    model = Zero(tiny(cfg).net, method.sde_x, method.sde_adj, rngs=__import__("flax").nnx.Rngs(0))
    lx, la = [], []
    for i in range(40):
        _, m = method.loss_fn(model, batch, jax.random.PRNGKey(i))
        lx.append(float(m["loss_x"]))
        la.append(float(m["loss_adj"]))
    n = np.asarray(batch["node_mask"]).sum(1)
    f = cfg.net.max_feat_num
    np.testing.assert_allclose(np.mean(lx), 0.5 * np.mean(n * f), rtol=0.05)
    np.testing.assert_allclose(np.mean(la), 0.5 * np.mean(n * (n - 1)), rtol=0.05)


def test_evaluate_gives_zero_mmd_for_the_test_set_itself():
    cfg, _ = load_recipe("gdss_community_small")
    method = cfg.build()
    _, test = method.task.splits
    res = method.evaluate(test)
    for k in ("degree", "clustering", "orbit", "spectral"):
        assert res[k] == pytest.approx(0.0, abs=1e-10)
    train, _ = method.task.splits
    res_train = method.evaluate(train[:20])
    assert res_train["degree"] > 0


@pytest.fixture
def tiny_qm9(mini_data):
    """A GDSS-QM9 method whose data is a 28-molecule csv (``mini_data`` of conftest.py;
    the full set takes minutes)."""
    data = mini_data
    cfg, _ = load_recipe("gdss_qm9")
    cfg = dataclasses.replace(tiny(cfg), eval_fcd=False)
    method = cfg.build()
    method.task.__dict__["data"] = data  # cached_property slot
    return cfg, method


@pytest.mark.slow  # tests/cli/test_own_data_molecules.py trains, samples and evaluates gdss_qm9 (on a user file)
def test_gdss_qm9_trains_samples_and_evaluates(tiny_qm9, tmp_path):
    from genmodels.train import train

    cfg, method = tiny_qm9
    assert len(method.task.data.train_idx) == 25 and len(method.task.data.test_idx) == 3
    model = method.init_model(jax.random.PRNGKey(0))
    res = train(model, method.loss_fn, method.loader(), cfg.train, cfg.optim, None)
    assert res.step == 2
    raw = method.sample(res.model, jax.random.PRNGKey(1), 6, steps=5, correction=False)
    fixed = method.sample(res.model, jax.random.PRNGKey(1), 6, steps=5, correction=True)
    assert len(raw) == len(fixed) == 6
    # correction can only turn failures into molecules, never the reverse
    assert sum(bool(s) for s in fixed) >= sum(bool(s) for s in raw)
    path = tmp_path / "m.smi"
    method.write_samples(raw, path)
    back = method.read_samples(path)
    assert back == raw
    m = method.evaluate(back, meta={"correction": False})
    assert (
        m["validity_wo_correction"]
        == m["validity"]
        == pytest.approx(np.mean([bool(s) for s in raw]))
    )
    assert "validity_wo_correction" not in method.evaluate(fixed)
    assert 0 <= m["nspdk"] and m["num_samples"] == 6
    # the second evaluation reuses the cached test embedding: same figure as from scratch
    from genmodels.metrics.molecules import nspdk

    assert "test" in method.task._ref_cache
    assert method.evaluate(fixed)["nspdk"] == pytest.approx(nspdk(fixed, method.task.splits[1]))
    # one sampling run decoded both ways (what benchmarks/pretrained_metrics.py records)
    parts = method.sample_parts(res.model, jax.random.PRNGKey(1), 6, steps=5, progress=False)
    assert method.task.pairs(parts, 6) == (fixed, raw)
    with pytest.raises(ValueError, match="unknown options"):
        method.sample(res.model, jax.random.PRNGKey(1), 2, steps=5, precision="float32")


def test_gdss_qm9_loss_uses_gdss_features(tiny_qm9):
    _, method = tiny_qm9
    b = method.loader().batch(0)
    types = jnp.asarray(b["types"]).astype(jnp.int32)
    state, ctx = method.task.dense_batch(b)
    ref, _ = method.task.domain.arrays_to_state(b["types"], b["bonds"])
    np.testing.assert_array_equal(np.asarray(ref["x"]), np.asarray(state["x"]))
    np.testing.assert_array_equal(np.asarray(jax.nn.one_hot(types, 4)), np.asarray(state["x"]))
    np.testing.assert_array_equal(np.asarray(types >= 0, np.float32), np.asarray(ctx["node_mask"]))


# ------------------------------------------------------------------ pretrained models

PRETRAINED = ["gdss_community_small", "gdss_ego_small"]


def _er_like(graphs, seed=0):
    """Erdős-Rényi graphs with the node counts and mean density of ``graphs``."""
    rng = np.random.default_rng(seed)
    dens = np.mean([nx.density(g) for g in graphs])
    return [
        nx.gnp_random_graph(g.number_of_nodes(), dens, seed=int(rng.integers(1 << 30)))
        for g in graphs
    ]


# community_small's 1000-step predictor-corrector sampling takes ~3 min on 2 CPU cores; the
# default suite checks ego_small and leaves community_small to `pytest -m slow`
@pytest.mark.parametrize(
    "name",
    [pytest.param("gdss_community_small", marks=pytest.mark.slow), "gdss_ego_small"],
)
def test_pretrained_samples_beat_an_erdos_renyi_baseline(name, tmp_path, capsys):
    import json

    from genmodels.cli import main
    from genmodels.metrics.graphs import graph_mmd

    _, info = load_recipe(name)
    assert info.has_pretrained, f"{info.pretrained_dir} is missing"
    shipped = json.loads((info.pretrained_dir / "metrics.json").read_text())
    assert {"degree", "clustering", "orbit"} <= set(shipped["metrics"])
    assert shipped["train"]["wall_s"] > 0 and len(shipped["seeds"]) == 3

    out = tmp_path / "g.g6"
    assert (
        main(["sample", name, "--checkpoint", "pretrained", "--num", "24", "--out", str(out)]) == 0
    )
    lines = out.read_text().splitlines()
    assert len(lines) == 24
    capsys.readouterr()
    assert main(["evaluate", name, "--samples", str(out)]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"degree", "clustering", "orbit", "spectral"} <= set(got)

    # the trained model must capture structure a density-matched random graph does not
    method = load_recipe(name)[0].build()
    test = method.task.splits[1]
    base = graph_mmd(
        test, _er_like(method.task.splits[0][:24]), metrics=("degree", "clustering", "orbit")
    )
    for k in ("degree", "clustering", "orbit"):
        assert got[k] < base[k], (k, got[k], base[k])


@pytest.mark.slow
@pytest.mark.parametrize("name", PRETRAINED)
def test_pretrained_done_when_command(name, tmp_path, capsys):
    """The issue's acceptance command: 200 graphs in graph6 and the four MMDs as JSON."""
    import json

    from genmodels.cli import main

    out = tmp_path / "g.g6"
    assert (
        main(["sample", name, "--checkpoint", "pretrained", "--num", "200", "--out", str(out)]) == 0
    )
    assert len(out.read_text().splitlines()) == 200
    capsys.readouterr()
    assert main(["evaluate", name, "--samples", str(out)]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"degree", "clustering", "orbit", "spectral"} <= set(got)


def test_pretrained_qm9_samples_valid_molecules_like_the_test_set(tmp_path, capsys):
    """The shipped QM9 model through the command line: raw samples (no valency correction)
    must be mostly valid, and their heavy-atom mix close to the test set's."""
    import json
    from collections import Counter

    from rdkit import Chem

    from genmodels.cli import main

    _, info = load_recipe("gdss_qm9")
    assert info.has_pretrained, f"{info.pretrained_dir} is missing"
    shipped = json.loads((info.pretrained_dir / "metrics.json").read_text())
    assert shipped["num_samples_per_seed"] == 10_000 and shipped["train"]["wall_s"] > 0

    out = tmp_path / "m.smi"
    argv = ["sample", "gdss_qm9", "--checkpoint", "pretrained", "--num", "64", "--batch-size", "64"]
    assert main([*argv, "--no-correction", "True", "--out", str(out)]) == 0
    raw = out.read_text().splitlines()
    assert len(raw) == 64
    capsys.readouterr()
    off = ["--config.eval-fcd", "False", "--config.eval-nspdk", "False"]  # slow test below
    assert main(["evaluate", "gdss_qm9", "--samples", str(out), *off]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["validity_wo_correction"] == got["validity"] == np.mean([bool(s) for s in raw])
    assert got["validity_wo_correction"] >= 0.8, got
    assert got["uniqueness"] >= 0.8, got

    def mix(smiles):
        c = Counter(a.GetSymbol() for s in smiles if s for a in Chem.MolFromSmiles(s).GetAtoms())
        n = sum(c.values())
        return np.array([c[e] / n for e in ("C", "N", "O", "F")])

    test = load_recipe("gdss_qm9")[0].build().task.splits[1][:2000]
    tv = 0.5 * np.abs(mix(raw) - mix(test)).sum()
    # all-carbon molecules (what an untrained type network drifts to) are at about 0.3
    assert tv < 0.15, (mix(raw), mix(test))


@pytest.mark.slow
def test_pretrained_qm9_done_when_commands(tmp_path, capsys):
    """The issue's acceptance commands: 1000 molecules, then every metric as JSON."""
    import json

    from genmodels.cli import main

    for extra, keys in (([], set()), (["--no-correction", "True"], {"validity_wo_correction"})):
        out = tmp_path / f"m{len(extra)}.smi"
        argv = ["sample", "gdss_qm9", "--checkpoint", "pretrained", "--num", "1000"]
        assert main([*argv, *extra, "--out", str(out)]) == 0
        capsys.readouterr()
        assert main(["evaluate", "gdss_qm9", "--samples", str(out)]) == 0
        got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert {"validity", "uniqueness", "novelty", "fcd", "nspdk"} | keys <= set(got)
