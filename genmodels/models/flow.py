"""Rectified flow / flow matching (+ BOSS grids) on any continuous task.

The path, target and loss are :class:`~genmodels.processes.flow.LinearFlow`'s (``t = 0``
data, ``t = 1`` noise; ``x_t = (1 - t) x_0 + t eps``, ``v = eps - x_0``; Liu et al. 2023,
Lipman et al. 2023); samples solve ``dx/dt = v_theta(x, t)`` from ``t = 1`` to 0.

Networks (by config type): on images the EDM / DDPM++ UNet fed the label
``time_scale * t`` (999: the rectified-flow code calls its DDPM++ network as
``model(z_t, t * 999)``) and, for a class-conditional recipe, the class (classifier-free
guidance, :mod:`genmodels.samplers.guidance`); on GDSS's graph state GDSS's two networks
with ``t`` as an extra node channel (:class:`~genmodels.nets.graph.GraphFieldNet`).

Samplers (registry kind ``flow``): ``euler`` on the uniform grid (``K`` NFE), ``heun``
(diffrax, ``2 K`` NFE), ``ode`` (diffrax, adaptive unless ``--steps``), and ``boss``: Euler
on a Bellman-optimal grid of ``K`` steps (Nguyen et al., ICLR 2024;
:mod:`genmodels.samplers.boss`) from ``boss_grids.json`` in the checkpoint folder (made by
``genmodels boss-grids RECIPE --checkpoint DIR``), the config's ``boss_grids`` path, or
``grid=``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array, Context, State
from genmodels.errors import MissingFileError
from genmodels.models.continuous import ContinuousMethod
from genmodels.models.graph_continuous import GraphTaskConfig
from genmodels.models.runner import split_model
from genmodels.models.tasks.images import ImageTaskConfig
from genmodels.nets.graph import GraphFieldNet
from genmodels.nets.unet import UNetConfig
from genmodels.processes.flow import LinearFlow
from genmodels.samplers.boss import (
    BOSS_GRIDS_FILE,
    FlowProblem,
    check_grid,
    find_boss_grids,
    read_boss_grids,
)
from genmodels.samplers.guidance import one_hot_condition

__all__ = ["FlowImageConfig", "FlowImageNet", "FlowMethod", "FlowSettings", "GraphFlowConfig"]


@dataclass(frozen=True)
class FlowSettings:
    """The flow-matching fields of a recipe.

    Attributes:
      t_eps: smallest training time (``t ~ U(t_eps, 1)``; rectified flow: 1e-3).
      ot_coupling: minibatch-OT pairing of noise and data (Tong et al. 2024); off in
        rectified flow.
      boss_grids: explicit path of a BOSS grid file (default: ``boss_grids.json`` in the
        checkpoint folder sampled from).
    """

    t_eps: float = 1e-3
    ot_coupling: bool = False
    boss_grids: str | None = None

    def process(self) -> LinearFlow:
        return LinearFlow(ot_coupling=self.ot_coupling, t_eps=self.t_eps)

    def build(self) -> FlowMethod:
        return FlowMethod(self)


@dataclass(frozen=True)
class FlowImageConfig(ImageTaskConfig, FlowSettings):
    """Flow matching on images: :class:`ImageTaskConfig` and :class:`FlowSettings` fields
    plus ``time_scale`` (the UNet's noise label is ``time_scale * t``)."""

    sampler: str = "euler"
    sample_steps: int = 100
    time_scale: float = 999.0

    def make_net(self, process: LinearFlow, rngs: nnx.Rngs) -> FlowImageNet:
        del process
        return FlowImageNet(self.net, self.time_scale, rngs=rngs)


@dataclass(frozen=True)
class GraphFlowConfig(GraphTaskConfig, FlowSettings):
    """Flow matching on GDSS's graph state: :class:`GraphTaskConfig` and
    :class:`FlowSettings` fields."""

    sampler: str = "euler"
    sample_steps: int = 50

    def make_net(self, process: LinearFlow, rngs: nnx.Rngs) -> GraphFieldNet:
        del process
        return GraphFieldNet(self.graph_net, self.time_input, rngs=rngs)


class FlowImageNet(nnx.Module):
    """``(state, t, ctx) -> {"image": v}``: the UNet as a velocity field.

    Args:
      net: UNet sizes.
      time_scale: noise label ``time_scale * t``.
      rngs: parameter RNGs.
    """

    def __init__(self, net: UNetConfig, time_scale: float = 999.0, *, rngs: nnx.Rngs):
        self.unet = net.make(rngs)
        self.time_scale = float(time_scale)

    def __call__(
        self, state: State, t: Array, ctx: Context | None = None, *, train=False, rngs=None
    ) -> State:
        label = self.time_scale * jnp.asarray(t, jnp.float32)  # [B]
        y = one_hot_condition(ctx, self.unet.config.label_dim)  # [B, classes] or None
        return {"image": self.unet(state["image"], label, y, train=train, rngs=rngs)}


class FlowMethod(ContinuousMethod):
    """Flow matching on the task of its config (module docstring; the composition is
    :class:`~genmodels.models.continuous.ContinuousMethod`'s).

    Attributes:
      checkpoint_dir: the folder the parameters were loaded from (set by
        :func:`genmodels.models.run.load_recipe_model`): BOSS grids are read there.
    """

    #: files of a training run that ``genmodels export`` carries along
    artefacts = (BOSS_GRIDS_FILE,)

    def __init__(self, config: FlowImageConfig | GraphFlowConfig):
        super().__init__(config, config.process())
        self.checkpoint_dir: Path | None = None

    def sampler_inputs(self, entry: Any, steps: int | None, options: dict) -> int | None:
        """A sampler on a given time grid (``boss``) gets ``options["grid"]``: the one
        passed, else the stored grid of :meth:`boss_grid`; the steps are the grid's."""
        if "grid" not in {f.name for f in dataclasses.fields(entry.options)}:
            return steps
        grid = options.get("grid")
        grid = self.boss_grid(steps) if grid is None else check_grid(grid)
        if steps is not None and int(steps) != len(grid) - 1:
            raise ValueError(f"a grid of {len(grid) - 1} steps was given with steps={steps}")
        options["grid"] = tuple(float(t) for t in grid)
        return len(grid) - 1

    def boss_grid(self, steps: int | None) -> Any:
        """The stored BOSS grid for ``steps`` steps (``None``: the config's
        ``sample_steps`` when the file has it, else the file's only grid), from the
        config's ``boss_grids`` file or ``boss_grids.json`` in :attr:`checkpoint_dir`.

        Returns:
          float32 [K + 1] times from 1 to 0.

        Raises:
          MissingFileError: no grid file (the message gives the command that makes one).
          ValueError: the file has no grid for ``steps``.
        """
        c = self.config
        path = Path(c.boss_grids) if c.boss_grids else find_boss_grids(self.checkpoint_dir)
        if path is None or not path.exists():
            folder = self.checkpoint_dir or "DIR"
            raise MissingFileError(
                f"the boss sampler needs {BOSS_GRIDS_FILE} (Bellman-optimal time grids), none at "
                f"{c.boss_grids or Path(folder) / BOSS_GRIDS_FILE}; run `genmodels boss-grids "
                f"RECIPE --checkpoint {folder}`, set --config.boss-grids FILE, or use euler / heun"
            )
        grids = read_boss_grids(path)
        if steps is None:
            only = next(iter(grids)) if len(grids) == 1 else None
            steps = c.sample_steps if c.sample_steps in grids else only
            if steps is None:
                raise ValueError(f"{path} holds BOSS grids for K in {sorted(grids)}; pick --steps")
        if int(steps) not in grids:
            raise ValueError(
                f"{path} has no BOSS grid for {steps} steps; it has K in {sorted(grids)}"
            )
        return grids[int(steps)]

    def boss_problem(self, model: nnx.Module) -> FlowProblem:
        """The model as a :class:`~genmodels.samplers.boss.FlowProblem` (BOSS grids and
        straightening data): each batch draws the task's context and prior as a sampling
        round does."""
        graphdef, params, rest = split_model(model)
        task = self.task

        def setup(key: Array, batch: int):
            ctx, k = task.sample_context(key, batch)
            return ctx, k, task.shapes(batch)

        return FlowProblem(
            lambda p: nnx.merge(graphdef, p, rest), params, self.processes, setup, task.constrain
        )
