"""The training engine: exact resume, non-finite guard, optimizer, data-parallel equality."""

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.errors import CheckpointError, MissingFileError, TrainingInterrupted
from genmodels.train import (
    ArrayLoader,
    Checkpointer,
    FunctionLoader,
    NonFiniteLossError,
    OptimConfig,
    TrainConfig,
    load_model,
    make_optimizer,
    read_metrics,
    train,
)
from genmodels.train.checkpoint import config_hash, config_json


class Net(nnx.Module):
    def __init__(self, rngs, hidden=16):
        self.l1 = nnx.Linear(3, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def loss_fn(model, batch, key):
    # the key enters the loss (input noise) so that resume must restore per-step keys too
    noise = 0.01 * jax.random.normal(key, batch["x"].shape)
    pred = model(batch["x"] + noise)[:, 0]
    return jnp.mean((pred - batch["y"]) ** 2), {"mean_pred": jnp.mean(pred)}


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2]).astype(np.float32)
    return {"x": x, "y": y}


TCFG = TrainConfig(
    steps=20,
    batch_size=16,
    ckpt_every=5,
    log_every=5,
    ema_decay=0.9,
    progress=False,
    async_checkpointing=False,
)
OCFG = OptimConfig(lr=1e-2, warmup_steps=3, schedule="cosine", clip_norm=1.0, weight_decay=1e-4)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


class Stop(Exception):
    pass


def test_exact_resume_after_interrupt(tmp_path):
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    full = train(Net(nnx.Rngs(0)), loss_fn, loader, TCFG, OCFG, tmp_path / "a")

    def crash(step, metrics):
        if step == 15:
            raise Stop

    with pytest.raises(Stop):
        train(Net(nnx.Rngs(0)), loss_fn, loader, TCFG, OCFG, tmp_path / "b", hooks=[crash])
    assert Checkpointer(tmp_path / "b" / "checkpoints").latest_step() == 10
    # resume from a model with different initial values: everything must come from disk
    resumed = train(Net(nnx.Rngs(99)), loss_fn, loader, TCFG, OCFG, tmp_path / "b")
    for a, b in zip(leaves(full.state), leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    # step 15, logged before the crash, was dropped on resume from step 10 and logged again
    rec = read_metrics(tmp_path / "b")
    assert [r["step"] for r in rec] == [5, 10, 15, 20]
    # the logged wall time is cumulative: the resumed run starts from the checkpoint's
    meta = Checkpointer(tmp_path / "b" / "checkpoints").read_meta(10)
    assert rec[1]["elapsed_s"] <= meta["elapsed_s"] <= rec[2]["elapsed_s"] <= rec[3]["elapsed_s"]


LOG1 = dataclasses.replace(TCFG, steps=10, ckpt_every=3, log_every=1)


@pytest.fixture(scope="module")
def full_log1():
    """The final state leaves of an uninterrupted run of ``LOG1``."""
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    return leaves(train(Net(nnx.Rngs(0)), loss_fn, loader, LOG1, OCFG, None).state)


def test_metrics_log_each_step_once_after_several_resumes(tmp_path, full_log1):
    cfg = LOG1
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    for kill_at in (5, 8):  # each crash leaves rows logged after the last checkpoint

        def crash(step, metrics, kill_at=kill_at):
            if step == kill_at:
                raise Stop

        with pytest.raises(Stop):
            train(Net(nnx.Rngs(0)), loss_fn, loader, cfg, OCFG, tmp_path, hooks=[crash])
        assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, kill_at + 1))
    # a line cut by a kill mid-write is dropped too
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 9, "lo')
    resumed = train(Net(nnx.Rngs(0)), loss_fn, loader, cfg, OCFG, tmp_path)
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, 11))
    for a, b in zip(full_log1, leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("where", ["hook", "loader"])
def test_ctrl_c_checkpoints_the_last_step_and_resumes_exactly(tmp_path, where, full_log1):
    """Ctrl-C after a completed step (in a hook) or while loading the next batch."""
    cfg = LOG1
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    hooks, bad = [], loader
    if where == "hook":

        def hook(step, metrics):
            if step == 7:
                raise KeyboardInterrupt

        hooks = [hook]
    else:

        def batch(step):
            if step == 7:
                raise KeyboardInterrupt
            return loader.batch(step)

        bad = FunctionLoader(batch, 16)
    with pytest.raises(TrainingInterrupted) as err:
        train(Net(nnx.Rngs(0)), loss_fn, bad, cfg, OCFG, tmp_path, hooks=hooks)
    assert (err.value.step, err.value.checkpoint_step, err.value.exit_code) == (7, 7, 130)
    assert "interrupted at step 7 (checkpoint at step 7)" in str(err.value)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [3, 6, 7]
    ckpt.close()
    resumed = train(Net(nnx.Rngs(99)), loss_fn, loader, cfg, OCFG, tmp_path)
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, 11))
    for a, b in zip(full_log1, leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_ctrl_c_swallowed_where_it_lands_still_stops_training(tmp_path):
    """SIGINT raised inside code that swallows the KeyboardInterrupt (as Python does in a
    gc callback, where jax frees buffers) still stops training after that step."""
    import signal

    def hook(step, metrics):
        if step == 4:
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass  # lost, as in "Exception ignored in: <function _xla_gc_callback ...>"

    before = signal.getsignal(signal.SIGINT)  # Python's, or SIG_IGN under nohup / `cmd &`
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    with pytest.raises(TrainingInterrupted) as err:
        train(Net(nnx.Rngs(0)), loss_fn, loader, LOG1, OCFG, tmp_path, hooks=[hook])
    assert (err.value.step, err.value.checkpoint_step) == (4, 4)
    assert signal.getsignal(signal.SIGINT) is before  # put back


def test_a_first_ctrl_c_is_recorded_not_raised_and_still_stops(tmp_path):
    """Where Python would swallow a KeyboardInterrupt and print "Exception ignored in" with
    a traceback (a gc callback such as jax's ``_xla_gc_callback``, or orbax waiting for a
    checkpoint write), nothing is raised: the first Ctrl-C is recorded and training stops
    at the end of that step."""
    import signal

    raised = []

    def _xla_gc_callback():
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            raised.append(True)

    def hook(step, metrics):
        if step == 4:
            _xla_gc_callback()

    loader = ArrayLoader(data(), batch_size=16, seed=1)
    with pytest.raises(TrainingInterrupted) as err:
        train(Net(nnx.Rngs(0)), loss_fn, loader, LOG1, OCFG, tmp_path, hooks=[hook])
    assert (err.value.step, err.value.checkpoint_step) == (4, 4)
    assert raised == []


def test_ctrl_c_without_workdir_reports_the_step():
    def hook(step, metrics):
        if step == 3:
            raise KeyboardInterrupt

    loader = ArrayLoader(data(), batch_size=16, seed=1)
    with pytest.raises(TrainingInterrupted, match="no checkpoint written yet") as err:
        train(Net(nnx.Rngs(0)), loss_fn, loader, LOG1, OCFG, None, hooks=[hook])
    assert (err.value.step, err.value.checkpoint_step) == (3, None)


@pytest.mark.slow  # tests/cli/test_bad_input.py kills and resumes a real run in the default suite
def test_resume_after_sigkill(tmp_path):
    """A process killed with SIGKILL mid-run resumes to the uninterrupted parameters."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_loop import *
        loader = ArrayLoader(data(), batch_size=16, seed=1)
        kill_at = int(sys.argv[2])
        def hook(step, m):
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        train(Net(nnx.Rngs(0)), loss_fn, loader, TCFG, OCFG, sys.argv[1], hooks=[hook])
        """
    )
    env = dict(os.environ, XLA_FLAGS="")
    wd = tmp_path / "k"
    r = subprocess.run([sys.executable, "-c", script, str(wd), "10"], env=env, capture_output=True)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    ckpt = Checkpointer(wd / "checkpoints")
    assert ckpt.latest_step() == 5  # the hook at step 10 fires before that step's save
    ckpt.close()
    r = subprocess.run([sys.executable, "-c", script, str(wd), "-1"], env=env, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    # the uninterrupted reference runs in the same kind of process (same device setup)
    ref = tmp_path / "full"
    r = subprocess.run([sys.executable, "-c", script, str(ref), "-1"], env=env, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    model, meta = load_model(Net(nnx.Rngs(5)), wd, ema=False)
    full, _ = load_model(Net(nnx.Rngs(6)), ref, ema=False)
    assert meta["step"] == 20 and meta["data_position"] == 20
    for a, b in zip(leaves(nnx.state(full, nnx.Param)), leaves(nnx.state(model, nnx.Param))):
        np.testing.assert_array_equal(a, b)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    base = data()

    def fn(step):
        b = {k: v[:16].copy() for k, v in base.items()}
        if step >= 12:
            b["x"][0, 0] = np.nan
        return b

    with pytest.raises(NonFiniteLossError, match="step 12"):
        train(Net(nnx.Rngs(0)), loss_fn, FunctionLoader(fn, 16), TCFG, OCFG, tmp_path)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.latest_step() == 10
    ckpt.close()
    model, meta = load_model(Net(nnx.Rngs(0)), tmp_path)
    assert meta["step"] == 10
    assert all(np.isfinite(x).all() for x in leaves(nnx.state(model, nnx.Param)))


def test_ema_and_training_reduce_loss(tmp_path):
    loader = ArrayLoader(data(), batch_size=32, seed=0)
    cfg = TrainConfig(
        steps=300, batch_size=32, ema_decay=0.99, log_every=50, ckpt_every=1000, progress=False
    )
    res = train(Net(nnx.Rngs(0)), loss_fn, loader, cfg, OptimConfig(lr=1e-2), tmp_path)
    log = read_metrics(tmp_path)
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    d = data(200, seed=1)
    ema_loss = float(jnp.mean((res.ema_model(d["x"])[:, 0] - d["y"]) ** 2))
    assert ema_loss < 0.5 * float(np.var(d["y"]))
    assert {"steps_per_sec", "lr", "grad_norm", "mean_pred"} <= set(log[-1])


def test_optimizer_matches_hand_computed_adam_step():
    # one step of clip -> coupled L2 -> Adam -> lr, against the PyTorch Adam formula
    # eps = 1 makes the step size depend on the gradient's magnitude, so clipping and
    # the L2 term are both visible in the result
    cfg = OptimConfig(lr=0.1, weight_decay=0.5, clip_norm=1.0, eps=1.0)
    tx, _ = make_optimizer(cfg, 10)
    p = {"w": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([3.0, 4.0])}  # norm 5 -> clipped to [0.6, 0.8]
    upd, _ = tx.update(g, tx.init(p), p)
    gc = np.array([0.6, 0.8]) + 0.5 * np.array([1.0, -2.0])
    m, v = 0.1 * gc, 0.001 * gc**2
    expected = -0.1 * (m / 0.1) / (np.sqrt(v / 0.001) + 1.0)
    np.testing.assert_allclose(np.asarray(upd["w"]), expected, rtol=1e-5)


def test_exponential_schedule_is_staircase():
    from genmodels.train import make_schedule

    s = make_schedule(
        OptimConfig(lr=1.0, schedule="exponential", decay_rate=0.5, decay_every=10), 100
    )
    assert [float(s(i)) for i in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_array_loader_is_a_function_of_step():
    a = ArrayLoader(data(50), batch_size=8, seed=3)
    b = ArrayLoader(data(50), batch_size=8, seed=3)
    for s in (0, 5, 6, 7, 13):
        np.testing.assert_array_equal(a.batch(s)["x"], b.batch(s)["x"])
    # one epoch covers distinct examples
    ep = np.concatenate([a.batch(s)["y"] for s in range(a.steps_per_epoch)])
    assert len(np.unique(ep)) == len(ep) == 48


_DEVICE_SCRIPT = """
import jax, numpy as np
from flax import nnx
import sys
sys.path.insert(0, {here!r})
from test_loop import *
assert jax.device_count() >= 8, jax.devices()
loader = ArrayLoader(data(), batch_size=16, seed=1)
cfg = TrainConfig(steps=6, batch_size=16, log_every=1, ckpt_every=100, progress=False)
losses = {{}}
for name, devs in (("one", jax.devices()[:1]), ("eight", jax.devices()[:8])):
    rec = []
    res = train(Net(nnx.Rngs(0)), loss_fn, loader, cfg, OCFG, None, devices=devs,
                hooks=[lambda s, m: rec.append(m["loss"])])
    losses[name] = rec
    if name == "eight":
        leaf = jax.tree.leaves(res.state["params"])[0]
        assert len(leaf.sharding.device_set) == 8, leaf.sharding
print("LOSSES", losses)
np.testing.assert_allclose(losses["one"], losses["eight"], rtol=1e-5, atol=1e-6)
# replicated state checkpointed on 8 devices (one copy written) resumes exactly
import tempfile
wd = tempfile.mkdtemp()
half = TrainConfig(steps=3, batch_size=16, log_every=1, ckpt_every=100, progress=False)
train(Net(nnx.Rngs(0)), loss_fn, loader, half, OCFG, wd, devices=jax.devices()[:8])
rec = []
train(Net(nnx.Rngs(0)), loss_fn, loader, cfg, OCFG, wd, devices=jax.devices()[:8],
      hooks=[lambda s, m: rec.append(m["loss"])])
assert rec == losses["eight"][3:], (rec, losses["eight"])
# a batch of 12 on 8 devices trains on the 4 that divide it, and says so
import warnings
cfg12 = TrainConfig(steps=2, batch_size=12, log_every=1, ckpt_every=100, progress=False)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    res = train(Net(nnx.Rngs(0)), loss_fn, ArrayLoader(data(), batch_size=12, seed=1), cfg12,
                OCFG, None)
leaf = jax.tree.leaves(res.state["params"])[0]
assert len(leaf.sharding.device_set) == 4, leaf.sharding
msgs = [str(x.message) for x in w]
assert any("batch-size 12 is not a multiple of the 8 devices; training on 4" in m for m in msgs), msgs
print("OK")
"""


def test_data_parallel_on_8_devices_matches_one_device():
    here = str(Path(__file__).parent)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    r = subprocess.run(
        [sys.executable, "-c", _DEVICE_SCRIPT.format(here=here)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]


# ---------------------------------------------------------------- damaged checkpoints


@dataclasses.dataclass(frozen=True)
class RingConfig:
    hidden: int = 16


@dataclasses.dataclass(frozen=True)
class OtherConfig:
    hidden: int = 16


RUN3 = dataclasses.replace(TCFG, steps=3, ckpt_every=1, log_every=1, keep_checkpoints=3)


@pytest.fixture(scope="module")
def run3(tmp_path_factory):
    """A run folder of recipe "ring" with checkpoints 1, 2, 3, and the final state leaves
    of an uninterrupted 4-step run."""
    wd = tmp_path_factory.mktemp("run3")
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    train(Net(nnx.Rngs(0)), loss_fn, loader, RUN3, OCFG, wd, config=RingConfig(), recipe="ring")
    full = train(Net(nnx.Rngs(0)), loss_fn, loader, dataclasses.replace(RUN3, steps=4), OCFG)
    return wd, leaves(full.state)


@pytest.fixture
def run(run3, tmp_path):
    """A copy of ``run3``'s folder to damage."""
    shutil.copytree(run3[0], tmp_path / "run")
    return tmp_path / "run"


def _arrays(step_dir):
    return [f for f in (step_dir / "state" / "d").iterdir() if f.is_file()]


DAMAGE = {
    "an array file is cut short": lambda d: [f.open("r+b").truncate(10) for f in _arrays(d)],
    "an array file is missing": lambda d: [f.unlink() for f in _arrays(d)],
    "empty folder": lambda d: (shutil.rmtree(d), d.mkdir()),
    "broken JSON": lambda d: (d / "meta" / "metadata").write_text('{"config": '),
}


def test_resume_skips_an_unreadable_newest_checkpoint_and_a_leftover_tmp_folder(run, run3, capfd):
    DAMAGE["an array file is cut short"](run / "checkpoints" / "3")
    # a save killed before orbax renamed its temporary folder
    tmp = run / "checkpoints" / "4.orbax-checkpoint-tmp-1234"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "junk").write_text("x")
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    cfg = dataclasses.replace(RUN3, steps=4)
    res = train(
        Net(nnx.Rngs(9)), loss_fn, loader, cfg, OCFG, run, config=RingConfig(), recipe="ring"
    )
    err = capfd.readouterr().err
    warned = [line for line in err.splitlines() if "unreadable" in line]
    assert len(warned) == 1 and "Traceback" not in err, err
    assert (
        f"checkpoint {run / 'checkpoints' / '3'} is unreadable (an array file is cut short); "
        "resuming from step 2" in warned[0]
    )
    for a, b in zip(run3[1], leaves(res.state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["2", "3", "4"]
    assert (run / "checkpoints_corrupt" / "3").is_dir()  # set aside, not deleted
    meta = Checkpointer(run / "checkpoints").read_meta(4)
    assert meta["recipe"] == "ring"
    assert (
        meta["config_hash"]
        == config_hash(config_json(RingConfig()))
        != config_hash(config_json(RingConfig(hidden=8)))
    )


@pytest.mark.parametrize("reason", list(DAMAGE))
def test_load_model_falls_back_in_a_run_folder_else_says_what_to_do(run, reason, capfd):
    DAMAGE[reason](run / "checkpoints" / "3")
    model, meta = load_model(Net(nnx.Rngs(9)), run)
    assert meta["step"] == 2
    assert f"3 is unreadable ({reason}" in capfd.readouterr().err
    # one named step: no fallback, one line naming the folder and what to do
    with pytest.raises(CheckpointError) as err:
        load_model(Net(nnx.Rngs(9)), run, step=3)
    msg = str(err.value)
    assert f"checkpoint {run / 'checkpoints' / '3'} is unreadable ({reason}" in msg
    assert "pass another checkpoint folder" in msg and "\n" not in msg
    assert err.value.__cause__ is not None


def test_no_intact_checkpoint_says_to_delete_the_folder(run):
    for step in (1, 2, 3):
        DAMAGE["broken JSON"](run / "checkpoints" / str(step))
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    with pytest.raises(CheckpointError) as err:
        train(Net(nnx.Rngs(0)), loss_fn, loader, RUN3, OCFG, run, config=RingConfig())
    msg = str(err.value)
    assert f"no intact checkpoint in {run / 'checkpoints'}: steps 3, 2, 1 are unreadable" in msg
    assert f"delete the folder {run / 'checkpoints'} to start afresh" in msg


def test_a_checkpoint_of_another_recipe_or_architecture_is_refused(run):
    loader = ArrayLoader(data(), batch_size=16, seed=1)
    h = config_hash(config_json(RingConfig()))
    h32 = config_hash(config_json(RingConfig(hidden=32)))

    def resume(net, config, recipe):
        train(net, loss_fn, loader, RUN3, OCFG, run, config=config, recipe=recipe)

    with pytest.raises(CheckpointError, match=f"by recipe ring \\(config {h}\\), not recipe "):
        resume(Net(nnx.Rngs(0)), RingConfig(), "other")
    with pytest.raises(CheckpointError, match="by recipe ring .*not recipe other"):
        load_model(Net(nnx.Rngs(0)), run, recipe="other", config=RingConfig())
    # without a recipe name the config classes are compared
    with pytest.raises(CheckpointError, match="by recipe ring .*, not config class OtherConfig"):
        resume(Net(nnx.Rngs(0)), OtherConfig(), None)
    # the same recipe with another architecture: both hashes, never "unreadable"
    with pytest.raises(CheckpointError) as err:
        resume(Net(nnx.Rngs(0), hidden=32), RingConfig(hidden=32), "ring")
    msg = str(err.value)
    assert f"(recipe ring (config {h}))" in msg and f"recipe ring (config {h32})" in msg
    assert "architecture differs" in msg and "unreadable" not in msg
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["1", "2", "3"]
    assert not (run / "checkpoints_corrupt").exists()


def test_load_model_names_a_missing_or_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a checkpoint")
    for folder in ("missing", "empty", "other"):
        with pytest.raises(MissingFileError, match=f"{folder}.*pass the folder of a training"):
            load_model(Net(nnx.Rngs(0)), tmp_path / folder)


def test_ema_warmup_follows_the_score_sde_rule():
    """``min(decay, (1 + n) / (10 + n))`` for the n-th update (n = step + 1): the first
    update keeps 2/11 of the initial parameters; from n = 8991 on the decay is 0.999."""
    from genmodels.train.ema import ema_decay_at

    assert ema_decay_at(0.999, 0, False) == 0.999
    assert float(ema_decay_at(0.999, 0, True)) == pytest.approx(2 / 11)
    assert float(ema_decay_at(0.999, 9, True)) == pytest.approx(11 / 20)
    assert float(ema_decay_at(0.999, 100_000, True)) == pytest.approx(0.999)
    assert ema_decay_at(0.0, 5, True) == 0.0  # EMA off stays off

    # in the loop: after one step from params p0 to p1, ema = d p0 + (1 - d) p1, d = 2/11
    cfg = TrainConfig(steps=1, batch_size=16, log_every=1, progress=False, ema_warmup=True)
    net = Net(nnx.Rngs(0))
    p0 = jax.tree.map(np.asarray, nnx.state(net, nnx.Param))
    res = train(net, loss_fn, ArrayLoader(data(), batch_size=16, seed=1), cfg, OCFG, None)
    p1 = jax.tree.map(np.asarray, nnx.state(res.model, nnx.Param))
    ema = nnx.state(res.ema_model, nnx.Param)
    want = jax.tree.map(lambda a, b: 2 / 11 * a + 9 / 11 * b, p0, p1)
    for w, e in zip(jax.tree.leaves(want), jax.tree.leaves(ema)):
        np.testing.assert_allclose(np.asarray(e), w, rtol=1e-6, atol=1e-7)
