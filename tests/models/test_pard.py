"""PARD: generation order, one-pass training equals block-by-block generation, the
reference switches (virtual class, input residual, output heads), training, sampling,
files, recipes and the shipped QM9 model.

The small tests run on the 28-molecule QM9-like csv (``mini_data`` in conftest.py) with a
tiny PPGN transformer.
"""

import dataclasses

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from flax import nnx

from genmodels.core.partial_order import block_arrays, block_partition
from genmodels.domains.graphs import dense_to_pairs, pairs_to_dense
from genmodels.models.runner import Runner
from genmodels.models.tasks.graphs import GraphTask
from genmodels.models.tasks.molecules import MoleculeTask
from genmodels.nets.ppgn import parallel_outputs, prefix_pool
from genmodels.recipes import load_recipe

TINY_NET = dict(hidden=16, edge_hidden=8, layers=2, heads=2)
RECIPES = ["pard_qm9", "pard_zinc250k", "pard_moses", "pard_community_small", "pard_grid"]
# the switches' values in pard_qm9 (its shipped model predates them) and the reference's
LEGACY = dict(virtual_class=False, input_residual=False, output_heads="mlp")
REFERENCE = dict(virtual_class=True, input_residual=True, output_heads="reference")


def tiny(cfg, steps=2, batch=8, **kw):
    """A tiny net and run of ``cfg`` (its switches kept unless ``kw`` names them)."""
    net_kw = {k: kw.pop(k) for k in ("input_residual", "output_heads") if k in kw}
    train = dataclasses.replace(
        cfg.train, steps=steps, batch_size=batch, log_every=1, ckpt_every=steps, progress=False
    )
    net = dataclasses.replace(cfg.net, **TINY_NET, **net_kw)
    return dataclasses.replace(
        cfg, net=net, train=train, sample_batch=8, steps=6, eval_fcd=False, **kw
    )


def tiny_method(mini_data, **kw):
    cfg, _ = load_recipe("pard_qm9")
    method = tiny(cfg, **kw).build()
    method.task.__dict__["data"] = mini_data  # cached_property slot
    return method


@pytest.fixture
def tiny_pard(mini_data):
    return tiny_method(mini_data)


# ------------------------------------------------------------------ generation order


def test_block_arrays_put_nodes_in_generation_order(tiny_pard):
    types, bonds = tiny_pard.raw_arrays()
    arrays, stats = block_arrays(types, bonds, max_hops=3)
    for i in range(len(types)):
        n = int((types[i] >= 0).sum())
        bid = arrays["block_id"][i]
        # real slots first, block ids non-decreasing from 0, padding -1
        assert np.all(bid[:n] >= 0) and np.all(bid[n:] == -1)
        assert bid[0] == 0 and np.all(np.diff(bid[:n]) >= 0)
        # the same molecule: atom multiset and the graph up to the permutation
        assert sorted(arrays["types"][i, :n]) == sorted(types[i, :n])
        g0 = nx.from_numpy_array(bonds[i, :n, :n])
        g1 = nx.from_numpy_array(arrays["bonds"][i, :n, :n])
        em = lambda a, b: a["weight"] == b["weight"]
        nm = lambda a, b: a["t"] == b["t"]
        nx.set_node_attributes(g0, dict(enumerate(types[i, :n])), "t")
        nx.set_node_attributes(g1, dict(enumerate(arrays["types"][i, :n])), "t")
        assert nx.is_isomorphic(g0, g1, node_match=nm, edge_match=em)
        # block sizes are the run lengths, and the sorted graph's own partition agrees
        sizes = arrays["block_size"][i]
        assert list(sizes[sizes > 0]) == list(np.bincount(bid[:n]))
        own, _, _ = block_partition(arrays["bonds"][i, :n, :n], 3)
        np.testing.assert_array_equal(own, bid[:n])
    pairs, probs = stats["first"]
    assert probs.sum() == pytest.approx(1.0) and np.all(pairs[:, 0] >= 1)


# ------------------------------------------------------------------ causality


@pytest.mark.parametrize("switches", [LEGACY, REFERENCE], ids=["legacy", "reference"])
def test_one_pass_training_equals_block_by_block_generation(mini_data, switches):
    """The doubled-graph pass gives every block the logits a sequential pass would give:
    real blocks < b clean, block b noised, later blocks absent (the sampler's input)."""
    method = tiny_method(mini_data, **switches)
    arrays, _ = method.blocks
    model = method.init_model(jax.random.PRNGKey(0))
    idx = np.arange(17, 25)  # the larger molecules: several blocks each
    bid = jnp.asarray(arrays["block_id"][idx])
    bdeg = jnp.asarray(arrays["block_degree"][idx])
    x0 = jnp.maximum(jnp.asarray(arrays["types"][idx]), 0)
    e0 = jnp.asarray(arrays["bonds"][idx])
    b, n = x0.shape
    key = jax.random.PRNGKey(1)
    t = jnp.full((b,), 4.0)
    procs = method.processes
    xt, _ = procs["nodes"].corrupt(key, x0, t, bid >= 0)
    et_p, _ = procs["edges"].corrupt(jax.random.PRNGKey(2), dense_to_pairs(e0), t)
    et = pairs_to_dense(et_p, n)
    par = nnx.jit(lambda m, *a: parallel_outputs(m, *a, 6))
    node_par, edge_par, h_real = par(model, x0, xt, e0, et, bid, bdeg, t)
    pooled, cnt = prefix_pool(h_real, bid, bdeg.shape[1])
    assert int(bid.max()) >= 1  # at least two blocks

    iu, ju = np.triu_indices(n, 1)
    feat = nnx.jit(lambda m, *a: m(*a, 6)[2])
    seq = nnx.jit(lambda m, *a: m(*a, 6)[:2])
    deg_node = jnp.take_along_axis(bdeg, jnp.maximum(bid, 0), 1) * (bid >= 0)
    for blk in range(int(bid.max()) + 1):
        real = (bid >= 0) & (bid < blk)
        cur = bid == blk
        keep = real | cur
        bid_s = jnp.where(keep, bid, -1)
        nodes = jnp.where(cur, xt, jnp.where(real, x0, 0))
        both_real = real[:, :, None] & real[:, None, :]
        edges = jnp.where(both_real, e0, jnp.where(keep[:, :, None] & keep[:, None, :], et, 0))
        nl, el = seq(model, nodes, edges, bid_s, cur, deg_node * keep, t)
        np.testing.assert_allclose(
            np.asarray(nl)[np.asarray(cur)], np.asarray(node_par)[np.asarray(cur)], atol=2e-5
        )
        pm = np.asarray((cur[:, :, None] & keep[:, None, :]) | (keep[:, :, None] & cur[:, None, :]))
        pm = pm[:, iu, ju]
        np.testing.assert_allclose(
            np.asarray(el[:, iu, ju])[pm], np.asarray(edge_par)[pm], atol=2e-5
        )
        # the next-block head after block blk: all real, no virtual node
        upto = (bid >= 0) & (bid <= blk)
        h2 = feat(
            model,
            jnp.where(upto, x0, 0), jnp.where(upto[:, :, None] & upto[:, None, :], e0, 0),
            jnp.where(upto, bid, -1), jnp.zeros_like(upto), deg_node * upto, t * 0,
        )  # fmt: skip
        has = np.asarray(jnp.any(bid == blk, 1))
        seq_pool = jnp.sum(h2 * upto[..., None], 1) / jnp.maximum(jnp.sum(upto, 1), 1)[:, None]
        np.testing.assert_allclose(
            np.asarray(seq_pool)[has], np.asarray(pooled[:, blk])[has], atol=2e-5
        )


# ------------------------------------------------------------------ the reference switches


def test_untrained_reference_model_never_ends_in_the_virtual_class(mini_data):
    """With ``virtual_class`` each stream has one class more, in the uniform noise; an
    untrained network gives it about 1/K of the mass, so without the last-step mask many
    of the final classes would be virtual."""
    method = tiny_method(mini_data, **REFERENCE)
    kn, ke = method.num_node_classes, method.num_edge_classes  # the real classes
    procs = method.processes
    assert (procs["nodes"].num_classes, procs["edges"].num_classes) == (kn + 1, ke + 1)
    assert procs["nodes"].virtual and float(procs["edges"].m[-1]) == pytest.approx(1 / (ke + 1))
    model = method.init_model(jax.random.PRNGKey(0))
    batch = {k: jnp.asarray(v) for k, v in method.loader().batch(0).items()}
    loss, _ = nnx.jit(lambda m, key: method.loss_fn(m, batch, key))(model, jax.random.PRNGKey(1))
    assert np.isfinite(float(loss))
    out, ctx, info = method.sample_states(model, jax.random.PRNGKey(0), 8)
    nodes, edges = np.asarray(out["nodes"]), np.asarray(out["edges"])
    assert int(np.sum(np.asarray(ctx["block_id"]) >= 0)) > 8  # something was drawn
    assert nodes.max() < kn and edges.max() < ke
    assert len(method.decode(jax.device_get(out), jax.device_get(ctx))) == 8


def test_evaluate_reports_relaxed_and_plain_validity(mini_data):
    """PARD's two validities without correction: a tetravalent N decodes (charge rule) to
    an N+ that is relaxed-valid but not plain-valid."""
    method = tiny_method(mini_data, eval_nspdk=False)
    types = np.array([[1, 0, 0, 0, 0], [0, 0, 2, -1, -1]])  # N(C)4 and C-C-O (QM9: C N O F)
    bonds = np.zeros((2, 5, 5), np.int64)
    bonds[0, 0, 1:] = bonds[0, 1:, 0] = 1
    bonds[1, 0, 1] = bonds[1, 1, 0] = bonds[1, 1, 2] = bonds[1, 2, 1] = 1
    samples = method.task.decode_graphs(types, bonds)
    fixed, raw = method.task.pairs([samples], 2)
    assert raw == ["C[N+](C)(C)C", "CCO"]
    m = method.evaluate(fixed, raw=raw)
    assert m["validity_wo_correction"] == 1.0 and m["plain_validity_wo_correction"] == 0.5


# ------------------------------------------------------------------ training and sampling


@pytest.fixture(scope="module")
def trained(mini_data):
    """A tiny model with the reference switches trained 60 steps on the fixture, with the
    loss before and after."""
    from genmodels.train import train

    cfg, _ = load_recipe("pard_qm9")
    cfg = tiny(cfg, steps=60, batch=16, **REFERENCE)
    cfg = dataclasses.replace(
        cfg, optim=dataclasses.replace(cfg.optim, lr=3e-3, warmup_steps=0, schedule="constant")
    )
    method = cfg.build()
    method.task.__dict__["data"] = mini_data
    model = method.init_model(jax.random.PRNGKey(0))
    batch = {k: jnp.asarray(v) for k, v in method.loader().batch(0).items()}
    loss = nnx.jit(lambda m, key: method.loss_fn(m, batch, key)[0])

    def loss_of(m):
        return float(np.mean([loss(m, jax.random.PRNGKey(i)) for i in range(8)]))

    before = loss_of(model)
    res = train(model, method.loss_fn, method.loader(), cfg.train, cfg.optim, None)
    return method, res.model, before, loss_of(res.model)


@pytest.mark.slow  # 60 training steps (~90 s of compiles); the default run keeps the exact one-pass/block-wise test and sharded sampling
def test_training_reduces_the_loss(trained):
    _, _, before, after = trained
    assert np.isfinite(after) and after < 0.8 * before, (before, after)


@pytest.mark.slow  # 60 training steps (~90 s of compiles); the default run keeps the exact one-pass/block-wise test and sharded sampling
def test_samples_are_contiguous_blocks_with_edges_among_real_nodes(trained):
    method, model, _, _ = trained
    out, ctx, info = method.sample_states(model, jax.random.PRNGKey(0), 16)
    bid = np.asarray(ctx["block_id"])
    n = bid.shape[1]
    counts = (bid >= 0).sum(1)
    for i in range(16):
        k = counts[i]
        assert np.all(bid[i, :k] >= 0) and np.all(bid[i, k:] == -1)
        assert bid[i, 0] == 0 and np.all(np.diff(bid[i, :k]) >= 0)
        assert np.all(np.diff(bid[i, :k]) <= 1)  # no block skipped
        assert info["blocks"][i] == bid[i, :k].max() + 1
    assert not np.any(info["overflow"])  # block sizes are drawn to fit the N slots
    types, bonds = method.to_graphs(out, ctx)
    real = types >= 0
    assert np.all(bonds[~(real[:, :, None] & real[:, None, :])] == 0)
    assert np.all(bonds == bonds.transpose(0, 2, 1)) and np.all(bonds[:, range(n), range(n)] == 0)
    # T network calls per block, for as many blocks as the slowest graph needed
    assert int(info["nfe"]) == method.config.steps * int(np.max(info["blocks"]))


@pytest.mark.slow  # 60 training steps (~90 s of compiles); the default run keeps the exact one-pass/block-wise test and sharded sampling
def test_sample_write_read_and_evaluate(trained, tmp_path):
    method, model, _, _ = trained
    parts = method.sample_parts(model, jax.random.PRNGKey(3), 6, progress=False)
    fixed, raw = method.task.pairs(parts, 6)
    assert len(fixed) == len(raw) == 6
    assert sum(bool(s) for s in fixed) >= sum(bool(s) for s in raw)
    path = tmp_path / "m.smi"
    method.write_samples(raw, path)
    assert method.read_samples(path) == raw
    m = method.evaluate(method.read_samples(path), meta={"correction": False})
    assert m["validity"] == pytest.approx(np.mean([bool(s) for s in raw]))
    # the corrected and raw SMILES of one run: the same as two calls with the same key
    assert method.sample(model, jax.random.PRNGKey(3), 6, progress=False) == fixed
    with pytest.raises(ValueError, match="sampler"):
        method.sample(model, jax.random.PRNGKey(0), 2, sampler="fhs")
    with pytest.raises(ValueError, match="unknown options"):
        method.sample(model, jax.random.PRNGKey(0), 2, temperature=0.5)


# ------------------------------------------------------------------ recipes


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_configs(name):
    cfg, info = load_recipe(name)
    assert info.description
    # the reference's switches, but pard_qm9 keeps its shipped model's legacy values, and
    # the reference's zinc250k and grid configs turn use_absolute_blockid off
    net = cfg.net
    switches = dict(
        virtual_class=cfg.virtual_class,
        input_residual=net.input_residual,
        output_heads=net.output_heads,
    )
    assert switches == (LEGACY if name == "pard_qm9" else REFERENCE)
    assert cfg.net.absolute_block_id == (name not in ("pard_zinc250k", "pard_grid"))
    assert cfg.steps in (40, 50) and cfg.ce_coeff == 0.1 and cfg.schedule == "cosine"
    method = cfg.build()
    graphs = name in ("pard_community_small", "pard_grid")
    assert isinstance(method.task, GraphTask if graphs else MoleculeTask)
    assert method.samplers == ("blockwise",)
    assert cfg.optim.decoupled_weight_decay  # AdamW, as the reference


@pytest.mark.slow  # ~40 s of XLA compiles at N = 20; the molecule path above is the same code
def test_community_small_recipe_trains_samples_and_evaluates(tmp_path):
    """The generic-graph path end to end on the real community_small data (tiny net)."""
    from genmodels.models.run import train_recipe

    cfg, _ = load_recipe("pard_community_small")
    cfg = tiny(cfg, steps=2, batch=8)
    res = train_recipe(cfg, tmp_path / "run", progress=False)
    assert np.isfinite(res.final_loss) if hasattr(res, "final_loss") else True
    method = cfg.build()
    graphs = method.sample(res.model, jax.random.PRNGKey(0), 4, progress=False)
    assert len(graphs) == 4 and all(isinstance(g, nx.Graph) for g in graphs)
    method.write_samples(graphs, tmp_path / "g.g6")
    assert len(method.read_samples(tmp_path / "g.g6")) == 4
    # the partial order of community graphs: the data's own statistics
    _, st = method.blocks
    assert st["max_size"] <= 20 and st["mean_blocks"] > 1


@pytest.mark.devices
def test_sampling_split_over_devices_gives_the_same_molecules(tiny_pard, monkeypatch):
    """The batch is sharded over the (simulated) devices and the samples equal the
    single-device ones for the same key."""
    if jax.device_count() < 2:
        pytest.skip("needs several (simulated) devices; .ci/run sets 8")
    method = tiny_pard
    model = method.init_model(jax.random.PRNGKey(0))
    batch = 2 * jax.device_count()
    key = jax.random.PRNGKey(5)
    sharded, sctx, _ = method.sample_states(model, key, batch)
    assert len(sharded["edges"].sharding.device_set) == jax.device_count()
    monkeypatch.setattr(jax, "local_device_count", lambda *a: 1)
    method.runner = Runner()  # compiled for the (simulated) devices
    single, ctx, _ = method.sample_states(model, key, batch)
    assert len(single["edges"].sharding.device_set) == 1
    np.testing.assert_array_equal(np.asarray(sctx["block_id"]), np.asarray(ctx["block_id"]))
    for k in ("nodes", "edges"):
        np.testing.assert_array_equal(np.asarray(sharded[k]), np.asarray(single[k]))


# ------------------------------------------------------------------ pretrained pard_qm9


def test_pretrained_metrics_file():
    """The shipped 10,000-sample metrics: every molecule metric, in range, with the budget."""
    import json

    _, info = load_recipe("pard_qm9")
    assert info.has_pretrained, f"{info.pretrained_dir} is missing"
    shipped = json.loads((info.pretrained_dir / "metrics.json").read_text())
    assert shipped["num_samples_per_seed"] == 10_000 and shipped["train"]["wall_s"] > 0
    assert shipped["sampler"] == "blockwise" and shipped["sample_steps"] == 50
    m = {k: v["mean"] for k, v in shipped["metrics"].items()}
    assert {"validity_wo_correction", "validity", "uniqueness", "novelty", "fcd", "nspdk"} <= set(m)
    for k in ("validity_wo_correction", "validity", "uniqueness", "novelty"):
        assert 0.0 <= m[k] <= 1.0, (k, m[k])
    assert m["fcd"] > 0 and m["nspdk"] >= 0


def test_pretrained_checkpoint_fits_the_legacy_switches_only():
    """The shipped model loads into the recipe's (legacy-switch) network, parameter for
    parameter; the reference switches change the architecture, so it does not fit them.
    (Its samples: ``tests/benchmarks/test_pretrained_fingerprints.py``.)"""
    from genmodels.errors import CheckpointError
    from genmodels.models.run import load_pretrained

    cfg, _, model, _ = load_pretrained("pard_qm9")
    names = set(nnx.state(model, nnx.Param))
    assert {"node_out", "edge_out", "block_embed"} <= names
    assert not {"out", "phi_node", "phi_edge"} & names
    assert model.node_embed.num_embeddings == 4 and model.edge_embed.num_embeddings == 4
    net = dataclasses.replace(cfg.net, input_residual=True, output_heads="reference")
    ref = dict(virtual_class=True, net=net)
    with pytest.raises(CheckpointError, match="architecture differs"):
        load_pretrained("pard_qm9", overrides=ref)


@pytest.mark.slow  # ~60 s; the shipped figures: benchmarks/pretrained_metrics.py --check pard_qm9
def test_pretrained_samples_valid_molecules_through_the_cli(tmp_path, capsys):
    """``genmodels sample pard_qm9 --checkpoint pretrained`` then ``evaluate``: the raw
    molecules (no valency correction) are mostly valid and unique. An untrained model
    gives about none (its blocks overflow and its bonds are uniform)."""
    import json

    from genmodels.cli import main

    _, info = load_recipe("pard_qm9")
    shipped = json.loads((info.pretrained_dir / "metrics.json").read_text())
    out = tmp_path / "p.smi"
    argv = ["sample", "pard_qm9", "--checkpoint", "pretrained", "--num", "128"]
    assert main([*argv, "--no-correction", "True", "--out", str(out), "--batch-size", "128"]) == 0
    raw = out.read_text().splitlines()
    assert len(raw) == 128
    capsys.readouterr()
    off = ["--config.eval-fcd", "False", "--config.eval-nspdk", "False"]
    assert main(["evaluate", "pard_qm9", "--samples", str(out), *off]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["validity_wo_correction"] == np.mean([bool(s) for s in raw])
    # 128 draws: 4 standard errors below the shipped 10,000-sample figure
    v = shipped["metrics"]["validity_wo_correction"]["mean"]
    assert got["validity_wo_correction"] >= v - 4 * np.sqrt(v * (1 - v) / 128), (got, v)
    assert got["uniqueness"] >= 0.8, got
