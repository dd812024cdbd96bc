"""CDVAE with flow matching on the torus for the coordinates (``coord_process="flow"``).

The displacement is the torus's shortest one; fed the exact velocity of a single
crystal, the flow decoder's Euler and Heun land on it from any start; the config refuses
the combinations that mean nothing; training lowers the loss; samples are valid
crystals; and the recipe is ``pfgmpp_perov5`` with the coordinate process changed.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from genmodels.domains.crystals import lattice_params_to_matrix
from genmodels.models.cdvae import CDVAEConfig, flow_decode, flow_displacement
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
    sample_batch=8,
    teacher_forcing_max_epoch=0,
    coord_process="flow",
    sampler="heun",
    train=TrainConfig(batch_size=8, steps=20),
    lattice_mean=(2.34,) * 3 + (90.0,) * 3,
    lattice_std=(0.1,) * 3 + (1e-5,) * 3,
    property_mean=0.0,
    property_std=1.0,
)


def test_displacement_is_the_shortest_way_round_the_torus():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(2, 1000, 3)).astype(np.float32)
    d = np.asarray(flow_displacement(jnp.asarray(a), jnp.asarray(b)))
    assert np.all(d >= -0.5) and np.all(d < 0.5)
    off = a + d - b  # an integer vector: a + d is b on the torus
    np.testing.assert_allclose(off, np.round(off), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(flow_displacement(jnp.asarray([0.9]), jnp.asarray([0.1]))), [0.2], atol=1e-6
    )


@pytest.mark.parametrize(("method_name", "nfe"), [("euler", 20), ("heun", 39)])
def test_flow_decode_with_the_exact_velocity_lands_on_the_crystal(method_name, nfe):
    """For one crystal ``f_0`` the marginal velocity of the path is
    ``flow_displacement(f_0, f) L / t`` (Cartesian); the decoder fed it ends on ``f_0``
    (modulo the cell) from uniform starts; types are the decoder's argmax."""
    b, n, k = 64, 5, 4
    key = jax.random.key(0)
    f0 = jax.random.uniform(key, (1, n, 3))
    lattice = jnp.asarray([[4.0, 4.5, 5.0, 90.0, 100.0, 90.0]] * b)
    counts = jnp.full((b,), n)

    def decoder(zt, types, frac, lat, mask):
        t = zt[:, -1]
        v = flow_displacement(f0, frac) / t[:, None, None]  # the flow runs f_0 -> f
        cart = jnp.einsum("bni,bij->bnj", v, lattice_params_to_matrix(lat))
        logits = jnp.broadcast_to(jax.nn.one_hot(2, k), (*types.shape[:2], k))
        return cart, logits

    frac_start = jax.random.uniform(jax.random.key(1), (b, n, 3))
    frac, types, info = flow_decode(
        decoder, jnp.zeros((b, 3)), counts, lattice, jnp.zeros((b, n), jnp.int32), frac_start,
        steps=20, num_types=k, method=method_name,
    )  # fmt: skip
    assert info["nfe"] == nfe
    diff = np.asarray(frac) - np.asarray(f0)
    np.testing.assert_allclose(diff - np.round(diff), 0.0, atol=1e-4)
    assert np.all(np.asarray(types) == 2)


def test_config_refuses_meaningless_combinations():
    with pytest.raises(ValueError, match="coord_D"):
        CDVAEConfig(**{**TINY, "coord_D": 128.0}).build()
    with pytest.raises(ValueError, match="not 'langevin'"):
        CDVAEConfig(**{**TINY, "sampler": "langevin"}).build()
    with pytest.raises(ValueError, match="coord_process"):
        CDVAEConfig(**{**TINY, "coord_process": "bridge"}).build()


@pytest.fixture(scope="module")
def method():
    return CDVAEConfig(**TINY).build()


@pytest.mark.slow  # ~45 s; the flow decode is checked against the exact velocity above, CDVAE training in test_cdvae.py
@needs_data
def test_training_loss_is_finite_and_decreases_and_samples_are_crystals(method):
    model = method.init_model(jax.random.key(0))
    batch = {k: jnp.asarray(v[:8]) for k, v in method.arrays("val").items() if k != "property"}
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(3e-3)

    def loss_of(p, key):
        m = nnx.merge(graphdef, p, rest)
        return method.loss_fn(m, {**batch, "teacher_forcing": jnp.ones((8,))}, key)

    @jax.jit
    def train(params, key):
        def step(carry, i):
            p, opt = carry
            (loss, met), g = jax.value_and_grad(loss_of, has_aux=True)(p, key)
            upd, opt = tx.update(g, opt, p)
            return (optax.apply_updates(p, upd), opt), (loss, met["coord_loss"])

        (p, _), out = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(20))
        return p, out

    p, (losses, coord) = train(params, jax.random.key(1))
    losses, coord = np.asarray(losses), np.asarray(coord)
    assert np.all(np.isfinite(losses)) and np.all(coord >= 0)
    assert losses[-1] < 0.85 * losses[0], losses  # one fixed objective (the same key)

    trained = nnx.merge(graphdef, p, rest)
    out = method.sample_arrays(trained, jax.random.key(2), 8, steps=3, batch_size=8)
    f, t, counts = (np.asarray(out[k]) for k in ("frac", "types", "num_atoms"))
    assert np.all((counts >= 1) & (counts <= 20))
    assert np.all((f >= 0) & (f < 1)) and np.all(np.isfinite(f))
    pad = np.arange(f.shape[1])[None, :] >= counts[:, None]
    assert np.all(f[pad] == 0) and np.all(t[pad] == 0)
    for s, k in zip(method.decode_arrays(out), counts):
        assert s is None or len(s) == k


def test_recipe_is_pfgmpp_perov5_with_the_flow():
    from genmodels.recipes import load_recipe

    cfg, info = load_recipe("flow_perov5")
    base, _ = load_recipe("pfgmpp_perov5")
    assert cfg.coord_process == "flow" and math.isinf(cfg.coord_D) and cfg.sampler == "heun"
    assert dataclasses.replace(cfg, coord_process="score", coord_D=128.0) == base
    assert info.description.startswith("CDVAE with flow matching")
