"""Recipe-level actions shared by the command line and notebooks: train, load, sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from genmodels.train.loop import load_model, train


def train_recipe(config: Any, workdir: str | Path, *, progress: bool | None = None):
    """Train a recipe config into ``workdir`` (resuming if it holds a checkpoint).

    Returns:
      The :class:`~genmodels.train.loop.TrainResult`.
    """
    method = config.build()
    tcfg = config.train
    if progress is not None:
        import dataclasses

        tcfg = dataclasses.replace(tcfg, progress=progress)
    key = jax.random.PRNGKey(tcfg.seed)
    if hasattr(method, "init_train_model"):
        # methods that start from another model's parameters and keep artefacts in the run
        # folder (BOSS straightening: the teacher's weights and boss_grids.json)
        model = method.init_train_model(key, Path(workdir))
    else:
        model = method.init_model(key)
    return train(model, method.loss_fn, method.loader(), tcfg, config.optim, workdir, config=config)


def load_recipe_model(config: Any, checkpoint: str | Path, *, ema: bool | None = None):
    """Build the recipe's method and load a checkpoint's parameters into its model.

    Args:
      ema: load the EMA parameters; ``None`` follows the recipe's ``sample_use_ema``
        (GDSS samples generic graphs and molecules with the raw parameters, as its
        reference configs say) and defaults to the EMA.
    """
    if ema is None:
        ema = bool(getattr(config, "sample_use_ema", True))
    method = config.build()
    # the parameters come from the checkpoint: build the module abstractly (no random
    # initialization, which costs a compile per parameter shape)
    model = nnx.eval_shape(lambda: method.init_model(jax.random.PRNGKey(config.train.seed)))
    model, meta = load_model(model, checkpoint, ema=ema)
    if hasattr(method, "checkpoint_dir"):
        # methods that keep sampler artefacts next to the parameters (BOSS time grids)
        method.checkpoint_dir = Path(checkpoint)
    return method, model, meta


def sample_recipe(
    config: Any,
    checkpoint: str | Path,
    *,
    num: int,
    out: str | Path,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    **options: Any,
) -> Path:
    """Load a checkpoint, draw ``num`` samples and write them to ``out``.

    The file suffix defaults to the method's (``.npz``, ``.g6``, ``.smi``, ``.cif``).

    Returns:
      The path written.
    """
    method, model, _ = load_recipe_model(config, checkpoint)
    out = Path(out)
    if out.suffix == "":
        out = out.with_suffix(method.sample_suffix)
    out.parent.mkdir(parents=True, exist_ok=True)
    kwargs = dict(options)
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    samples = method.sample(
        model, jax.random.PRNGKey(seed), num, sampler=sampler, steps=steps, **kwargs
    )
    method.write_samples(samples, out)
    # a sidecar records how the file was made (evaluate reads it, e.g. correction off)
    meta = {
        "num": num,
        "sampler": sampler,
        "steps": steps,
        "seed": seed,
        "checkpoint": str(checkpoint),
        **{k: v for k, v in options.items() if isinstance(v, bool | int | float | str)},
    }
    sidecar_path(out).write_text(json.dumps(meta, indent=1))
    return out


def export_recipe(
    config: Any, checkpoint: str | Path, dest: str | Path, *, overwrite: bool = False
) -> Path:
    """Export a training run as a pretrained model: only the parameters it samples with.

    The recipe's ``sample_use_ema`` picks the EMA or the raw parameters (as
    :func:`load_recipe_model` would); the optimizer state and the other set are dropped.

    Args:
      config: the recipe config.
      checkpoint: the training run folder (or its ``checkpoints`` folder).
      dest: the export folder, e.g. ``recipes/pretrained/<recipe>``.
      overwrite: replace an existing export.

    Returns:
      The ``checkpoints`` folder written.
    """
    from genmodels.train.export import export_model

    ema = bool(getattr(config, "sample_use_ema", True))
    method, model, meta = load_recipe_model(config, checkpoint, ema=ema)
    folder = export_model(
        model, dest, meta=meta, params="ema" if ema else "raw", overwrite=overwrite
    )
    # sampler artefacts kept next to the parameters (BOSS time grids) travel with them
    run = Path(checkpoint)
    run = run.parent if run.name == "checkpoints" else run
    for name in getattr(method, "artefacts", ()):
        if (run / name).is_file():
            shutil.copy2(run / name, Path(dest) / name)
    return folder


def sidecar_path(samples: str | Path) -> Path:
    """``samples.meta.json`` next to a sample file."""
    p = Path(samples)
    return p.with_name(p.name + ".meta.json")


def read_sidecar(samples: str | Path) -> dict | None:
    """The sidecar of a sample file, or ``None`` for files made elsewhere."""
    p = sidecar_path(samples)
    return json.loads(p.read_text()) if p.exists() else None
