"""One training loop for any model that exposes a loss.

``train(model, loss_fn, loader, train_cfg, optim_cfg, workdir)`` runs
``loss_fn(model, batch, key) -> (loss, metrics)`` under ``jax.jit`` with an optax
optimizer, a parameter EMA, rotating atomic checkpoints (exact resume: the data position
is the step, the per-step key is ``fold_in(seed_key, step)``; the newest intact one is
resumed; Ctrl-C saves the last step), a JSONL log, a tqdm bar and a non-finite-loss
guard. With several devices the batch is sharded over a ``"data"`` mesh axis and the
state is replicated (see :mod:`genmodels.train.sharding`).
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from tqdm.auto import tqdm

from genmodels.errors import MissingFileError, TrainingInterrupted
from genmodels.train.checkpoint import Checkpointer, config_hash
from genmodels.train.checkpoint import config_json as _config_json
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import Loader, local_batch
from genmodels.train.ema import ema_decay_at, ema_update
from genmodels.train.export import EXPORT_KEY
from genmodels.train.logging import MetricsLogger
from genmodels.train.optim import make_optimizer
from genmodels.train.sharding import (
    data_mesh,
    global_batch_from_local,
    process_rows,
    put_replicated,
    shard_batch,
    to_host,
)

LossFn = Callable[[nnx.Module, dict, jax.Array], tuple[jax.Array, dict]]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf; training stopped without writing the bad state."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
      model: the module with the final raw parameters.
      ema_model: the module with the EMA parameters (use it to sample).
      step: the last completed step.
      state: the raw train-state pytree (params, ema, opt, rest).
    """

    model: nnx.Module
    ema_model: nnx.Module
    step: int
    state: dict


def _copy(x):
    # abstract leaves (a model built with nnx.eval_shape to be filled from a checkpoint)
    return x if isinstance(x, jax.ShapeDtypeStruct) else jnp.copy(x)


def _opt_init(tx, params):
    if any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(params)):
        return jax.eval_shape(tx.init, params)
    return tx.init(params)


def init_state(model: nnx.Module, tx: optax.GradientTransformation):
    """Split ``model`` into (graphdef, train state) with params, EMA and optimizer state."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = {
        "params": params,
        "ema": jax.tree.map(_copy, params),
        "opt": _opt_init(tx, params),
        "rest": rest,
        # first step whose loss was not finite (-1: none), kept on device so the check
        # costs no host round trip per step
        "bad_step": jnp.asarray(-1, jnp.int32),
    }
    return graphdef, state


def make_train_step(
    graphdef, loss_fn: LossFn, tx, ema_decay: float, base_key: jax.Array, ema_warmup: bool = False
):
    """The pure per-step update ``(state, batch, step) -> (state, metrics)``."""

    def step_fn(state, batch, step):
        key = jax.random.fold_in(base_key, step)

        def objective(params):
            model = nnx.merge(graphdef, params, state["rest"])
            loss, metrics = loss_fn(model, batch, key)
            return loss, metrics

        (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(state["params"])
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        finite = jnp.isfinite(loss)
        bad = jnp.where((state["bad_step"] < 0) & ~finite, step, state["bad_step"])
        new = {
            "params": params,
            "ema": ema_update(state["ema"], params, ema_decay_at(ema_decay, step, ema_warmup)),
            "opt": opt,
            "rest": state["rest"],
            "bad_step": bad.astype(jnp.int32),
        }
        out = {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}
        return new, out

    return step_fn


def _catch_sigint(seen: list[int]) -> Callable[[], None]:
    """Install a SIGINT handler that records the signal in ``seen``; the training loop
    stops at the end of the current step on it. A second Ctrl-C raises KeyboardInterrupt
    at once. (Raising on the first one lands wherever the main thread is: in a gc callback
    or orbax's wait for a checkpoint write, Python or orbax would swallow it and print a
    traceback.) Returns the function that puts the previous handler back (nothing is
    installed off the main thread, where Python forbids it)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        seen.append(signum)
        if len(seen) > 1:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    if previous is None:  # installed outside Python: Python's default is the nearest
        previous = signal.default_int_handler
    return lambda: signal.signal(signal.SIGINT, previous)


def _batch_devices(batch_size: int) -> list:
    """The devices a batch of ``batch_size`` splits evenly over: all of them, or (with a
    warning) the largest count that divides the batch size (4 of 8 devices for 12)."""
    devs = jax.devices()
    if jax.process_count() > 1 and batch_size % len(devs):  # every process's devices
        raise ValueError(
            f"--train.batch-size {batch_size} is not a multiple of the {len(devs)} devices of "
            f"the {jax.process_count()} processes; choose a multiple of {len(devs)}"
        )
    n = math.gcd(batch_size, len(devs))
    if n < len(devs):
        warnings.warn(
            f"--train.batch-size {batch_size} is not a multiple of the {len(devs)} devices; "
            f"training on {n} of them (choose a multiple of {len(devs)} to use all)",
            stacklevel=3,
        )
    return devs[:n]


def train(
    model: nnx.Module,
    loss_fn: LossFn,
    loader: Loader,
    train_cfg: TrainConfig,
    optim_cfg: OptimConfig,
    workdir: str | Path | None = None,
    *,
    config: Any = None,
    recipe: str | None = None,
    devices: Sequence[jax.Device] | None = None,
    hooks: Sequence[Callable[[int, dict], None]] = (),
) -> TrainResult:
    """Train ``model`` on ``loss_fn`` and return the final and EMA models.

    Resuming uses the newest intact checkpoint: unreadable newer step folders are moved
    to ``checkpoints_corrupt/`` with a warning on stderr. ``metrics.jsonl`` loses the rows
    after the resumed step, so each step is logged once. Ctrl-C checkpoints the last
    completed step and raises :class:`~genmodels.errors.TrainingInterrupted`.

    Args:
      model: an initialized ``nnx.Module`` (its parameters are the starting point unless
        ``workdir`` holds a checkpoint, which is then resumed).
      loss_fn: ``(model, batch, key) -> (scalar loss, dict of scalar metrics)``.
      loader: ``batch(step) -> dict of host arrays`` (the position is the step).
      train_cfg: steps, batch size, EMA, logging, checkpointing.
      optim_cfg: optimizer and schedule.
      workdir: run folder with ``checkpoints/`` and ``metrics.jsonl`` (``None``: in memory).
      config: the recipe config, stored with every checkpoint (with its hash).
      recipe: the recipe's name, stored with every checkpoint; resuming a checkpoint of
        another recipe (or config class) is refused.
      devices: devices of the data-parallel mesh (default all local devices).
      hooks: called as ``hook(step, metrics)`` after each logged step (tests use it).

    Returns:
      A :class:`TrainResult`.

    Raises:
      NonFiniteLossError: the loss became NaN/Inf; the last good checkpoint is kept.
      TrainingInterrupted: Ctrl-C; the last completed step is checkpointed first.
      CheckpointError: no intact checkpoint, or one of another recipe or architecture.
    """
    tx, sched = make_optimizer(optim_cfg, train_cfg.steps)
    graphdef, state = init_state(model, tx)
    mesh = data_mesh(devices if devices is not None else _batch_devices(train_cfg.batch_size))
    state = put_replicated(state, mesh)
    lead = jax.process_index() == 0  # logs, progress bar
    multi = jax.process_count() > 1
    base_key = jax.random.PRNGKey(train_cfg.seed)

    ckpt = None
    start = 0
    t_offset = 0.0  # training seconds spent before this process (read from the checkpoint)
    cfg_json = _config_json(config)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        ckpt = Checkpointer(
            Path(workdir) / "checkpoints",
            keep=train_cfg.keep_checkpoints,
            async_save=train_cfg.async_checkpointing,
        )
        if ckpt.all_steps():
            template = state
            (state, meta), start = ckpt.restore_intact(
                lambda s: ckpt.restore_checked(
                    template, s, where=ckpt.directory, recipe=recipe, cfg_json=cfg_json
                ),
                action="resuming from",
                advice=f"delete the folder {ckpt.directory} to start afresh",
                set_aside=True,
            )
            t_offset = float(meta.get("elapsed_s", 0.0))
    logger = MetricsLogger(workdir if lead else None, tensorboard=train_cfg.tensorboard)
    logger.drop_after(start)  # rows logged after the checkpoint by a killed run

    step_fn = jax.jit(
        make_train_step(graphdef, loss_fn, tx, train_cfg.ema_decay, base_key, train_cfg.ema_warmup),
        donate_argnums=(0,),
    )
    meta_base = {
        "recipe": recipe,
        "config_hash": config_hash(cfg_json),
        "config": cfg_json,
        "train": _config_json(train_cfg),
        "optim": _config_json(optim_cfg),
    }

    def check_finite(step_now: int, last_good: int | None):
        bad = int(to_host(state["bad_step"]))
        if bad >= 0:
            where = (
                f"{workdir}/checkpoints (step {last_good})"
                if last_good is not None
                else "none written"
            )
            raise NonFiniteLossError(
                f"loss became NaN/Inf at step {bad} (checked at step {step_now}); training "
                f"stopped and the bad state was not saved. Last good checkpoint: {where}. "
                "Lower the learning rate, tighten gradient clipping or check the data."
            )

    def save(step_done: int):
        check_finite(step_done, ckpt.latest_step())
        meta = dict(meta_base, step=step_done, data_position=step_done)
        meta["elapsed_s"] = t_offset + time.perf_counter() - t_start
        ckpt.save(step_done, state, meta)

    bar = tqdm(
        total=train_cfg.steps,
        initial=start,
        disable=not (train_cfg.progress and lead),
        desc="train",
        unit="step",
        dynamic_ncols=True,
        # redraw less often when the output is a log file rather than a terminal
        mininterval=0.2 if sys.stderr.isatty() else 15.0,
    )

    def save_on_interrupt(done: int) -> int | None:
        """Checkpoint step ``done`` if newer than the latest and the state is intact (its
        buffers are donated to a step that did not return); the latest step after."""
        try:
            intact = not any(x.is_deleted() for x in jax.tree.leaves(state))
            if intact and done > (ckpt.latest_step() or 0):
                save(done)
            ckpt.wait()
        except (Exception, KeyboardInterrupt):
            pass  # a failed save keeps the previous checkpoint
        return ckpt.latest_step()

    rows = process_rows(train_cfg.batch_size, mesh) if multi else None  # rows of each batch
    t_last, s_last = time.perf_counter(), start
    t_start = t_last
    metrics = {}
    completed = start
    # Ctrl-C is also remembered: a KeyboardInterrupt raised while Python runs a gc callback
    # (jax's frees buffers in one) is swallowed, and training would go on
    sigint: list[int] = []
    restore_sigint = _catch_sigint(sigint)
    try:
        for step in range(start, train_cfg.steps):
            if sigint:
                raise KeyboardInterrupt
            if multi:  # each process reads its rows of the global batch
                batch = global_batch_from_local(local_batch(loader, step, rows), mesh)
            else:
                batch = shard_batch(loader.batch(step), mesh)
            # one assignment (no interrupt check between its stores): ``state`` and
            # ``completed`` always agree when Ctrl-C lands
            state, metrics, completed = (
                *step_fn(state, batch, jnp.asarray(step, jnp.int32)),
                step + 1,
            )
            done = completed
            bar.update(1)
            if done % train_cfg.log_every == 0 or done == train_cfg.steps:
                host = {k: float(to_host(v)) for k, v in metrics.items()}
                now = time.perf_counter()
                host["steps_per_sec"] = (done - s_last) / max(now - t_last, 1e-9)
                host["lr"] = float(sched(step))
                # cumulative over resumes: the training wall time of the run so far
                host["elapsed_s"] = t_offset + now - t_start
                t_last, s_last = now, done
                bar.set_postfix(loss=f"{host['loss']:.4g}")
                check_finite(done, ckpt.latest_step() if ckpt else None)
                logger.log(done, host)
                for h in hooks:
                    h(done, host)
            if ckpt is not None and (done % train_cfg.ckpt_every == 0 or done == train_cfg.steps):
                save(done)
        check_finite(train_cfg.steps, ckpt.latest_step() if ckpt else None)
    except KeyboardInterrupt as e:
        saved = None if ckpt is None else save_on_interrupt(completed)
        raise TrainingInterrupted(
            completed, saved, None if workdir is None else str(workdir)
        ) from e
    finally:
        restore_sigint()
        bar.close()
        logger.close()
        if ckpt is not None:
            ckpt.close()

    final_step = max(start, train_cfg.steps)
    return TrainResult(
        model=nnx.merge(graphdef, state["params"], state["rest"]),
        ema_model=nnx.merge(graphdef, state["ema"], state["rest"]),
        step=final_step,
        state=state,
    )


def load_model(
    model: nnx.Module,
    workdir: str | Path,
    *,
    ema: bool = True,
    step: int | None = None,
    recipe: str | None = None,
    config: Any = None,
) -> tuple[nnx.Module, dict]:
    """Load the parameters of a checkpoint into a model of the same architecture.

    Without ``step``, a run folder whose newest step is unreadable falls back to the
    newest intact one (with a warning on stderr).

    Args:
      model: a freshly built module of the recipe's architecture (its values are replaced).
      workdir: the run folder given to :func:`train` (or its ``checkpoints`` folder).
      ema: load the EMA parameters (the default, used for sampling) or the raw ones. An
        exported model (:func:`~genmodels.train.export.export_model`) has only one set,
        which is loaded whatever ``ema`` says.
      step: a specific checkpoint step (default: the latest).
      recipe, config: this recipe's name and config; a checkpoint of another recipe or
        config class is refused (see :func:`~genmodels.train.checkpoint.check_recipe`).

    Returns:
      ``(model, meta)`` with ``meta`` holding the stored config, step and data position.

    Raises:
      MissingFileError: no such folder, or no checkpoint in it.
      CheckpointError: unreadable, or written by another recipe or architecture.
    """
    d = Path(workdir)
    if (d / "checkpoints").is_dir():
        d = d / "checkpoints"
    if not d.is_dir():
        raise MissingFileError(
            f"no checkpoint folder at {workdir}; pass the folder of a training run "
            "(genmodels train RECIPE --workdir DIR) or of an export"
        )
    tx, _ = make_optimizer(OptimConfig(), 1)
    graphdef, template = init_state(model, tx)
    ckpt = Checkpointer(d, read_only=True)
    cfg_json = _config_json(config)
    try:
        (state, meta), _ = ckpt.restore_intact(
            lambda s: ckpt.restore_checked(
                template, s, where=workdir, recipe=recipe, cfg_json=cfg_json,
                template_for=_template_for,
            ),
            action="loading",
            advice="pass another checkpoint folder, or train or export this one again",
            steps=None if step is None else [step],
        )  # fmt: skip
    finally:
        ckpt.close()
    if EXPORT_KEY not in meta:
        state = dict(state, params=state["ema"] if ema else state["params"])
    return nnx.merge(graphdef, state["params"], state["rest"]), meta


def _template_for(meta: dict, template: dict) -> dict:
    """The template of the checkpoint described by ``meta``: the parameters only for an
    export, else with the state of the optimizer chain that wrote it."""
    if EXPORT_KEY in meta:
        # an exported model holds one parameter set: the one its recipe samples with
        return {"params": template["params"], "rest": template["rest"]}
    optim = meta.get("optim") or {}
    fields = {f.name for f in dataclasses.fields(OptimConfig)}
    cfg = OptimConfig(
        **{k: (tuple(v) if isinstance(v, list) else v) for k, v in optim.items() if k in fields}
    )
    tx, _ = make_optimizer(cfg, int(meta.get("train", {}).get("steps", 1) or 1))
    return dict(template, opt=_opt_init(tx, template["params"]))
