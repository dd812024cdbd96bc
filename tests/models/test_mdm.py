"""Masked diffusion on molecules: token layout, loss, samplers (NFE), training, files, CLI.

Everything runs on a 28-molecule QM9-like csv (the ``mini_data`` fixture of conftest.py)
with a tiny graph transformer.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.domains.graphs import dense_to_pairs, pairs_to_dense
from genmodels.models.mdm import MDMGraphNet, MDMImageNet, MDMMolecules
from genmodels.models.tasks.molecules import MoleculeTask
from genmodels.nets.graph_transformer import GraphTransformerConfig
from genmodels.recipes import load_recipe

TINY_NET = GraphTransformerConfig(dx=16, de=8, heads=2, layers=1, ffn_x=16, ffn_e=8)
KA, KB = 4, 4  # atom classes (C, N, O, F), bond classes (none, single, double, triple)
SAMPLERS = ("fhs", "ancestral")


def tiny(cfg, steps=2, batch=8):
    train = dataclasses.replace(
        cfg.train, steps=steps, batch_size=batch, log_every=1, ckpt_every=steps, progress=False
    )
    return dataclasses.replace(
        cfg, net=TINY_NET, train=train, sample_steps=10, sample_batch=4, eval_fcd=False
    )


@pytest.fixture
def tiny_mdm(mini_data):
    """An MDM-QM9 method whose data is the 28-molecule csv."""
    cfg, _ = load_recipe("mdm_qm9")
    cfg = tiny(cfg)
    method = cfg.build()
    method.task.__dict__["data"] = mini_data  # cached_property slot
    return cfg, method


@pytest.fixture(scope="module")
def trained(mini_data):
    """A tiny model trained 40 steps on the fixture, with the loss before and after."""
    from genmodels.train import train

    cfg, _ = load_recipe("mdm_qm9")
    cfg = tiny(cfg, steps=40, batch=16)
    cfg = dataclasses.replace(
        cfg, optim=dataclasses.replace(cfg.optim, lr=3e-3, warmup_steps=0, schedule="constant")
    )
    method = cfg.build()
    method.task.__dict__["data"] = mini_data
    model = method.init_model(jax.random.PRNGKey(0))
    batch = {k: jnp.asarray(v) for k, v in method.loader().batch(0).items()}
    loss = nnx.jit(lambda m, key: method.loss_fn(m, batch, key)[0])

    def loss_of(m):  # a fixed batch, 16 fixed keys
        return float(np.mean([loss(m, jax.random.PRNGKey(i)) for i in range(16)]))

    before = loss_of(model)
    res = train(model, method.loss_fn, method.loader(), cfg.train, cfg.optim, None)
    return cfg, method, res.model, before, loss_of(res.model)


# ------------------------------------------------------------------ tokens and loss


def test_pairs_round_trip():
    rng = np.random.default_rng(0)
    a = np.triu(rng.integers(0, 4, (3, 6, 6)), 1)
    a = a + a.transpose(0, 2, 1)
    p = dense_to_pairs(a)
    assert p.shape == (3, 15)
    np.testing.assert_array_equal(pairs_to_dense(p, 6), a)
    np.testing.assert_array_equal(np.asarray(pairs_to_dense(jnp.asarray(p), 6)), a)


def test_tokens_and_corruption_keep_edges_symmetric(tiny_mdm):
    _, method = tiny_mdm
    batch = method.loader().batch(0)
    x0, ctx = method.tokens(batch)
    types = np.asarray(batch["types"])
    real = types >= 0
    np.testing.assert_array_equal(np.asarray(ctx["node_mask"]) > 0, real)
    np.testing.assert_array_equal(np.asarray(x0["atoms"]), np.where(real, types, 0))
    np.testing.assert_array_equal(pairs_to_dense(np.asarray(x0["bonds"]), 9), batch["bonds"])
    pair = real[:, :, None] & real[:, None, :] & ~np.eye(9, dtype=bool)
    for i in range(5):
        t, xt, aux = method.corrupt(x0, ctx, jax.random.PRNGKey(i))
        dense = pairs_to_dense(np.asarray(xt["bonds"]), 9)
        masked = dense == KB  # the bond mask id
        np.testing.assert_array_equal(masked, masked.transpose(0, 2, 1))
        np.testing.assert_array_equal(dense, dense.transpose(0, 2, 1))
        assert not masked[~pair].any() and np.all(dense[~pair] == 0)
        atoms = np.asarray(xt["atoms"])
        assert np.all(atoms[~real] == 0) and not (atoms[real] > KA).any()
        # unmasked tokens keep their clean value
        keep = ~masked & pair
        np.testing.assert_array_equal(dense[keep], np.asarray(batch["bonds"])[keep])


def test_masked_fraction_follows_the_schedule(tiny_mdm):
    from genmodels.processes.base import corrupt_state

    _, method = tiny_mdm
    x0, ctx = method.tokens(method.loader().batch(0))
    fracs = []
    for i in range(30):
        xt, _ = corrupt_state(method.processes, jax.random.PRNGKey(i), x0, jnp.full(8, 0.3), ctx)
        fracs.append(
            np.sum(np.asarray(xt["bonds"]) == KB) / np.sum(np.asarray(ctx["masks"]["bonds"]))
        )
    assert abs(np.mean(fracs) - 0.3) < 0.03


def test_loss_is_the_weighted_cross_entropy_of_masked_tokens(tiny_mdm):
    """Hand computation: w(t) = -alpha'/(1 - alpha) = 1/t (linear), CE on masked tokens."""
    _, method = tiny_mdm
    model = method.init_model(jax.random.PRNGKey(0))
    batch = method.loader().batch(1)
    key = jax.random.PRNGKey(7)
    loss, metrics = nnx.jit(method.loss_fn)(model, batch, key)
    x0, ctx = method.tokens(batch)
    t, xt, _ = jax.jit(method.corrupt)(x0, ctx, key)
    preds = nnx.jit(lambda m, xt, t, ctx: m(xt, t, ctx))(model, xt, t, ctx)
    t = np.maximum(np.asarray(t, np.float64), method.config.t_eps)
    want = {}
    for leaf, mask_id in (("atoms", KA), ("bonds", KB)):
        lg = np.asarray(preds[leaf], np.float64)
        logp = lg - np.log(np.sum(np.exp(lg - lg.max(-1, keepdims=True)), -1, keepdims=True))
        logp -= lg.max(-1, keepdims=True)
        nll = -np.take_along_axis(logp, np.asarray(x0[leaf])[..., None], -1)[..., 0]
        masked = (np.asarray(xt[leaf]) == mask_id) & (np.asarray(ctx["masks"][leaf]) > 0)
        assert masked.any()
        want[leaf] = np.mean(np.sum(np.where(masked, nll, 0.0), 1) / t)
    np.testing.assert_allclose(float(metrics["loss_atoms"]), want["atoms"], rtol=1e-4)
    np.testing.assert_allclose(float(metrics["loss_bonds"]), want["bonds"], rtol=1e-4)
    np.testing.assert_allclose(float(loss), want["atoms"] + want["bonds"], rtol=1e-4)


def test_training_reduces_the_loss(trained):
    _, _, _, before, after = trained
    assert after < 0.8 * before, (before, after)


# ------------------------------------------------------------------ sampling


class CountingNet(MDMGraphNet):
    """Counts network evaluations at run time (inside the jitted sampling loops)."""

    calls: list = []

    def __call__(self, state, t, ctx):
        jax.debug.callback(lambda: CountingNet.calls.append(1))
        return super().__call__(state, t, ctx)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samples_are_unmasked_symmetric_padded_and_count_calls(tiny_mdm, sampler):
    """FHS calls the network once per real token (the batch's largest token count);
    the cached ancestral sampler at most once per step."""
    _, method = tiny_mdm
    model = CountingNet(TINY_NET, KA, False, rngs=nnx.Rngs(0))
    steps = 12
    CountingNet.calls.clear()
    state, ctx, info = method.sample_states(
        model, jax.random.PRNGKey(1), 5, sampler=sampler, steps=steps
    )
    jax.block_until_ready(state)
    jax.effects_barrier()
    atoms, bonds = np.asarray(state["atoms"]), np.asarray(state["bonds"])
    ma, mb = np.asarray(ctx["masks"]["atoms"]) > 0, np.asarray(ctx["masks"]["bonds"]) > 0
    assert np.all((atoms[ma] >= 0) & (atoms[ma] < KA)) and np.all(atoms[~ma] == 0)
    assert np.all((bonds[mb] >= 0) & (bonds[mb] < KB)) and np.all(bonds[~mb] == 0)
    types, dense = method.to_graphs(state, ctx)
    np.testing.assert_array_equal(dense, dense.transpose(0, 2, 1))
    assert np.all(np.diagonal(dense, axis1=1, axis2=2) == 0)
    assert np.all(types[~ma] == -1)
    # node counts come from the training set
    counts = ma.sum(1)
    data = method.task.data
    assert set(counts.tolist()) <= set(data.num_atoms[data.train_idx].tolist())
    nfe = int(info["nfe"])
    assert nfe == len(CountingNet.calls)
    if sampler == "fhs":
        assert nfe == int(np.max(ma.sum(1) + mb.sum(1)))
    else:
        assert 1 <= nfe <= steps


def test_sampler_options_are_checked(tiny_mdm):
    _, method = tiny_mdm
    model = method.init_model(jax.random.PRNGKey(0))
    assert method.samplers == SAMPLERS
    with pytest.raises(ValueError, match="cannot integrate masked"):
        method.sample_states(model, jax.random.PRNGKey(0), 3, sampler="euler")
    with pytest.raises(ValueError, match="precision"):
        method.sample_states(model, jax.random.PRNGKey(0), 3, precision="float16")
    with pytest.raises(ValueError, match="num_atoms"):
        method.sample_states(model, jax.random.PRNGKey(0), 3, num_atoms=10)


def test_sample_write_read_and_evaluate(trained, tmp_path):
    _, method, model, _, _ = trained
    parts = method.sample_parts(model, jax.random.PRNGKey(3), 6, progress=False)
    fixed, raw = method.task.pairs(parts, 6)
    again = method.sample(model, jax.random.PRNGKey(3), 6, correction=False, progress=False)
    assert again == raw
    assert len(fixed) == len(raw) == 6
    # correction only turns failures into molecules
    assert sum(bool(s) for s in fixed) >= sum(bool(s) for s in raw)
    path = tmp_path / "m.smi"
    method.write_samples(raw, path)
    assert method.read_samples(path) == raw
    m = method.evaluate(method.read_samples(path), meta={"correction": False})
    assert m["validity_wo_correction"] == m["validity"]
    assert m["validity"] == pytest.approx(np.mean([bool(s) for s in raw]))
    assert {"uniqueness", "novelty", "nspdk"} <= set(m) and m["num_samples"] == 6
    both = method.evaluate(fixed, raw=raw)
    assert both["validity_wo_correction"] == pytest.approx(np.mean([bool(s) for s in raw]))


def test_recipe_builds_a_few_hundred_thousand_parameter_model():
    cfg, _ = load_recipe("mdm_qm9")
    assert cfg.sampler == "fhs" and cfg.precision == "float64"
    method = cfg.build()
    model = nnx.eval_shape(lambda: method.init_model(jax.random.PRNGKey(0)))
    n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert 1e5 < n < 1e6
    assert isinstance(method, MDMMolecules)


def test_config_draw_reaches_the_ancestral_sampler():
    """``--config.draw joint`` (``MDMConfig.draw``) becomes the ancestral sampler's draw
    (MDLM's joint K + 1 draw); the shipped default is the split draw."""
    from genmodels.models.runner import resolve_sampler
    from genmodels.processes.masked import MaskedDiffusion

    cfg, _ = load_recipe("mdm_qm9")
    assert cfg.draw == "split"
    procs = {"atoms": MaskedDiffusion(KA)}
    joint = dataclasses.replace(cfg, draw="joint")
    assert resolve_sampler(procs, "ancestral", None, joint)[2].draw == "joint"
    assert resolve_sampler(procs, "ancestral", None, cfg)[2].draw == "split"


def test_cli_sample_passes_sampler_steps_and_precision(mini_data, tmp_path, monkeypatch):
    """``genmodels sample mdm_qm9 --sampler fhs|ancestral --steps T --precision ...``."""
    from genmodels.cli import main
    from genmodels.models.run import read_sidecar, train_recipe

    monkeypatch.setattr(MoleculeTask, "data", property(lambda self: mini_data))
    cfg, _ = load_recipe("mdm_qm9")
    train_recipe(tiny(cfg), tmp_path / "run", progress=False)
    net = [
        "--config.net.dx", "16", "--config.net.de", "8", "--config.net.heads", "2",
        "--config.net.layers", "1", "--config.net.ffn-x", "16", "--config.net.ffn-e", "8",
    ]  # fmt: skip
    # the non-default options (the defaults, fhs and float64, are covered above)
    out = tmp_path / "a.smi"
    args = ["sample", "mdm_qm9", "--checkpoint", str(tmp_path / "run"), "--num", "3"]
    args += ["--out", str(out), "--sampler", "ancestral", "--steps", "7"]
    args += ["--precision", "float32", "--batch-size", "3", *net]
    assert main(args) == 0
    assert len(out.read_text().splitlines()) == 3
    meta = read_sidecar(out)
    assert meta["sampler"] == "ancestral" and meta["steps"] == 7
    assert meta["precision"] == "float32"


# ------------------------------------------------------------------ pretrained mdm_qm9


def test_pretrained_metrics_file():
    """The shipped 10,000-sample metrics have every molecule metric, in range."""
    import json

    _, info = load_recipe("mdm_qm9")
    assert info.has_pretrained, f"{info.pretrained_dir} is missing"
    shipped = json.loads((info.pretrained_dir / "metrics.json").read_text())
    assert shipped["num_samples_per_seed"] == 10_000 and shipped["train"]["wall_s"] > 0
    m = {k: v["mean"] for k, v in shipped["metrics"].items()}
    assert {"validity_wo_correction", "validity", "uniqueness", "novelty", "fcd", "nspdk"} <= set(m)
    for k in ("validity_wo_correction", "validity", "uniqueness", "novelty"):
        assert 0.0 <= m[k] <= 1.0, (k, m[k])
    assert m["fcd"] > 0 and m["nspdk"] >= 0


@pytest.mark.parametrize(
    "extra",
    [
        ["--sampler", "fhs"],
        # the tiny-model CLI test covers these options; this one repeats it on the shipped
        # model (about 2 min on 2 busy cores)
        pytest.param(
            ["--sampler", "ancestral", "--steps", "64", "--precision", "float32"],
            marks=pytest.mark.slow,
        ),
    ],
    ids=["fhs-float64", "ancestral64-float32"],
)
def test_pretrained_samples_valid_molecules_through_the_cli(extra, tmp_path, capsys):
    """``genmodels sample mdm_qm9 --checkpoint pretrained`` with either sampler: the raw
    samples (no valency correction) are mostly valid and unique, and the sidecar records
    the options. The 10,000-sample model reaches 73.6% raw validity; an untrained model
    none (its bonds are uniform over four orders)."""
    import json

    from genmodels.cli import main
    from genmodels.models.run import read_sidecar

    out = tmp_path / "m.smi"
    argv = ["sample", "mdm_qm9", "--checkpoint", "pretrained", "--num", "128"]
    assert main([*argv, "--no-correction", "True", "--out", str(out), *extra]) == 0
    raw = out.read_text().splitlines()
    assert len(raw) == 128
    meta = read_sidecar(out)
    assert meta["sampler"] == extra[1]
    capsys.readouterr()
    off = ["--config.eval-fcd", "False", "--config.eval-nspdk", "False"]
    assert main(["evaluate", "mdm_qm9", "--samples", str(out), *off]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["validity_wo_correction"] == np.mean([bool(s) for s in raw])
    assert got["validity_wo_correction"] >= 0.55, got
    assert got["uniqueness"] >= 0.8, got


# ------------------------------------------------------------------ images (MNIST)


def test_read_idx_round_trip_and_errors(tmp_path):
    import gzip
    import struct

    from genmodels.datasets.images import read_idx
    from genmodels.datasets.registry import DatasetError

    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 3, 4) + x.tobytes()
    (tmp_path / "a.idx").write_bytes(raw)
    with gzip.open(tmp_path / "a.idx.gz", "wb") as f:
        f.write(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), x)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), x)
    (tmp_path / "bad.idx").write_bytes(b"\x01" + raw[1:])
    with pytest.raises(DatasetError, match="magic"):
        read_idx(tmp_path / "bad.idx")
    (tmp_path / "short.idx").write_bytes(raw[:-1])
    with pytest.raises(DatasetError, match="bytes follow"):
        read_idx(tmp_path / "short.idx")


def test_mnist_test_split_and_quantization():
    from genmodels.datasets.images import dequantize, load_mnist, quantize

    images, labels = load_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert set(np.unique(labels).tolist()) == set(range(10))
    q = quantize(np.array([0, 63, 64, 127, 128, 255], np.uint8), 4)
    np.testing.assert_array_equal(q, [0, 0, 1, 1, 2, 3])
    np.testing.assert_array_equal(dequantize(q, 4), [0, 0, 85, 85, 170, 255])
    np.testing.assert_array_equal(quantize(dequantize(np.arange(4), 4), 4), np.arange(4))


@pytest.fixture
def tiny_mnist():
    """An MDM-MNIST method on 40 synthetic 6 x 6 images (a bright bar at a random row)."""
    from genmodels.nets.conv import TokenConvConfig

    cfg, _ = load_recipe("mdm_mnist")
    cfg = dataclasses.replace(
        cfg,
        height=6,
        width=6,
        net=TokenConvConfig(channels=8, blocks=2, dilations=(1, 2)),
        sample_batch=4,
        train=dataclasses.replace(cfg.train, batch_size=8),
    )
    rng = np.random.default_rng(0)
    imgs = np.zeros((40, 6, 6), np.uint8)
    imgs[np.arange(40), rng.integers(0, 6, 40)] = 255
    method = cfg.build()
    method.task.__dict__["data"] = imgs[:32, ..., None]  # cached_property slot
    return cfg, method


class CountingConv(MDMImageNet):
    calls: list = []

    def __call__(self, state, t, ctx):
        jax.debug.callback(lambda: CountingConv.calls.append(1))
        return super().__call__(state, t, ctx)


def test_mnist_loss_sampling_nfe_and_files(tiny_mnist, tmp_path):
    from genmodels.datasets.images import quantize
    from genmodels.processes.masked import MaskedDiffusion

    cfg, method = tiny_mnist
    batch = method.loader().batch(0)
    tokens = np.asarray(method.tokens(batch)[0]["image"])
    assert tokens.shape == (8, 6, 6) and tokens.max() == cfg.levels - 1
    np.testing.assert_array_equal(tokens, quantize(batch["image"][..., 0], cfg.levels))
    model = CountingConv(cfg, rngs=nnx.Rngs(0))
    # the loss is MaskedDiffusion.loss of the one leaf, averaged over the batch
    key = jax.random.PRNGKey(3)
    loss, metrics = nnx.jit(method.loss_fn)(model, batch, key)
    kt, kc = jax.random.split(key)
    proc = method.processes["image"]
    assert isinstance(proc, MaskedDiffusion) and proc.vocab_size == cfg.levels
    t = proc.sample_times(kt, 8)
    from genmodels.processes.base import corrupt_state

    x0 = {"image": jnp.asarray(tokens)}
    xt, aux = corrupt_state(method.processes, kc, x0, t, {})
    want = jnp.mean(proc.loss(model(xt, t, {})["image"], x0["image"], xt["image"], t, aux["image"]))
    np.testing.assert_allclose(float(loss), float(want), rtol=1e-4)
    np.testing.assert_allclose(
        float(metrics["bits_per_dim"]), float(want) / 36 / np.log(2), rtol=1e-4
    )
    for sampler, steps in (("fhs", None), ("ancestral", 9)):
        CountingConv.calls.clear()
        st, _, info = method.sample_states(
            model, jax.random.PRNGKey(1), 4, sampler=sampler, steps=steps
        )
        jax.block_until_ready(st)
        jax.effects_barrier()
        img = np.asarray(st["image"])
        assert img.shape == (4, 6, 6) and img.min() >= 0 and img.max() < cfg.levels
        assert int(info["nfe"]) == len(CountingConv.calls)
        if sampler == "fhs":
            assert int(info["nfe"]) == 36  # one call per pixel
        else:
            assert 1 <= int(info["nfe"]) <= steps
    images = method.sample(model, jax.random.PRNGKey(2), 5, progress=False)
    assert images.shape == (5, 6, 6, 1) and images.dtype == np.uint8
    assert set(np.unique(images).tolist()) <= {0, 85, 170, 255}
    path = tmp_path / "s.npz"
    method.write_samples(images, path)
    assert path.with_suffix(".png").exists()
    np.testing.assert_array_equal(method.read_samples(path), images)
    m = method.evaluate(images, split="train")
    assert {"level_tv", "mean_image_rmse", "ink_fraction_gap"} <= set(m)
    assert method.evaluate(method.task.data, split="train")["level_tv"] == 0.0
