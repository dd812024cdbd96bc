"""CDVAE with PFGM++ coordinate noise (``coord_D``) and ODE sampling (issue #10).

The Gaussian limit is CDVAE's draw exactly; for finite D the per-crystal noise radius
follows the PFGM++ law in N = 3 n dimensions (KS test against ``radius_cdf``; padding
does not count); the kernel score at a point posterior is the kernel's; the ODE over
CDVAE's geometric levels, fed the exact PFGM++ denoiser of three points, reproduces
them; training lowers the loss; samples are valid crystals; sampling sharded over 8
simulated devices equals single-device sampling; and the recipe runs through the CLI.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
from flax import nnx

from genmodels.models.cdvae import (
    CDVAEConfig,
    coordinate_noise,
    geometric_sigmas,
    kernel_score,
)
from genmodels.models.run import read_sidecar
from genmodels.models.runner import Runner
from genmodels.processes.pfgmpp import PFGMPP, exact_denoiser, radius_cdf
from genmodels.samplers.ode import sigma_grid_sample
from genmodels.train.config import TrainConfig

DATA = Path(os.environ.get("GENMODELS_DATA_DIR", "data")) / "crystals" / "perov_5" / "val.csv"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="perov_5 val.csv not available")

TINY = dict(
    dataset="perov_5",
    train_split="val",
    eval_split="test",
    train_limit=16,
    eval_limit=16,
    latent_dim=8,
    hidden_dim=16,
    enc_hidden=16,
    enc_blocks=1,
    dec_hidden=16,
    dec_blocks=1,
    max_neighbors=8,
    num_noise_level=3,
    n_step_each=2,
    sample_batch=8,
    teacher_forcing_max_epoch=0,
    coord_D=128.0,
    sampler="heun",
    train=TrainConfig(batch_size=8, steps=20),
)
#: perov_5-like scaler statistics (lengths / N^(1/3) ~ 2.34 A, right angles), so that
#: building the model reads no data
STATS = dict(
    lattice_mean=(2.34,) * 3 + (90.0,) * 3,
    lattice_std=(0.1,) * 3 + (1e-5,) * 3,
    property_mean=0.0,
    property_std=1.0,
)


@pytest.fixture(scope="module")
def method():
    return CDVAEConfig(**TINY, **STATS).build()


@pytest.fixture(scope="module")
def model(method):
    return method.init_model(jax.random.key(0))


@pytest.fixture(scope="module")
def counted(model):
    """The model with a count head that says 2 or 5 atoms (logits ``100 +- 10 h.w`` for
    a random direction ``w`` of its hidden features ``h``): one padding size (5) for
    every batch, with padded crystals in it (an untrained head says up to 20 atoms).

    Its decoder's coordinate output is scaled by 0.01 (the edge heads are linear in it):
    the untrained field is no denoiser, and its full-size ODE steps (~10 d A at
    sigma_1) amplify float32 rounding chaotically (sharded and single-device runs then
    differ by up to ~0.05 for the odd atom); with small moves they agree to ~1e-6.
    """
    m = nnx.clone(model)
    out = m.fc_num_atoms.out
    w = 10.0 * out.kernel[:, 2]
    out.kernel[...] = out.kernel[...].at[:, 2].set(w).at[:, 5].set(-w)
    out.bias[...] = out.bias[...].at[jnp.array([2, 5])].set(100.0)
    for head in m.decoder.edge_heads:
        head.out.kernel[...] = 0.01 * head.out.kernel[...]
    return m


# ----------------------------------------------------------------------------- the kernel


def test_infinite_D_is_cdvaes_gaussian_draw_and_score():
    """D = inf: the noise is CDVAE's ``normal(key) * sigma`` bit for bit (same key), and
    the Langevin score is CDVAE's ``d / sigma``; the defaults keep plain CDVAE."""
    key = jax.random.key(11)
    shape = (8, 5, 3)
    sigma = jnp.asarray(geometric_sigmas(10.0, 0.01, 8))
    mask = jnp.ones((8, 5))
    got = coordinate_noise(key, shape, sigma, math.inf, mask)
    want = jax.random.normal(key, shape) * sigma[:, None, None]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    d = jax.random.normal(jax.random.key(1), shape)
    np.testing.assert_array_equal(
        np.asarray(kernel_score(d, sigma, math.inf, mask)), np.asarray(d / sigma[:, None, None])
    )
    cfg = CDVAEConfig()
    assert math.isinf(cfg.coord_D) and cfg.sampler == "langevin"
    with pytest.raises(ValueError, match="coord_D"):
        CDVAEConfig(coord_D=0.0).build()
    with pytest.raises(ValueError, match="sampler"):
        CDVAEConfig(sampler="ddim").build()


@pytest.mark.parametrize("D", [4.0, 128.0])
def test_finite_D_radius_follows_the_pfgmpp_law_in_3n_dimensions(D):
    """Per crystal, ``R = ||noise||`` over its real atoms has the PFGM++ radius law with
    ``N = 3 n`` and ``r = sigma sqrt(D)`` (KS test on ``radius_cdf``): crystals of 5 and
    of 2 atoms (padded to 5) in one batch. The wrong N (padding counted) and, for small
    D, the Gaussian (chi) law are rejected: the test has power."""
    b, n = 4000, 5
    counts = np.where(np.arange(b) % 2 == 0, 5, 2)
    mask = jnp.asarray(np.arange(n)[None, :] < counts[:, None], jnp.float32)  # [B, N]
    levels = geometric_sigmas(10.0, 0.01, 50)
    sigma = levels[np.random.default_rng(0).integers(0, 50, b)]  # [B]
    noise = jax.jit(coordinate_noise, static_argnums=(1, 3))(
        jax.random.key(3), (b, n, 3), jnp.asarray(sigma), D, mask
    )
    noise = np.asarray(noise, np.float64)
    assert np.all(noise[np.asarray(mask) == 0] == 0.0)
    radius = np.linalg.norm(noise.reshape(b, -1), axis=1)
    r = sigma * np.sqrt(D)
    for k in (5, 2):
        sel = counts == k
        u = radius_cdf(radius[sel], r[sel], 3 * k, D)
        assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3, (k, D)
    small = counts == 2
    wrong = radius_cdf(radius[small], r[small], 15, D)  # padding counted: N = 15
    assert scipy.stats.kstest(wrong, "uniform").pvalue < 1e-6
    if D < 10:
        chi = scipy.stats.chi(6).cdf(radius[small] / sigma[small])
        assert scipy.stats.kstest(chi, "uniform").pvalue < 1e-6


def test_kernel_score_is_the_kernels_score_at_a_point_posterior():
    """With ``d = (y - x) / sigma`` exact, the score is
    ``(N + D) (y - x) / (||y - x||^2 + sigma^2 D)`` over the real atoms (N = 3 n)."""
    k1, k2 = jax.random.split(jax.random.key(5))
    b, n, D = 8, 5, 16.0
    counts = jnp.array([5, 1, 3, 5, 2, 4, 5, 1])
    mask = (jnp.arange(n)[None] < counts[:, None]).astype(jnp.float32)
    diff = jax.random.normal(k1, (b, n, 3)) * mask[..., None]  # y - x
    sigma = jnp.exp(jax.random.normal(k2, (b,)))
    d = diff / sigma[:, None, None]
    got = np.asarray(kernel_score(d, sigma, D, mask))
    sq = np.sum(np.asarray(diff) ** 2, axis=(1, 2))
    want = (3 * np.asarray(counts) + D)[:, None, None] * np.asarray(diff)
    want = want / (sq + np.asarray(sigma) ** 2 * D)[:, None, None]
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the ODE

POINTS = np.array([[-1.0, -1.0], [1.0, -0.5], [0.0, 1.2]], np.float32)
POINT_W = np.array([0.2, 0.3, 0.5], np.float32)


@pytest.mark.parametrize("method_name", ["heun", "euler"])
def test_ode_over_cdvae_levels_with_the_exact_field_recovers_the_data(method_name):
    """From the PFGM++-perturbed data at sigma_1 = 10 (D = 128), the ODE over CDVAE's 50
    geometric levels and a final step to 0, fed the exact PFGM++ denoiser of three
    weighted points, lands on the points with their weights; the assigned leaf holds the
    label of the last evaluation; NFE is ``2 L - 1`` (Heun) or ``L`` (Euler)."""
    D, b = 128.0, 4000
    den = exact_denoiser(POINTS, POINT_W, D)
    pts = jnp.asarray(POINTS)

    def slope(state, sigma, ctx):
        x = state["x"]
        est = den(x, sigma)
        lab = jnp.argmin(jnp.sum((est[:, None] - pts[None]) ** 2, -1), -1)
        return {"x": (x - est) / sigma[:, None], "lab": lab}

    kl, kp = jax.random.split(jax.random.key(7))
    idx = jax.random.choice(kl, 3, (b,), p=jnp.asarray(POINT_W))
    x0 = pts[idx] + PFGMPP(D=D).prior_at(kp, (b, 2), 10.0)
    grid = np.concatenate([geometric_sigmas(10.0, 0.01, 50), [0.0]]).astype(np.float32)
    run = jax.jit(
        lambda x0: sigma_grid_sample(
            slope, grid, {}, init={"x": x0, "lab": jnp.zeros((b,), jnp.int32)},
            method=method_name, assign=("lab",),
        )
    )  # fmt: skip
    out, info = run(x0)
    x = np.asarray(out["x"])
    dist = np.linalg.norm(x[:, None] - POINTS[None], axis=-1)  # [B, 3]
    lab = dist.argmin(1)
    assert dist.min(1).max() < 1e-3
    np.testing.assert_allclose(np.bincount(lab, minlength=3) / b, POINT_W, atol=0.03)
    np.testing.assert_array_equal(np.asarray(out["lab"]), lab)
    assert info["nfe"] == (99 if method_name == "heun" else 50)


# ----------------------------------------------------------------------------- the model


@pytest.mark.slow  # ~40 s; CDVAE training: test_cdvae.py; this kernel's sampling stays
@needs_data
def test_training_loss_is_finite_and_decreases(method, model):
    batch = {k: jnp.asarray(v[:8]) for k, v in method.arrays("val").items() if k != "property"}
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(3e-3)

    def loss_of(p, key, tf):
        m = nnx.merge(graphdef, p, rest)
        return method.loss_fn(m, {**batch, "teacher_forcing": jnp.full((8,), tf)}, key)

    @jax.jit
    def train(params, key):
        def step(carry, i):
            p, opt = carry
            # teacher forcing on for the first half, then the predicted lattice
            tf = (i < 12).astype(jnp.float32)
            (loss, met), g = jax.value_and_grad(loss_of, has_aux=True)(p, key, tf)
            upd, opt = tx.update(g, opt, p)
            return (optax.apply_updates(p, upd), opt), (loss, met["coord_loss"])

        _, out = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(24))
        return out

    losses, coord = (np.asarray(a) for a in train(params, jax.random.key(1)))
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(coord)) and np.all(coord >= 0)
    # the same key every step: a fixed objective per phase, which Adam must lower
    assert losses[11] < 0.85 * losses[0] and losses[-1] < 0.9 * losses[12], losses


def _check_valid(out: dict, num: int) -> None:
    """``num`` crystals: fractional coordinates in [0, 1), padding zero, atom counts in
    1..20."""
    f, t, counts = (np.asarray(out[k]) for k in ("frac", "types", "num_atoms"))
    assert f.shape[0] == t.shape[0] == counts.shape[0] == out["lattice"].shape[0] == num
    assert np.all((counts >= 1) & (counts <= 20))
    assert np.all((f >= 0) & (f < 1)) and np.all(np.isfinite(f))
    pad = np.arange(f.shape[1])[None, :] >= counts[:, None]
    assert np.all(f[pad] == 0) and np.all(t[pad] == 0)


def test_samples_are_valid_crystals(method, counted):
    """16 crystals by the recipe's sampler (Heun ODE, 3 levels): valid arrays, 2- and
    5-atom crystals, and each decoded structure has its count of atoms in the cell.
    (With 8 devices this batch is the sharded one of the next test.)"""
    out = method.sample_arrays(counted, jax.random.key(2), 16, steps=3, batch_size=16)
    _check_valid(out, 16)
    assert set(out["num_atoms"].tolist()) == {2, 5}
    for s, k in zip(method.decode_arrays(out), out["num_atoms"]):
        assert s is not None and len(s) == k
        assert np.all((s.frac_coords >= 0) & (s.frac_coords < 1))


@pytest.mark.devices
def test_sampling_split_over_devices_gives_the_same_crystals(method, counted, monkeypatch):
    """The batch is sharded over the (simulated) devices and the crystals equal the
    single-device ones for the same key (the recipe's Heun ODE, 3 levels)."""
    if jax.device_count() < 2:
        pytest.skip("needs several (simulated) devices; .ci/run sets 8")
    batch = 2 * jax.device_count()
    key = jax.random.key(6)
    sharded = method.sample_batch(counted, key, batch, sampler="heun", steps=3)
    assert len(sharded["frac"].sharding.device_set) == jax.device_count()
    monkeypatch.setattr(jax, "local_device_count", lambda *a: 1)
    # recompile without the mesh (the runner picks it when it compiles)
    monkeypatch.setattr(method, "runner", Runner())
    single = method.sample_batch(counted, key, batch, sampler="heun", steps=3)
    assert len(single["frac"].sharding.device_set) == 1
    _check_valid(sharded, batch)
    for k in ("num_atoms", "types"):
        np.testing.assert_array_equal(np.asarray(sharded[k]), np.asarray(single[k]))
    np.testing.assert_allclose(np.asarray(sharded["lattice"]), np.asarray(single["lattice"]))
    # coordinates equal up to float32 rounding (per-device kernels of batch 2 round
    # differently from whole-batch ones), compared on the torus
    diff = np.asarray(sharded["frac"]) - np.asarray(single["frac"])
    np.testing.assert_allclose(diff - np.round(diff), 0.0, atol=1e-5)


# ----------------------------------------------------------------------------- recipe, CLI


def test_recipe_is_cdvae_perov5_with_the_pfgmpp_kernel():
    from genmodels.recipes import load_recipe

    cfg, info = load_recipe("pfgmpp_perov5")
    base, _ = load_recipe("cdvae_perov5")
    assert cfg.coord_D == 128.0 and cfg.sampler == "heun" and cfg.train.steps == 2500
    assert (cfg.dataset, cfg.train_split, cfg.eval_split) == ("perov_5", "val", "test")
    same = ("enc_hidden", "dec_hidden", "latent_dim", "max_neighbors", "sigma_begin", "optim")
    assert all(getattr(cfg, k) == getattr(base, k) for k in same)
    assert info.description.startswith("CDVAE with PFGM++")


@needs_data
@pytest.mark.slow
def test_cli_train_sample_evaluate(tmp_path, capsys):
    """``genmodels train pfgmpp_perov5`` (3 steps, tiny sizes), ``sample`` (``--sampler
    langevin``, annealed Langevin with the PFGM++ kernel score, 1 step per level; the
    default Heun ODE is tested above) and ``evaluate`` (8 reference crystals)."""
    from genmodels.cli import main

    small = [
        "--train-limit", "16", "--eval-limit", "8", "--latent-dim", "8", "--hidden-dim",
        "16", "--enc-hidden", "16", "--dec-hidden", "16", "--max-neighbors", "8",
    ]  # fmt: skip
    run = tmp_path / "run"
    train = ["--train.steps", "3", "--train.batch-size", "8", "--train.progress", "False"]
    assert main(["train", "pfgmpp_perov5", "--workdir", str(run), *train, *small]) == 0
    assert (run / "checkpoints").is_dir()
    cfg = [a.replace("--", "--config.", 1) if a.startswith("--") else a for a in small]
    out = tmp_path / "s.cif"
    argv = ["sample", "pfgmpp_perov5", "--checkpoint", str(run), "--num", "8"]
    argv += ["--sampler", "langevin", "--steps", "1", "--batch-size", "8"]
    assert main([*argv, "--out", str(out), *cfg]) == 0
    assert out.read_text().count("data_") == 8
    meta = read_sidecar(out)
    assert meta["sampler"] == "langevin" and meta["steps"] == 1
    capsys.readouterr()
    assert main(["evaluate", "pfgmpp_perov5", "--samples", str(out), *cfg]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["num_reference"] == 8
    assert all(0.0 <= got[k] <= 1.0 for k in ("struct_validity", "comp_validity"))
