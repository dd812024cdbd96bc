"""Recipe-level actions shared by the command line and notebooks: train, load, sample."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import jax
from flax import nnx

from genmodels.datasets.user import resolve_run_data, snapshot_user_data
from genmodels.train.loop import load_model, train

if TYPE_CHECKING:
    from genmodels.recipes import RecipeInfo


@runtime_checkable
class InitFromWorkdir(Protocol):
    """A method whose training starts from another model's parameters and keeps
    artefacts in the run folder (BOSS straightening: the teacher's weights, its grids)."""

    def init_train_model(self, key: jax.Array, workdir: Path | None) -> nnx.Module: ...


@runtime_checkable
class UsesCheckpointDir(Protocol):
    """A method that reads sampler artefacts next to its parameters (BOSS time grids);
    :func:`load_recipe_model` sets the folder."""

    checkpoint_dir: Path | None


@runtime_checkable
class HasArtefacts(Protocol):
    """A method whose run folder holds files that travel with an export (file names)."""

    artefacts: tuple[str, ...]


def train_recipe(
    config: Any, workdir: str | Path, *, recipe: str | None = None, progress: bool | None = None
):
    """Train a recipe config into ``workdir`` (resuming if it holds a checkpoint).

    Args:
      recipe: the recipe's name, stored with the checkpoints (loading checks it).

    Returns:
      The :class:`~genmodels.train.loop.TrainResult`.
    """
    method = config.build()  # reads the user's own files (messages name them)
    config = snapshot_user_data(config, workdir)  # the run keeps a copy: stored config
    tcfg = config.train
    if progress is not None:
        tcfg = dataclasses.replace(tcfg, progress=progress)
    key = jax.random.PRNGKey(tcfg.seed)
    if isinstance(method, InitFromWorkdir):  # its data comes from the run folder
        model = method.init_train_model(key, Path(workdir))
        loader = method.loader()
    else:  # a missing data file fails before the model is built
        loader = method.loader()
        model = method.init_model(key)
    return train(
        model, method.loss_fn, loader, tcfg, config.optim, workdir, config=config, recipe=recipe
    )


def load_recipe_model(
    config: Any, checkpoint: str | Path, *, recipe: str | None = None, ema: bool | None = None
):
    """Build the recipe's method and load a checkpoint's parameters into its model.

    Args:
      recipe: the recipe's name: a checkpoint of another recipe (or, without names, of
        another config class) or architecture raises a one-line ``CheckpointError``.
      ema: load the EMA parameters; ``None`` follows the recipe's ``sample_use_ema``
        (GDSS samples generic graphs and molecules with the raw parameters, as its
        reference configs say) and defaults to the EMA.
    """
    if ema is None:
        ema = bool(getattr(config, "sample_use_ema", True))
    method = resolve_run_data(config, checkpoint).build()
    # the parameters come from the checkpoint: build the module abstractly (no random
    # initialization, which costs a compile per parameter shape)
    model = nnx.eval_shape(lambda: method.init_model(jax.random.PRNGKey(config.train.seed)))
    model, meta = load_model(model, checkpoint, ema=ema, recipe=recipe, config=config)
    if isinstance(method, UsesCheckpointDir):
        method.checkpoint_dir = Path(checkpoint)
    return method, model, meta


def resolve_checkpoint(info: RecipeInfo, checkpoint: str | Path = "pretrained") -> Path:
    """The folder of ``checkpoint``: ``"pretrained"`` is the recipe's shipped model
    (``recipes/pretrained/<recipe>``), anything else a training run or export folder.

    Args:
      info: the recipe (:func:`genmodels.recipes.load_recipe` returns it).

    Raises:
      FileNotFoundError: the recipe ships no pretrained model, or no such folder.
    """
    if str(checkpoint) == "pretrained":
        if not info.has_pretrained:
            raise FileNotFoundError(
                f"recipe {info.name!r} ships no pretrained model (looked in "
                f"{info.pretrained_dir}); train one with `genmodels train {info.name} "
                "--workdir DIR` and pass DIR as the checkpoint"
            )
        return info.pretrained_dir
    folder = Path(checkpoint)
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder {folder} (recipe {info.name!r})")
    return folder


def load_pretrained(
    recipe: str,
    checkpoint: str | Path = "pretrained",
    *,
    overrides: dict[str, Any] | None = None,
    ema: bool | None = None,
) -> tuple[Any, Any, nnx.Module, dict]:
    """Load a recipe's model: its shipped pretrained model, a run folder, or fresh weights.

    Args:
      recipe: the recipe name.
      checkpoint: ``"pretrained"`` (the recipe's shipped folder), a training run or export
        folder, or ``"init"`` (fresh parameters from ``init_model(PRNGKey(0))``).
      overrides: config fields replaced before building (``dataclasses.replace``).
      ema: as :func:`load_recipe_model`.

    Returns:
      ``(config, method, model, meta)``; ``meta`` is the checkpoint's record (empty for
      ``"init"``).

    Raises:
      RecipeError: unknown recipe.
      FileNotFoundError: no pretrained model shipped, or no such checkpoint folder.
    """
    from genmodels.recipes import load_recipe

    config, info = load_recipe(recipe)
    if overrides:
        config = dataclasses.replace(config, **overrides)
    if str(checkpoint) == "init":
        method = config.build()
        return config, method, nnx.jit(method.init_model)(jax.random.PRNGKey(0)), {}
    folder = resolve_checkpoint(info, checkpoint)
    method, model, meta = load_recipe_model(config, folder, recipe=recipe, ema=ema)
    return config, method, model, meta


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
    recipe: str | None = None,
    **options: Any,
) -> Path:
    """Load a checkpoint, draw ``num`` samples and write them to ``out``.

    The file suffix defaults to the method's (``.npz``, ``.g6``, ``.smi``, ``.cif``);
    ``recipe`` is checked against the checkpoint's (see :func:`load_recipe_model`).

    Returns:
      The path written.
    """
    method, model, _ = load_recipe_model(config, checkpoint, recipe=recipe)
    out = Path(out)
    if out.suffix == "":
        out = out.with_suffix(method.sample_suffix)
    out.parent.mkdir(parents=True, exist_ok=True)
    kwargs = dict(options)
    # one round of ``num`` when fewer than a batch are asked for (not a full batch)
    kwargs["batch_size"] = batch_size or min(num, getattr(config, "sample_batch", num))
    samples = method.sample(
        model, jax.random.PRNGKey(seed), num, sampler=sampler, steps=steps, **kwargs
    )
    if jax.process_index() > 0:  # several processes: process 0 writes the file
        return out
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
    config: Any, checkpoint: str | Path, dest: str | Path, *, overwrite=False, recipe=None
) -> Path:
    """Export a training run as a pretrained model: only the parameters it samples with.

    The recipe's ``sample_use_ema`` picks the EMA or the raw parameters (as
    :func:`load_recipe_model` would); the optimizer state and the other set are dropped.

    Args:
      config: the recipe config.
      checkpoint: the training run folder (or its ``checkpoints`` folder).
      dest: the export folder, e.g. ``recipes/pretrained/<recipe>``.
      overwrite: replace an existing export.
      recipe: checked as in :func:`load_recipe_model`; the export keeps the run's
        recipe name and config hash (this name where the run has none).

    Returns:
      The ``checkpoints`` folder written.
    """
    from genmodels.train.export import export_model

    ema = bool(getattr(config, "sample_use_ema", True))
    method, model, meta = load_recipe_model(config, checkpoint, recipe=recipe, ema=ema)
    meta = dict(meta, recipe=meta.get("recipe") or recipe)
    folder = export_model(
        model, dest, meta=meta, params="ema" if ema else "raw", overwrite=overwrite
    )
    # sampler artefacts kept next to the parameters (BOSS time grids) travel with them
    run = Path(checkpoint)
    run = run.parent if run.name == "checkpoints" else run
    for name in method.artefacts if isinstance(method, HasArtefacts) else ():
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
