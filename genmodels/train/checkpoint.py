"""Atomic, rotating checkpoints with orbax ``CheckpointManager``.

A checkpoint holds the whole training state (parameters, EMA, optimizer state, step), the
run's config and the data-iterator position as JSON. orbax writes each step into a
temporary folder and renames it when complete, so a run killed while saving leaves the
previous checkpoint intact; only the ``keep`` latest are kept.

The state is stored as its flat list of leaves and restored into the structure of a
template state, so any pytree (nnx states, optax states) round-trips exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _leaves_dict(tree) -> dict[str, Any]:
    return {f"{i:05d}": x for i, x in enumerate(jax.tree.leaves(tree))}


class Checkpointer:
    """Save and restore training states under ``directory``.

    Args:
      directory: folder of the checkpoints (created if missing).
      keep: number of latest checkpoints to keep.
      async_save: write in a background thread.
    """

    def __init__(self, directory: str | Path, keep: int = 3, async_save: bool = True):
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save
            ),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, meta: dict[str, Any]) -> None:
        """Write ``state`` and the JSON-serializable ``meta`` at ``step`` (atomic)."""
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_leaves_dict(state)),
                meta=ocp.args.JsonSave(meta),
            ),
        )

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def restore(self, template, step: int | None = None):
        """Restore into the structure (and shardings) of ``template``.

        Returns:
          ``(state, meta)``.

        Raises:
          FileNotFoundError: no checkpoint in the directory.
          ValueError: the checkpoint does not fit the template (another model config).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        leaves, treedef = jax.tree.flatten(template)

        def abstract(x):
            sharding = getattr(x, "sharding", None)
            return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)

        target = {f"{i:05d}": abstract(x) for i, x in enumerate(leaves)}
        try:
            out = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
                ),
            )
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"checkpoint {self.directory}/{step} does not match this model/config: {e}"
            ) from e
        restored = [out.state[k] for k in sorted(out.state)]
        if len(restored) != len(leaves):
            raise ValueError(
                f"checkpoint {self.directory}/{step} has {len(restored)} arrays, the model "
                f"expects {len(leaves)}: was it written with another config?"
            )
        return jax.tree.unflatten(treedef, restored), dict(out.meta)

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """Only the JSON metadata (config, step, data position) of a checkpoint."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out.meta)

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
