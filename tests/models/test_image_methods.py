"""Image methods (rectified flow + BOSS grids, PFGM++ / EDM): loss wiring, samplers, BOSS
grid files, recipes and the command line end to end, parametrized over both methods.

One tiny UNet (one 28 x 28 level, 8 channels) is trained for 2 steps on MNIST per method
through ``genmodels train``; the other tests reuse that checkpoint.
"""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.cli import main
from genmodels.core.grids import uniform_grid
from genmodels.models.flow import FlowMethod
from genmodels.models.pfgmpp import PFGMPPMethod
from genmodels.models.run import load_recipe_model
from genmodels.processes.base import corrupt_state
from genmodels.recipes import load_recipe
from genmodels.samplers.boss import BOSS_GRIDS_FILE, read_boss_grids, write_boss_grids

RECIPES = ["flow_mnist", "pfgmpp_mnist"]
TINY = {
    "model-channels": ["8"],
    "channel-mult": ["1"],
    "num-blocks": ["1"],
    "attn-resolutions": [],
}


def net_flags(prefix: str) -> list[str]:
    return [a for k, v in TINY.items() for a in (f"--{prefix}net.{k}", *v)]


def fast_jit(fn):
    """``fn(model, *args)`` jitted with XLA's cheap CPU optimisation level: these graphs
    run once, and compiling them dominates (as in tests/nets/test_unet.py)."""
    opts = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

    def call(model, *args):
        graphdef, state = nnx.split(model)
        run = jax.jit(lambda st, *a: fn(nnx.merge(graphdef, st), *a), compiler_options=opts)
        return run(state, *args)

    return call


def tiny_config(recipe: str):
    cfg, _ = load_recipe(recipe)
    net = dataclasses.replace(
        cfg.net, model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=()
    )
    return dataclasses.replace(cfg, net=net, sample_batch=8)


@pytest.fixture(scope="module", params=RECIPES)
def trained(request, tmp_path_factory):
    """``genmodels train RECIPE`` for 2 steps of batch 8 (divisible by the 8 simulated CPU
    devices of CI) with the tiny UNet."""
    recipe = request.param
    work = tmp_path_factory.mktemp(recipe)
    args = ["train", recipe, "--workdir", str(work), "--train.steps", "2"]
    args += ["--train.batch-size", "8", "--train.log-every", "1", "--train.progress", "False"]
    assert main(args + net_flags("")) == 0
    cfg = tiny_config(recipe)
    method, model, _ = load_recipe_model(cfg, work)
    return recipe, cfg, work, method, model


def test_training_through_the_cli_logs_a_finite_loss(trained):
    _, _, work, method, _ = trained
    lines = [json.loads(s) for s in (work / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in lines)
    assert (work / "checkpoints" / "2").is_dir()
    if isinstance(method, FlowMethod):  # set by load_recipe_model: BOSS grids live there
        assert method.checkpoint_dir == work


def test_loss_with_a_zero_network_output_matches_the_process(trained):
    """With the UNet's output layer at 0 (its initial value) the loss is known in closed
    form: flow: mean ||eps - x0||^2 with eps recovered from the straight path
    x_t = (1-t) x0 + t eps; PFGM++: lambda(sigma) mean ||c_skip(sigma) x - x0||^2."""
    _, cfg, _, method, trained_model = trained
    graphdef, state = nnx.split(trained_model)
    model = nnx.merge(graphdef, jax.tree.map(jnp.copy, state))  # the fixture's stays intact
    out = model.unet.out_conv
    out.kernel.set_value(jnp.zeros_like(out.kernel.get_value()))
    out.bias.set_value(jnp.zeros_like(out.bias.get_value()))
    u = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    key = jax.random.PRNGKey(3)
    loss, _ = fast_jit(method.loss_fn)(model, {"image": u}, key)
    _, kt, kc, _ = jax.random.split(key, 4)
    x0 = u.astype(np.float64) / 127.5 - 1.0
    t = method.process.sample_time(kt, 4)
    xt, _ = corrupt_state(method.processes, kc, {"image": jnp.asarray(x0, jnp.float32)}, t, {})
    xt = np.asarray(xt["image"], np.float64)
    t = np.asarray(t, np.float64)[:, None, None, None]
    if isinstance(method, FlowMethod):
        eps = (xt - (1 - t) * x0) / t
        want = np.mean((eps - x0) ** 2)
    else:
        sd2 = cfg.sigma_data**2
        c_skip = sd2 / (t**2 + sd2)
        lam = (t**2 + sd2) / (t * cfg.sigma_data) ** 2
        want = np.mean(lam * np.mean((c_skip * xt - x0) ** 2, axis=(1, 2, 3), keepdims=True))
    np.testing.assert_allclose(float(loss), want, rtol=2e-4)


def test_every_sampler_returns_uint8_images_and_counts_calls(trained):
    """Every registry sampler of the method (ode with 3 fixed Tsit5 steps); PFGM++ at
    D = 128 refuses the SDE samplers."""
    recipe, _, _, method, model = trained
    flow = recipe == "flow_mnist"
    want = {"euler": 3, "boss": 3, "heun": 6 if flow else 5, "ode": 21}  # Tsit5: 7 a step
    kinds = {"boss"} if flow else {"pc", "s4"}
    assert set(method.samplers) == {"euler", "heun", "ode"} | kinds
    for sampler in want:
        if sampler not in method.samplers:
            continue
        opts = {"grid": np.linspace(1.0, 0.0, 4)} if sampler == "boss" else {}
        steps = None if sampler == "boss" else 3
        st, ctx, info = method.sample_states(
            model, jax.random.PRNGKey(1), 3, sampler=sampler, steps=steps, **opts
        )
        assert st["image"].shape == (3, 28, 28, 1) and np.isfinite(np.asarray(st["image"])).all()
        assert ctx == {} and int(info["nfe"]) == want[sampler], (sampler, info)
        if sampler == "ode":
            continue
        x = method.sample(
            model, jax.random.PRNGKey(2), 5, sampler=sampler, steps=steps, batch_size=3,
            progress=False, **opts,
        )  # fmt: skip
        assert x.shape == (5, 28, 28, 1) and x.dtype == np.uint8
    with pytest.raises(ValueError, match="sampler 'fhs' cannot integrate"):
        method.sample(model, jax.random.PRNGKey(0), 2, sampler="fhs")
    if not flow:
        with pytest.raises(ValueError, match="only for D = inf"):
            method.sample(model, jax.random.PRNGKey(0), 2, sampler="pc", steps=2)


def test_boss_sampler_uses_the_stored_grid(trained, tmp_path, monkeypatch):
    recipe, _, _, method, model = trained
    if recipe != "flow_mnist":
        pytest.skip("BOSS grids are a flow sampler")
    # batch 3 and 3 steps: the functions compiled by the sampler test are reused. The
    # float states are compared (after 2 training steps the velocity is still tiny, so the
    # decoded pixels barely depend on the grid)
    key = jax.random.PRNGKey(5)

    def run(**kw):
        st, _, _ = method.sample_states(model, key, 3, sampler=kw.pop("sampler", "boss"), **kw)
        return np.asarray(st["image"])

    euler = run(sampler="euler", steps=3)
    np.testing.assert_array_equal(run(grid=uniform_grid(3)), euler)  # BOSS, uniform = Euler
    grid = np.array([1.0, 0.9, 0.5, 0.0])
    given = run(grid=grid)
    assert np.abs(given - euler).max() > 0

    # the same grid read from boss_grids.json next to the checkpoint
    folder = tmp_path / "ckpt"
    folder.mkdir()
    monkeypatch.setattr(method, "checkpoint_dir", folder)
    with pytest.raises(FileNotFoundError, match=BOSS_GRIDS_FILE):
        run(steps=3)
    write_boss_grids(folder / BOSS_GRIDS_FILE, {3: grid, 5: np.linspace(1, 0, 6)}, fine_steps=100)
    assert sorted(read_boss_grids(folder / BOSS_GRIDS_FILE)) == [3, 5]
    np.testing.assert_array_equal(run(steps=3), given)
    with pytest.raises(ValueError, match=r"no BOSS grid for 4 steps; it has K in \[3, 5\]"):
        run(steps=4)
    with pytest.raises(ValueError, match="decrease strictly"):
        write_boss_grids(tmp_path / "bad.json", {2: [0.0, 0.5, 1.0]})

    # the velocity field is the network at label 999 t
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 28, 28, 1)), jnp.float32)
    t = jnp.array([0.25, 0.8])
    diff = fast_jit(lambda m, x, t: m({"image": x}, t)["image"] - m.unet(x, 999.0 * t))(model, x, t)
    assert float(jnp.abs(diff).max()) == 0.0


def test_cli_sample_and_evaluate(trained, tmp_path, capsys):
    recipe, _, work, _, _ = trained
    # flow: the boss grid next to the checkpoint; PFGM++: euler (heun is tested above)
    sampler = "boss" if recipe == "flow_mnist" else "euler"
    if sampler == "boss":
        write_boss_grids(work / BOSS_GRIDS_FILE, {2: [1.0, 0.6, 0.0]})
    out = tmp_path / "s.npz"
    args = ["sample", recipe, "--checkpoint", str(work), "--num", "8", "--out", str(out)]
    args += ["--sampler", sampler, "--steps", "2", *net_flags("config.")]
    assert main(args) == 0
    assert out.exists() and out.with_suffix(".png").exists()
    capsys.readouterr()
    assert (
        main(["evaluate", recipe, "--samples", str(out), "--config.eval-inception", "False"]) == 0
    )
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["num_samples"] == 8 and "fid_classifier" in metrics and "fid" not in metrics


def test_recipes_are_listed_and_override_D(capsys):
    from genmodels.cli import _command_type, _parse

    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    for name in ("flow_mnist", "pfgmpp_mnist", "flow_cifar10", "pfgmpp_cifar10"):
        assert name in listed
    cfg, _ = load_recipe("pfgmpp_mnist")
    assert cfg.D == 128.0 and isinstance(cfg.build(), PFGMPPMethod)
    train = _command_type("Train", cfg, [("workdir", str | None, None)], "", flatten=True)
    assert math.isinf(_parse("t", train, ["--D", "inf"]).config.D)
    sample = _command_type("Sample", cfg, [("num", int, 1)], "", flatten=False)
    assert _parse("s", sample, ["--config.D", "2048"]).config.D == 2048.0


def test_cifar10_recipes_have_the_paper_settings():
    from genmodels.nets.unet import UNetConfig

    pf, _ = load_recipe("pfgmpp_cifar10")
    assert pf.net == UNetConfig.ddpmpp_cifar10() and pf.D == 128.0 and pf.dataset == "cifar10"
    assert pf.train.batch_size == 512 and pf.train.steps * 512 == 200_000_000
    assert pf.optim.lr == 1e-3 and pf.optim.warmup_steps * 512 == 9_999_872
    assert abs(math.log(0.5) / math.log(pf.train.ema_decay) * 512 - 500_000) < 1  # half-life
    assert (pf.sampler, pf.sample_steps, pf.sigma_min, pf.sigma_max) == ("heun", 18, 0.002, 80)
    fl, _ = load_recipe("flow_cifar10")
    assert (fl.net.model_channels, fl.net.channel_mult, fl.net.num_blocks) == (128, (1, 2, 2, 2), 4)
    assert fl.random_flip and fl.train.batch_size == 128 and fl.optim.lr == 2e-4
    for cfg in (pf, fl):
        assert cfg.build().task.shape == (32, 32, 3)
