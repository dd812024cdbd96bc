"""CDVAE: loss terms, training signal, composition sampling, Langevin decoding, sampling,
reconstruction, property optimisation, CIF round trip and recipes (tiny sizes)."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from genmodels.models.cdvae import (
    CDVAEConfig,
    coordinate_loss,
    langevin_decode,
    min_image_displacement,
    sample_composition,
)
from genmodels.train.config import TrainConfig

DATA = Path(os.environ.get("GENMODELS_DATA_DIR", "data")) / "crystals" / "perov_5" / "val.csv"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="perov_5 val.csv not available")

TINY = dict(
    dataset="perov_5",
    train_split="val",
    eval_split="test",
    train_limit=8,
    eval_limit=8,
    latent_dim=8,
    hidden_dim=16,
    enc_hidden=16,
    enc_blocks=2,
    dec_hidden=16,
    dec_blocks=2,
    max_neighbors=8,
    num_noise_level=3,
    n_step_each=2,
    sample_batch=4,
    teacher_forcing_max_epoch=0,
    train=TrainConfig(batch_size=4, steps=20),
)


@pytest.fixture(scope="module")
def method():
    return CDVAEConfig(**TINY).build()


@pytest.fixture(scope="module")
def model(method):
    return method.init_model(jax.random.key(0))


# ----------------------------------------------------------------------------- pure pieces


def test_min_image_displacement_and_coordinate_target_by_hand():
    lattice = jnp.array([[10.0, 10.0, 10.0, 90.0, 90.0, 90.0]])
    true = jnp.array([[[0.95, 0.5, 0.02], [0.3, 0.3, 0.3]]])
    noisy = jnp.array([[[0.05, 0.52, 0.98], [0.3, 0.3, 0.3]]])  # across two faces
    disp = min_image_displacement(true, noisy, lattice)
    # true - nearest image of noisy: 0.95 - 1.05 = -0.1, 0.5 - 0.52, 1.02 - 0.98
    np.testing.assert_allclose(np.asarray(disp[0, 0]), [-1.0, -0.2, 0.4], atol=1e-5)
    np.testing.assert_allclose(np.asarray(disp[0, 1]), 0.0, atol=1e-6)

    sigma = jnp.array([0.5])
    mask = jnp.array([[1.0, 1.0]])
    zero = jnp.zeros((1, 2, 3))
    # d = 0: 1/2 sigma^2 |disp / sigma^2|^2 = |disp|^2 / (2 sigma^2), averaged over 2 atoms
    want = (1.0 + 0.04 + 0.16) / (2 * 0.25) / 2
    got = coordinate_loss(zero, true, noisy, lattice, sigma, mask)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # d = disp / sigma is the exact target: zero loss; padding does not count
    exact = disp / sigma[:, None, None]
    assert float(coordinate_loss(exact, true, noisy, lattice, sigma, mask)) < 1e-10
    half = coordinate_loss(zero, true, noisy, lattice, sigma, jnp.array([[1.0, 0.0]]))
    np.testing.assert_allclose(float(half), 2 * want, rtol=1e-5)


def test_sample_composition_follows_rounded_counts():
    key = jax.random.key(3)
    reps = 200
    sample = jax.jit(sample_composition, static_argnums=3)
    # round(0.5*4)=2, round(0.25*4)=1 twice: exactly {0: 2, 1: 1, 2: 1}
    p = jnp.zeros((reps, 6)).at[:, 0].set(0.5).at[:, 1].set(0.25).at[:, 2].set(0.25)
    out = np.asarray(sample(key, p, jnp.full((reps,), 4), 6))
    assert out.shape == (reps, 6) and np.all(out[:, 4:] == 0)
    for row in out[:, :4]:
        assert sorted(row.tolist()) == [0, 0, 1, 2]
    assert len({tuple(r) for r in out[:, :4]}) > 3  # shuffled, not one fixed order
    # round(1.5) = 2 twice (half to even): 4 > 3, trimmed after shuffling to 3 atoms
    p2 = jnp.zeros((reps, 6)).at[:, 3].set(0.5).at[:, 4].set(0.5)
    out2 = np.asarray(sample(key, p2, jnp.full((reps,), 3), 6))[:, :3]
    counts = np.stack([(out2 == 3).sum(1), (out2 == 4).sum(1)], 1)
    assert np.all(counts.sum(1) == 3) and np.all(counts >= 1) and np.all(counts <= 2)
    # every round(p N) = 0: all atoms drawn from the leftover (uniform over 5 types)
    p3 = jnp.zeros((reps, 6)).at[:, :5].set(0.2)
    out3 = np.asarray(sample(key, p3, jnp.full((reps,), 2), 6))
    assert np.all(out3[:, 2:] == 0) and np.all(out3[:, :2] < 5)
    freq = np.bincount(out3[:, :2].ravel(), minlength=5) / (2 * reps)
    assert np.all(np.abs(freq - 0.2) < 0.06)


def test_langevin_with_zero_score_is_a_wrapped_random_walk():
    b, n, k = 64, 20, 10
    sigmas = np.array([0.4, 0.2, 0.1], np.float32)
    n_each, lr = 5, 1e-3
    lattice = jnp.tile(jnp.array([[8.0, 10.0, 12.0, 80.0, 95.0, 105.0]]), (b, 1))
    num_atoms = jnp.tile(jnp.array([20, 13, 1, 7]), b // 4)
    logits = jnp.zeros((k,)).at[7].set(5.0)

    def decoder(z, types, frac, lattice, mask):
        return jnp.zeros(frac.shape), jnp.broadcast_to(logits, frac.shape[:2] + (k,))

    k0, k1 = jax.random.split(jax.random.key(4))
    frac0 = jax.random.uniform(k0, (b, n, 3))
    types0 = jnp.zeros((b, n), jnp.int32)
    run = jax.jit(
        lambda key: langevin_decode(
            decoder,
            jnp.zeros((b, 2)),
            num_atoms,
            lattice,
            types0,
            frac0,
            key,
            sigmas=sigmas,
            num_types=k,
            n_step_each=n_each,
            step_lr=lr,
        )
    )
    frac, types, info = run(k1)
    assert info["nfe"] == 3 * n_each
    mask = np.arange(n)[None, :] < np.asarray(num_atoms)[:, None]
    f = np.asarray(frac)
    assert np.all((f >= 0) & (f < 1)) and np.all(f[~mask] == 0)
    t = np.asarray(types)
    assert np.all(t[mask] == 7) and np.all(t[~mask] == 0)
    # Cartesian displacement: isotropic Gaussian, variance sum_l n_each 2 lr (s_l/s_L)^2
    disp = np.asarray(min_image_displacement(frac, frac0, lattice))[mask]  # [A, 3]
    var = n_each * 2 * lr * np.sum((sigmas / sigmas[-1]) ** 2)
    assert np.max(np.abs(disp)) < 4.0  # far below half a cell: the minimum image is exact
    np.testing.assert_allclose(disp.var(0) / var, 1.0, atol=0.12)
    assert np.all(np.abs(disp.mean(0)) < 0.05)
    cov = np.cov(disp.T) / var
    assert np.all(np.abs(cov - np.diag(np.diag(cov))) < 0.1)
    # moved at all (not a stuck walk) and crossed the cell boundary for some atoms
    wrapped = np.abs(f - np.asarray(frac0))[mask] > 0.5
    assert wrapped.any()


def test_samplers_are_registry_entries_and_the_langevin_entry_samples_levels():
    """CDVAE's samplers are registry names (``genmodels samplers`` describes them), the
    config's first; the registry's ``langevin`` entry integrates a ``levels`` process:
    fed the exact score of a point ``mu`` it ends near ``N(mu, sigma_L^2)``."""
    from genmodels.processes.coords import KernelLevels, TorusFlow
    from genmodels.processes.levels import NoiseLevels
    from genmodels.samplers.registry import REGISTRY, run_sampler, samplers_for

    assert CDVAEConfig(**TINY).build().samplers == ("langevin", "heun", "euler")
    flow = CDVAEConfig(**TINY, coord_process="flow", sampler="euler").build()
    assert flow.samplers == ("euler", "heun") and all(n in REGISTRY for n in flow.samplers)
    assert (KernelLevels.kind, TorusFlow.kind) == ("levels", "torus_flow")
    assert "langevin" in samplers_for(KernelLevels.kind)
    with pytest.raises(ValueError, match="unknown options"):
        CDVAEConfig(**TINY).build()._resolve("heun", None, {"step_lr": 1.0})

    mu = jnp.array([1.0, -2.0])
    levels = NoiseLevels(1.0, 0.01, 10)
    opts = REGISTRY["langevin"].options(step_lr=1e-5)  # step / sigma^2 = 0.1 at every level
    x, info = jax.jit(
        lambda key: run_sampler(
            "langevin", lambda s, sigma, c: {"x": (mu - s["x"]) / sigma[:, None] ** 2},
            {"x": levels}, {}, key, shapes={"x": (4000, 2)}, steps=50, options=opts,
            constrain=lambda s, c: s,
        )
    )(jax.random.key(0))  # fmt: skip
    x = np.asarray(x["x"])
    assert int(info["nfe"]) == 500
    np.testing.assert_allclose(x.mean(0), np.asarray(mu), atol=1e-3)
    # stationary variance of Langevin with step ratio 0.1 on N(mu, s^2): s^2 / 0.95
    np.testing.assert_allclose(x.std(0), 0.01 / np.sqrt(0.95), rtol=0.06)


# ------------------------------------------------------------------------------- the model


@needs_data
def test_loader_flags_and_stats(method):
    loader = method.loader()
    assert loader.teacher_forcing_steps == 1 * loader.steps_per_epoch
    b0 = loader.batch(0)
    assert b0["frac"].shape == (4, 5, 3) and b0["types"].dtype == np.int32
    assert np.all(b0["teacher_forcing"] == 1.0)
    assert np.all(loader.batch(loader.teacher_forcing_steps)["teacher_forcing"] == 0.0)
    s = method.stats
    a = method.arrays("val")
    np.testing.assert_allclose(
        s["lattice_mean"][:3], (a["lattice"][:, :3] / a["num_atoms"][:, None] ** (1 / 3)).mean(0),
        rtol=1e-5,
    )  # fmt: skip


@needs_data
def test_loss_terms_kl_zero_and_training_decreases(method, model):
    batch = {k: jnp.asarray(v[:4]) for k, v in method.arrays("val").items() if k != "property"}
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_of(params, key, tf):
        m = nnx.merge(graphdef, params, rest)
        return method.loss_fn(m, {**batch, "teacher_forcing": jnp.full((4,), tf)}, key)

    # mu = 0, logvar = 0 (zeroed fc_mu / fc_var): KL is exactly 0
    def zero_heads(path, x):
        names = {str(getattr(p, "key", p)) for p in path}
        return jnp.zeros_like(x) if names & {"fc_mu", "fc_var"} else x

    zp = jax.tree_util.tree_map_with_path(zero_heads, params)

    tx = optax.adam(3e-3)

    @jax.jit
    def train(params, key):
        def step(carry, _):
            p, opt = carry
            # teacher forcing off: noise and decoding in the predicted lattice (pinv path)
            (loss, met), g = jax.value_and_grad(loss_of, has_aux=True)(p, key, 0.0)
            upd, opt = tx.update(g, opt, p)
            return (optax.apply_updates(p, upd), opt), (loss, met)

        (p, _), (losses, mets) = jax.lax.scan(step, (params, tx.init(params)), None, length=20)
        tf_loss, tf_met = loss_of(zp, key, 1.0)
        return losses, mets, tf_loss, tf_met["kld_loss"]

    losses, mets, tf_loss, kl0 = train(params, jax.random.key(1))
    losses = np.asarray(losses)
    assert np.all(np.isfinite(losses)) and np.isfinite(float(tf_loss))
    assert float(kl0) == 0.0
    for name in ("natom_loss", "lattice_loss", "coord_loss", "type_loss", "composition_loss"):
        assert np.all(np.asarray(mets[name]) >= 0), name
    # same key every step: the objective is fixed, so Adam must lower it
    assert losses[-1] < 0.8 * losses[0], losses
    # the total is the reference's weighted sum of the logged terms
    m0 = {k: float(v[0]) for k, v in mets.items()}
    total = (
        m0["natom_loss"]
        + 10 * m0["lattice_loss"]
        + 10 * m0["coord_loss"]
        + m0["type_loss"]
        + 0.01 * m0["kld_loss"]
        + m0["composition_loss"]
    )
    np.testing.assert_allclose(losses[0], total, rtol=1e-5)


@needs_data
def test_sample_reconstruct_and_cif_round_trip(method, model, tmp_path):
    samples = method.sample(model, jax.random.key(2), 5, progress=False)  # 2 batches of 4
    assert len(samples) == 5
    for s in samples:
        assert s is not None
        assert 1 <= len(s) <= 20
        f = s.frac_coords
        assert np.all((f >= 0) & (f < 1))
    path = tmp_path / "gen.cif"
    method.write_samples([*samples[:2], None], path)
    with pytest.warns(UserWarning, match="failed sample"):
        back = method.read_samples(path)
    assert back[2] is None and len(back) == 3
    for a, b in zip(samples[:2], back[:2]):
        assert a.composition == b.composition
        np.testing.assert_allclose(a.lattice.abc, b.lattice.abc, rtol=1e-4)

    rec = method.reconstruct(model, jax.random.key(5), "test", num=3, progress=False)
    assert len(rec) == 3 and all(r is None or 1 <= len(r) <= 20 for r in rec)
    res = method.evaluate_reconstruction(rec, "test")
    assert 0.0 <= res["match_rate"] <= 1.0


def test_optimize_property_lowers_the_prediction():
    stats = dict(lattice_mean=(1.0,) * 3 + (90.0,) * 3, lattice_std=(1.0,) * 6)
    cfg = CDVAEConfig(**TINY, predict_property=True, property_mean=2.0, property_std=3.0, **stats)
    method = cfg.build()
    model = method.init_model(jax.random.key(7))
    out = method.optimize_property(
        model, jax.random.key(8), num=6, steps=40, lr=0.05, start="random", num_saved=5,
        decode=False,
    )  # fmt: skip
    assert list(out["iterations"]) == [0, 10, 20, 30, 39]
    prop = out["property"]  # [5, 6]
    assert prop.shape == (5, 6) and out["z"].shape == (5, 6, 8)
    assert prop[-1].mean() < prop[0].mean()
    # the reported property is the head's output in data units
    direct = model.fc_property(jnp.asarray(out["z"][-1]))[:, 0] * 3.0 + 2.0
    np.testing.assert_allclose(prop[-1], np.asarray(direct), rtol=1e-5)
    plain = CDVAEConfig(**TINY, property_mean=0.0, property_std=1.0, **stats).build()
    with pytest.raises(ValueError, match="predict_property"):
        plain.optimize_property(plain.init_model(jax.random.key(0)), jax.random.key(0))


def test_recipes_are_registered():
    from genmodels.recipes import list_recipes, load_recipe

    names = list_recipes()
    for name in ("cdvae_perov5", "cdvae_carbon24", "cdvae_mp20"):
        assert name in names
    perov, _ = load_recipe("cdvae_perov5")
    carbon, _ = load_recipe("cdvae_carbon24")
    mp, _ = load_recipe("cdvae_mp20")
    assert (perov.dataset, perov.train_split, perov.max_atoms) == ("perov_5", "val", 20)
    assert (carbon.dataset, carbon.train_split, carbon.max_atoms) == ("carbon_24", "val", 24)
    assert (mp.dataset, mp.train_split, mp.max_atoms) == ("mp_20", "train", 20)
    assert mp.latent_dim == 256 and mp.n_step_each == 100 and mp.step_lr == 1e-4


# ------------------------------------------------------------------ the pretrained model


def _pretrained():
    from genmodels.models.run import load_recipe_model
    from genmodels.recipes import load_recipe

    cfg, info = load_recipe("cdvae_perov5")
    assert info.has_pretrained, f"{info.pretrained_dir} is missing"
    return info, *load_recipe_model(cfg, info.pretrained_dir)


def test_pretrained_perov5_ships_its_metrics():
    """metrics.json holds the issue's figures: generation on 1,000 samples, reconstruction
    of test crystals (the first 256 of 3,785 on this CPU budget: 5,000 decoder calls
    each), the training budget and the commands."""
    import json

    info, *_ = _pretrained()
    shipped = json.loads((info.pretrained_dir / "metrics.json").read_text())
    m = {k: v["mean"] for k, v in shipped["metrics"].items()}
    keys = {"struct_validity", "comp_validity", "cov_recall", "cov_precision"}
    keys |= {"density_wdist", "nelem_wdist", "match_rate", "rmse"}
    assert keys <= set(m)
    assert shipped["num_samples_per_seed"] == 1000 and m["num_reconstructed"] >= 256
    assert 0.0 < m["prop_wdist"] < 1.0  # eV/atom, with the shipped property model
    assert all(0.0 <= m[k] <= 1.0 for k in keys - {"density_wdist", "nelem_wdist", "rmse"})
    assert shipped["train"]["steps"] > 0 and shipped["train"]["wall_s"] > 0
    assert any(c.startswith("genmodels train cdvae_perov5") for c in shipped["commands"])
    gen = np.load(info.pretrained_dir / "generated.npz")
    assert gen["num_atoms"].shape == (1000,)


@needs_data
def test_pretrained_perov5_heads_learned_the_data():
    """The trained heads reproduce perov_5's invariants: every test crystal has 5 atoms
    (the count head must say 5), and 5-atom ABX3 cells are near-cubic (angles ~90 deg)."""
    _, method, model, _ = _pretrained()
    out = method.sample_arrays(model, jax.random.PRNGKey(3), 64, steps=1, batch_size=64)
    assert np.mean(out["num_atoms"] == 5) >= 0.95
    assert np.median(np.abs(out["lattice"][:, 3:] - 90.0)) < 5.0
    # lengths scaled by N^(1/3) around the data's mean (~2.3-2.4 A for perovskites)
    a = method.arrays("test")
    scaled_true = a["lattice"][:, :3] / a["num_atoms"][:, None] ** (1 / 3)
    scaled_gen = out["lattice"][:, :3] / out["num_atoms"][:, None] ** (1 / 3)
    assert abs(np.median(scaled_gen) - np.median(scaled_true)) < 0.3


@pytest.mark.slow  # an earlier issue's acceptance commands; the CLI path is test_sample_reconstruct_and_cif_round_trip
@needs_data
def test_pretrained_perov5_done_when_commands(tmp_path, capsys):
    """The issue's acceptance commands: 200 structures as CIF blocks, then the generation
    metrics as JSON. Test budget: 2 Langevin steps per level (the default is 100) and the
    first 64 test crystals as the reference (fingerprints of all 3,785 take minutes)."""
    import json

    from genmodels.cli import main

    out = tmp_path / "c.cif"
    argv = ["sample", "cdvae_perov5", "--checkpoint", "pretrained", "--num", "200"]
    assert main(argv + ["--steps", "2", "--out", str(out)]) == 0
    assert out.read_text().count("data_") == 200
    capsys.readouterr()
    argv = ["evaluate", "cdvae_perov5", "--samples", str(out), "--config.eval-limit", "64"]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    keys = {"struct_validity", "comp_validity", "cov_recall", "cov_precision"}
    assert keys | {"density_wdist", "nelem_wdist"} <= set(got)
    assert got["num_reference"] == 64
    assert all(0.0 <= got[k] <= 1.0 for k in keys)
