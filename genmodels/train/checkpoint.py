"""Atomic, rotating checkpoints with orbax ``CheckpointManager``.

A checkpoint holds the whole training state (parameters, EMA, optimizer state, step), the
run's config and the data-iterator position as JSON. orbax writes each step into a
temporary folder and renames it when complete, so a run killed while saving leaves the
previous checkpoint intact; only the ``keep`` latest are kept.

The state is stored as its flat list of leaves and restored into the structure of a
template state, so any pytree (nnx states, optax states) round-trips exactly.

Every failure to read a checkpoint becomes a one-line
:class:`~genmodels.errors.CheckpointError` (orbax's own error is its ``__cause__``): a
:class:`CorruptCheckpointError` for an unreadable step folder (callers fall back to an
older step, see :meth:`Checkpointer.restore_intact`), a :class:`CheckpointMismatchError`
when the arrays do not fit the model (another config), and :func:`check_recipe` names
both recipes when a checkpoint was written by another one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp

from genmodels.errors import CheckpointError, MissingFileError

T = TypeVar("T")

#: tensorstore status codes in orbax's errors, and what they mean for a checkpoint
_STATUS = {
    "NOT_FOUND": "an array file is missing",
    "OUT_OF_RANGE": "an array file is cut short",
    "DATA_LOSS": "an array file is damaged",
}


class CorruptCheckpointError(CheckpointError):
    """A step folder that cannot be read (truncated or missing files, broken JSON)."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"checkpoint {path} is unreadable ({reason})")


class CheckpointMismatchError(CheckpointError):
    """An intact checkpoint whose arrays do not fit the model (another config)."""


def config_json(cfg: Any) -> Any:
    """A config (nested dataclasses) as JSON data; dataclasses carry ``__class__``."""
    if dataclasses.is_dataclass(cfg):
        return {
            "__class__": type(cfg).__qualname__,
            **{f.name: config_json(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)},
        }
    if isinstance(cfg, list | tuple):
        return [config_json(c) for c in cfg]
    if isinstance(cfg, dict):
        return {str(k): config_json(v) for k, v in cfg.items()}
    if isinstance(cfg, int | float | str | bool) or cfg is None:
        return cfg
    return repr(cfg)


def config_hash(cfg_json: Any) -> str | None:
    """First 12 hex digits of the SHA-256 of the canonical JSON of :func:`config_json`'s
    output (``None`` for no config); a stored config hashes as the live one."""
    if cfg_json is None:
        return None
    text = json.dumps(cfg_json, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _who(recipe: str | None, cfg_json: Any, digest: str | None) -> str:
    cls = cfg_json.get("__class__") if isinstance(cfg_json, dict) else None
    name = f"recipe {recipe}" if recipe else f"config class {cls or 'unknown'}"
    return f"{name} (config {digest or 'unknown'})"


def check_recipe(
    meta: dict,
    where: str | Path,
    recipe: str | None,
    cfg_json: Any,
    mismatch: CheckpointMismatchError | None = None,
) -> None:
    """Raise if the checkpoint at ``where`` belongs to another recipe or does not fit.

    The recipe names are compared when both are known, else the config classes (the
    shipped pretrained models store no recipe name). The same recipe with another config
    hash passes (sampling options change the hash) unless ``mismatch`` says the arrays
    did not fit.

    Args:
      meta: the checkpoint's metadata (``recipe``, ``config_hash``, ``config``).
      where: the folder named in the message.
      recipe: this recipe's name (``None``: unknown).
      cfg_json: this config as :func:`config_json` gives it (``None``: unknown).
      mismatch: the structure error of a restore; given, this always raises.

    Raises:
      CheckpointError: naming both recipes (or config classes) and config hashes.
    """
    theirs_cfg = meta.get("config")
    theirs_hash = meta.get("config_hash") or config_hash(theirs_cfg)
    theirs = _who(meta.get("recipe"), theirs_cfg, theirs_hash)
    ours = _who(recipe, cfg_json, config_hash(cfg_json))
    if meta.get("recipe") and recipe:
        other = meta["recipe"] != recipe
    else:
        classes = [
            c.get("__class__") if isinstance(c, dict) else None for c in (theirs_cfg, cfg_json)
        ]
        other = None not in classes and classes[0] != classes[1]
    if other:
        raise CheckpointError(
            f"checkpoint {where} was written by {theirs}, not {ours}; "
            f"pass a checkpoint of {recipe or 'this recipe'}"
        )
    if mismatch is not None:
        raise CheckpointError(
            f"checkpoint {where} ({theirs}) does not fit the model of {ours}: the "
            f"architecture differs ({mismatch}); pass a checkpoint trained with this config"
        ) from mismatch


def _orbax_noise(u) -> bool:
    """An unraisable error left by a failed orbax restore: tensorstore reads still in
    flight calling back into orbax's closed asyncio loop, or an orbax read coroutine
    finalized later with kilobytes of tensorstore spec."""
    if isinstance(u.exc_value, RuntimeError) and str(u.exc_value) == "Event loop is closed":
        return True
    code = getattr(u.object, "cr_code", None)
    return code is not None and "orbax" in code.co_filename


def _quiet_orbax_aftermath() -> None:
    """Drop (only) the stderr noise of failed restores, once per process: the
    unraisables of :func:`_orbax_noise` and asyncio's log of unretrieved tensorstore
    futures. The failure itself is raised as a one-line :class:`CheckpointError`."""
    if getattr(_quiet_orbax_aftermath, "done", False):
        return
    _quiet_orbax_aftermath.done = True
    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: None if _orbax_noise(u) else previous(u)
    logging.getLogger("asyncio").addFilter(lambda r: not _orbax_log(r))


def _orbax_log(record: logging.LogRecord) -> bool:
    """asyncio's log of a task or future of a failed orbax read never awaited."""
    if "never retrieved" not in str(record.msg):
        return False
    text = record.getMessage() + (repr(record.exc_info[1]) if record.exc_info else "")
    return "tensorstore" in text or "orbax" in text


def _one_replica(x):
    """A fully replicated array of one process as its device-0 copy (no data moves).

    orbax writes a replicated array "replica-parallel": each replica writes a slice,
    and every slice shape is a compiled XLA program (~100 programs for a GDSS state on
    8 devices). One copy writes the same bytes without compiling anything."""
    if (
        isinstance(x, jax.Array)
        and len(x.sharding.device_set) > 1
        and x.is_fully_addressable
        and x.is_fully_replicated
    ):
        return x.addressable_shards[0].data
    return x


def _leaves_dict(tree) -> dict[str, Any]:
    return {f"{i:05d}": x for i, x in enumerate(jax.tree.leaves(tree))}


def _reason(e: BaseException) -> str:
    """A few words on why orbax could not read a step folder."""
    msg = str(e).strip()
    for code, text in _STATUS.items():
        if code in msg:
            return text
    if isinstance(e, json.JSONDecodeError):
        return f"broken JSON: {e.msg}"
    line = msg.splitlines()[0] if msg else type(e).__name__
    return line if len(line) <= 100 else line[:97] + "..."


def _mismatch_detail(msg: str) -> str | None:
    """orbax's words for a structure that does not fit, shortened; ``None`` otherwise."""
    if "not compatible with the stored shape" in msg:
        return msg.split(". ")[0].strip()
    if "tree structures do not match" in msg:
        return "the arrays stored differ from the model's"
    return None


class Checkpointer:
    """Save and restore training states under ``directory``.

    Args:
      directory: folder of the checkpoints (created if missing, unless ``read_only``).
      keep: number of latest checkpoints to keep.
      async_save: write in a background thread.
      read_only: only read (loading a model for sampling or export): no folder is
        created and leftover temporary folders are left alone.
    """

    def __init__(
        self, directory: str | Path, keep: int = 3, async_save: bool = True, read_only=False
    ):
        self.directory = Path(directory).absolute()
        self._options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=not read_only,
            enable_async_checkpointing=async_save,
            # a temporary folder left by a killed save is removed when training reopens
            cleanup_tmp_directories=not read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=self._options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def step_dir(self, step: int) -> Path:
        """The folder of checkpoint ``step``."""
        return self.directory / str(step)

    def save(self, step: int, state, meta: dict[str, Any]) -> None:
        """Write ``state`` and the JSON-serializable ``meta`` at ``step`` (atomic)."""
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_leaves_dict(jax.tree.map(_one_replica, state))),
                meta=ocp.args.JsonSave(meta),
            ),
        )

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def _step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise MissingFileError(
                f"no checkpoint in {self.directory} (no step folders); pass the folder of a "
                "training run (genmodels train RECIPE --workdir DIR) or of an export"
            )
        folder = self.step_dir(step)
        if not folder.is_dir():
            raise MissingFileError(
                f"no checkpoint of step {step} in {self.directory}; steps there: "
                f"{', '.join(map(str, self.all_steps())) or 'none'}"
            )
        if not any(folder.iterdir()):
            raise CorruptCheckpointError(folder, "empty folder")
        for part in ("meta", "state"):
            if not (folder / part).is_dir():
                raise CorruptCheckpointError(folder, f"its {part}/ folder is missing")
        return step

    def restore(self, template, step: int | None = None):
        """Restore into the structure (and shardings) of ``template``.

        Returns:
          ``(state, meta)``.

        Raises:
          MissingFileError: no checkpoint in the directory.
          CorruptCheckpointError: the step folder cannot be read.
          CheckpointMismatchError: the checkpoint does not fit the template (another
            model config).
        """
        step = self._step(step)
        leaves, treedef = jax.tree.flatten(template)

        def abstract(x):
            # a leaf without a placement (an abstract model) goes to this process's first
            # device, never to the saved placement, which may name other devices or
            # processes (a checkpoint written by a multi-process run)
            sharding = getattr(x, "sharding", None) or one_device
            return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)

        one_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

        target = {f"{i:05d}": abstract(x) for i, x in enumerate(leaves)}
        stored = self._stored_count(step)
        if stored is not None and stored != len(target):
            raise CheckpointMismatchError(f"{stored} arrays stored, the model has {len(target)}")
        _quiet_orbax_aftermath()
        try:
            out = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # orbax and tensorstore raise many kinds
            if (detail := _mismatch_detail(str(e))) is not None:
                raise CheckpointMismatchError(detail) from e
            raise CorruptCheckpointError(self.step_dir(step), _reason(e)) from e
        restored = [out.state[k] for k in sorted(out.state)]
        if len(restored) != len(leaves):
            raise CheckpointMismatchError(
                f"{len(restored)} arrays stored, the model has {len(leaves)}"
            )
        return jax.tree.unflatten(treedef, restored), dict(out.meta)

    def _stored_count(self, step: int) -> int | None:
        """How many arrays the step's tree metadata lists (``None``: not readable here)."""
        try:
            tree = json.loads((self.step_dir(step) / "state" / "_METADATA").read_text())
            return len(tree["tree_metadata"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # orbax's restore tells

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """Only the JSON metadata (config, step, data position) of a checkpoint.

        Raises:
          MissingFileError: no checkpoint in the directory.
          CorruptCheckpointError: the metadata cannot be read.
        """
        step = self._step(step)
        try:
            out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            return dict(out.meta)
        except Exception as e:
            raise CorruptCheckpointError(self.step_dir(step), _reason(e)) from e

    def restore_checked(
        self,
        template,
        step: int,
        *,
        where: str | Path,
        recipe: str | None = None,
        cfg_json: Any = None,
        template_for: Callable[[dict, Any], Any] | None = None,
    ):
        """:meth:`restore` after :func:`check_recipe`; a structure mismatch names both.

        Args:
          template, step: as :meth:`restore`.
          where, recipe, cfg_json: as :func:`check_recipe`.
          template_for: ``(meta, template) -> template`` adapting the template to the
            checkpoint (e.g. the optimizer that wrote it).

        Returns:
          ``(state, meta)``.
        """
        meta = self.read_meta(step)
        check_recipe(meta, where, recipe, cfg_json)
        if template_for is not None:
            template = template_for(meta, template)
        try:
            return self.restore(template, step)
        except CheckpointMismatchError as e:
            check_recipe(meta, where, recipe, cfg_json, mismatch=e)
            raise

    def restore_intact(
        self,
        attempt: Callable[[int], T],
        *,
        action: str,
        advice: str,
        steps: Sequence[int] | None = None,
        set_aside: bool = False,
    ) -> tuple[T, int]:
        """``attempt(step)`` on the newest step first, falling back to older ones while
        the step folder is unreadable; one line on stderr says which were skipped.

        Args:
          attempt: reads one step (raises :class:`CorruptCheckpointError` if unreadable;
            any other error stops the search).
          action: what happens with the step found, for the warning ("resuming from").
          advice: what to do when no step is intact, for the error.
          steps: the steps to try (default all, newest first).
          set_aside: move unreadable steps newer than the one used to
            ``<directory>_corrupt/`` (training: the steps will be written again).

        Returns:
          ``(attempt's result, step)``.

        Raises:
          MissingFileError: no checkpoint at all.
          CheckpointError: no step is readable (names the folder and ``advice``).
        """
        steps = sorted(self.all_steps(), reverse=True) if steps is None else list(steps)
        if not steps:
            self._step(None)
        bad: list[CorruptCheckpointError] = []
        for step in steps:
            try:
                result = attempt(step)
            except CorruptCheckpointError as e:
                bad.append(e)
                continue
            if bad:
                note = f" (moved to {self._set_aside(bad)})" if set_aside else ""
                which = ", ".join(str(e.path) for e in bad)
                verb = "is" if len(bad) == 1 else "are"
                print(
                    f"warning: checkpoint {which} {verb} unreadable ({bad[0].reason}); "
                    f"{action} step {step}{note}",
                    file=sys.stderr,
                )
            return result, step
        if len(bad) == 1:
            raise CheckpointError(f"{bad[0]}; {advice}") from bad[0]
        names = ", ".join(e.path.name for e in bad)
        raise CheckpointError(
            f"no intact checkpoint in {self.directory}: steps {names} are unreadable "
            f"({bad[0].reason}, ...); {advice}"
        ) from bad[0]

    def _set_aside(self, bad: list[CorruptCheckpointError]) -> Path:
        dest = self.directory.with_name(self.directory.name + "_corrupt")
        dest.mkdir(parents=True, exist_ok=True)
        for e in bad:
            target, n = dest / e.path.name, 1
            while target.exists():
                target, n = dest / f"{e.path.name}-{n}", n + 1
            shutil.move(str(e.path), str(target))
        self.manager.reload()
        return dest

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
