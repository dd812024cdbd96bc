"""BOSS on the image flow model (genmodels/models/boss.py, genmodels/samplers/boss.py).

- grids of a tiny random UNet through ``genmodels boss-grids``: valid
  grids for K = 2..10, DP cost <= uniform cost on the same cost matrix, the file read back
  by the flow model's ``boss`` sampler;
- grids on an exactly known flow (1-D two-mode mixture): the K-step Euler error of the
  BOSS grid against the fine reference is below the uniform grid's;
- straightening fine-tuning end to end through ``genmodels train / sample / export`` with
  tiny recipes written to a temp folder: the teacher's grids are reused, pairs cached, the
  straightening loss goes down, and the run folder samples with ``--sampler boss``.

About a minute and a half on a 2-core CPU (XLA compiles of the tiny UNet dominate).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.core.mixture import GaussianMixture
from genmodels.models.boss import PAIRS_FILE
from genmodels.models.flow import FlowImageConfig
from genmodels.models.runner import split_model
from genmodels.nets.unet import UNetConfig
from genmodels.processes.flow import LinearFlow
from genmodels.samplers.boss import (
    BOSS_GRIDS_FILE,
    COST_MATRIX_FILE,
    compute_boss_grids,
    grid_indices,
    path_cost,
    read_boss_grids,
    uniform_indices,
)
from genmodels.samplers.ode import euler_sample

TINY_FLOW_RECIPE = '''"""Tiny flow recipe (test)."""
from genmodels.models.flow import FlowImageConfig
from genmodels.nets.unet import UNetConfig
from genmodels.train import TrainConfig


def config():
    return FlowImageConfig(
        net=UNetConfig(in_channels=1, out_channels=1, img_resolution=8, model_channels=8,
                       channel_mult=(1,), num_blocks=1, attn_resolutions=(), dropout=0.0),
        sample_batch=4,
        train=TrainConfig(steps=1, batch_size=8, progress=False),
    )
'''

TINY_BOSS_RECIPE = '''"""Tiny BOSS straightening recipe (test)."""
from genmodels.models.boss import BossStraightenConfig
from genmodels.recipes import load_recipe
from genmodels.train import OptimConfig, TrainConfig


def config():
    teacher, _ = load_recipe("tiny_flow")
    return BossStraightenConfig.from_teacher(
        teacher,
        teacher="tiny_flow",
        steps_k=3,
        grid_ks=(2, 3, 4),
        grid_samples=4,
        fine_steps=12,
        num_trajectories=20,
        heldout_frac=0.2,
        traj_batch=4,
        sample_steps=3,
        train=TrainConfig(steps=12, batch_size=16, ema_decay=0.0, log_every=4, ckpt_every=12,
                          progress=False),
        optim=OptimConfig(lr=1e-3, clip_norm=1.0),
    )
'''

FINE = 12  # Kmax of the tiny grids


def _random_model(method, seed: int = 0) -> nnx.Module:
    """A UNet with random parameters everywhere (a fresh UNet outputs exactly 0: its output
    layers are zero-initialised), filled from numpy: no per-parameter XLA compiles."""
    model = nnx.eval_shape(lambda: method.init_model(jax.random.key(0)))
    graphdef, params, rest = split_model(model)
    rng = np.random.default_rng(seed)

    def fill(path, x):
        name = str(path[-2].key) if len(path) > 1 else ""
        if len(x.shape) >= 2:  # kernels: variance 1 / fan-in
            z = rng.normal(size=x.shape) / np.sqrt(np.prod(x.shape[:-1]))
        else:
            z = (1.0 if name == "scale" else 0.0) + 0.1 * rng.normal(size=x.shape)
        return jnp.asarray(z, x.dtype)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, params), rest)


def _check_grid(g, k):
    g = np.asarray(g)
    assert g.shape == (k + 1,)
    assert g[0] == pytest.approx(1.0) and g[-1] == pytest.approx(0.0, abs=1e-7)
    assert np.all(np.diff(g) < 0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Recipes ``tiny_flow`` (with a random 'pretrained' UNet and its BOSS grids for
    K = 2..10, made by ``genmodels boss-grids``) and ``boss_tiny`` in a temp folder."""
    from genmodels.cli import main
    from genmodels.recipes import load_recipe
    from genmodels.train.export import export_model

    root = tmp_path_factory.mktemp("boss")
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "tiny_flow.py").write_text(TINY_FLOW_RECIPE)
    (recipes / "boss_tiny.py").write_text(TINY_BOSS_RECIPE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENMODELS_RECIPES_DIR", str(recipes))
        cfg, info = load_recipe("tiny_flow")
        teacher = _random_model(cfg.build(), seed=3)
        export_model(teacher, info.pretrained_dir, meta={"step": 0}, params="ema")
        args = ["boss-grids", "tiny_flow", "--num-samples", "6", "--batch-size", "4"]
        assert main([*args, "--fine-steps", str(FINE)]) == 0
        yield {"root": root, "recipes": recipes, "teacher_dir": info.pretrained_dir}


def test_grids_of_a_tiny_unet_and_the_boss_sampler(tiny):
    from genmodels.models.run import load_recipe_model
    from genmodels.recipes import load_recipe

    folder = tiny["teacher_dir"]
    grids = read_boss_grids(folder / BOSS_GRIDS_FILE)
    meta = json.loads((folder / BOSS_GRIDS_FILE).read_text())
    assert meta["num_samples"] == 6 and meta["fine_steps"] == FINE  # two equal rounds of 3
    cost = np.load(folder / COST_MATRIX_FILE)
    n = FINE + 1
    assert cost.shape == (n, n)
    assert np.all(np.isinf(cost[np.tril_indices(n)]))
    np.testing.assert_allclose(np.diag(cost, 1), 0.0, atol=1e-8)  # one fine step: exact
    assert np.all(cost[np.triu_indices(n, 2)] > 0)
    assert sorted(grids) == list(range(2, 11))
    for k, g in grids.items():
        _check_grid(g, k)
        idx = grid_indices(g, FINE)
        assert idx.tolist() == meta["indices"][str(k)]
        c = float(path_cost(cost, idx))
        u = float(path_cost(cost, uniform_indices(k, FINE)))
        assert meta["cost"][str(k)] == pytest.approx(c, rel=1e-6)
        assert meta["uniform_cost"][str(k)] == pytest.approx(u, rel=1e-6)
        assert meta["uniform_exact"][str(k)] == (FINE % k == 0)
        # the DP is optimal among all K-step paths, the (rounded) uniform one included
        assert c <= u * (1 + 1e-6)
    assert meta["cost"]["4"] < meta["uniform_cost"]["4"]  # a curved field: strictly better

    # the flow method's boss sampler reads the file from the checkpoint folder
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENMODELS_RECIPES_DIR", str(tiny["recipes"]))
        cfg, _ = load_recipe("tiny_flow")
    method, model, _ = load_recipe_model(cfg, folder)
    images = method.sample(model, jax.random.key(2), 5, sampler="boss", steps=4, progress=False)
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8
    st, _, inf = method.sample_states(model, jax.random.key(2), 4, sampler="boss", steps=4)
    ref, _, _ = method.sample_states(model, jax.random.key(2), 4, sampler="boss", grid=grids[4])
    np.testing.assert_array_equal(np.asarray(st["image"]), np.asarray(ref["image"]))
    assert int(inf["nfe"]) == 4
    with pytest.raises(ValueError, match="no BOSS grid for 11 steps"):
        method.sample(model, jax.random.key(2), 2, sampler="boss", steps=11, progress=False)


# A 1-D "image" (1 x 1 x 1) whose data are a two-mode mixture: the exact flow velocity is
# known, and its paths bend late (small t), so where the steps go matters.
GM = GaussianMixture(weights=(0.3, 0.7), means=((-3.0,), (3.0,)), stds=(0.2, 0.4))


class MixtureField(nnx.Module):
    """The exact velocity ``(x - E[x_0 | x_t]) / t`` of the linear path (t = 1 noise)."""

    def __call__(self, state, t, ctx=None, *, train=False, rngs=None):
        x = state["image"]  # [B, 1, 1, 1]
        flat = x.reshape(x.shape[0], -1)
        v = (flat - GM.denoise(flat, 1.0 - t, t)) / t[:, None]
        return {"image": v.reshape(x.shape)}


def test_boss_grid_beats_uniform_euler_on_an_exact_flow():
    net = UNetConfig(in_channels=1, out_channels=1, img_resolution=1)  # shapes only
    method = FlowImageConfig(net=net).build()
    field = MixtureField()
    ks = (2, 3, 4, 5, 6, 8)
    fine = 120  # divisible by every K above: the uniform grids are on the fine grid
    grids, info = compute_boss_grids(
        method.boss_problem(field),
        jax.random.key(0),
        num_samples=256,
        fine_steps=fine,
        ks=ks,
        batch_size=256,
        progress=False,
    )
    # fresh draws (not those the grids were fitted on); all 2 x 6 K-step Euler runs in
    # one vmapped call, grids padded to 8 steps by repeating t = 1 in front (a zero-length
    # Euler step leaves the state as is)
    shapes, procs, key = {"image": (512, 1, 1, 1)}, {"image": LinearFlow()}, jax.random.key(7)
    vel = field

    def final(g):
        return euler_sample(vel, procs, {}, key, shapes=shapes, grid=g)[0]["image"]

    def pad(g):
        return jnp.concatenate([jnp.ones((9 - len(g),)), jnp.asarray(g, jnp.float32)])

    ref = jax.jit(final)(jnp.linspace(1.0, 0.0, fine + 1))
    uniform = [np.linspace(1.0, 0.0, k + 1) for k in ks]
    runs = jax.jit(jax.vmap(final))(
        jnp.stack([pad(grids[k]) for k in ks] + [pad(u) for u in uniform])
    )
    err = np.asarray(jnp.mean(jnp.sum((runs - ref[None]) ** 2, axis=(2, 3, 4)), axis=1))
    ratio = err[: len(ks)] / err[len(ks) :]  # BOSS / uniform, per K
    for k in ks:
        _check_grid(grids[k], k)
        assert info["uniform_exact"][k] and info["cost"][k] <= info["uniform_cost"][k]
    # measured over 3 seeds: ratios 0.33-0.85 (largest at K = 8), mean 0.55-0.60
    assert np.all(ratio < 0.95) and ratio.mean() < 0.75, ratio


def test_straightening_end_to_end(tiny, monkeypatch):
    from genmodels import cli
    from genmodels.models import boss as boss_mod
    from genmodels.models.run import load_recipe_model
    from genmodels.recipes import load_recipe

    monkeypatch.setenv("GENMODELS_RECIPES_DIR", str(tiny["recipes"]))
    tgrids = read_boss_grids(tiny["teacher_dir"] / BOSS_GRIDS_FILE)

    # `genmodels train` reuses the teacher's grids (same fine grid, every K present)
    calls = []
    real = boss_mod.compute_boss_grids
    monkeypatch.setattr(
        boss_mod, "compute_boss_grids", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    wd = tiny["root"] / "run"
    assert cli.main(["train", "boss_tiny", "--workdir", str(wd)]) == 0
    assert calls == []
    assert (wd / PAIRS_FILE).is_file() and (wd / "checkpoints").is_dir()
    grids = read_boss_grids(wd / BOSS_GRIDS_FILE)
    assert sorted(grids) == [2, 3, 4]
    for k in grids:
        np.testing.assert_array_equal(grids[k], tgrids[k])
    assert json.loads((wd / BOSS_GRIDS_FILE).read_text())["straightened_k"] == 3

    # a method loaded from the run folder reads its cached pairs (through checkpoint_dir,
    # without a workdir to write to): no teacher trajectory is recomputed
    cfg, _ = load_recipe("boss_tiny")
    method, student, _ = load_recipe_model(cfg, wd)
    assert method.workdir is None and method.checkpoint_dir == wd
    monkeypatch.setattr(boss_mod, "boss_trajectories", None)  # fails if called
    prep = method.prepare()
    assert prep["train"]["image"].shape == (16, 4, 8, 8, 1)
    assert prep["heldout"]["image"].shape == (4, 4, 8, 8, 1)
    np.testing.assert_allclose(prep["times"], tgrids[3])
    assert abs(float(np.std(prep["train"]["image"][:, 0])) - 1.0) < 0.1  # prior draws
    # the straightening loss went down, on the trajectories trained on and held out ones
    _, teacher, _ = method.load_teacher()
    # (batches of 4 trajectories, the held-out count: one compile for all four calls)
    before = method.heldout_loss(teacher, prep["train"], batch_size=4)
    after = method.heldout_loss(student, prep["train"], batch_size=4)
    assert np.isfinite(after["loss"]) and len(after["per_segment"]) == 3
    assert after["loss"] < 0.7 * before["loss"], (before, after)
    held = [method.heldout_loss(m, batch_size=4)["loss"] for m in (teacher, student)]
    assert held[1] < held[0], held

    # the run folder samples on its grids through the command line
    out = tiny["root"] / "samples.npz"
    args = ["--num", "5", "--out", str(out), "--sampler", "boss", "--steps", "2"]
    assert cli.main(["sample", "boss_tiny", "--checkpoint", str(wd), *args]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (5, 8, 8, 1) and f["images"].dtype == np.uint8

    # exporting keeps the grids with the parameters
    assert cli.main(["export", "boss_tiny", "--checkpoint", str(wd)]) == 0
    assert (tiny["recipes"] / "pretrained" / "boss_tiny" / BOSS_GRIDS_FILE).is_file()
