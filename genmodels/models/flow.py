"""Rectified flow / flow matching on images, with Euler, Heun and BOSS samplers.

Time convention (the package's, :mod:`genmodels.processes.flow`): ``t = 0`` is data and
``t = 1`` is noise. A clean image ``x_0`` (pixels in [-1, 1],
:mod:`genmodels.domains.images`) and ``eps ~ N(0, I)`` give the straight path

    x_t = (1 - t) x_0 + t eps,        v = dx_t / dt = eps - x_0

(Liu et al. 2023, "Flow straight and fast", eq. 1 with their time reversed; Lipman et
al. 2023, conditional OT path with sigma_min = 0). The network ``v_theta(x_t, t)`` is
trained with the flow-matching loss ``E_t E || v_theta(x_t, t) - (eps - x_0) ||^2``
(mean over pixels, ``t ~ U(1e-3, 1)``: :class:`~genmodels.processes.flow.LinearFlow`), and
samples solve ``dx/dt = v_theta(x, t)`` from ``x_1 ~ N(0, I)`` down to ``t = 0``.

Network: the EDM / DDPM++ UNet (:mod:`genmodels.nets.unet`) with its noise-level
embedding fed ``time_scale * t`` (default 999). The positional embedding of DDPM++ has
frequencies ``10000^(-k / (C/2))``, made for DDPM's integer step labels 0..999; the
rectified-flow code calls the same network as ``model(z_t, t * 999)``
(gnobitab/RectifiedFlow ``losses.py``), so ``t`` in [0, 1] spans the same embedding range
(with ``t`` itself, every feature but the fastest few would be nearly constant). Their
``t`` runs the other way (1 = data); the label direction does not matter for a network
trained from scratch, and here larger labels mean more noise, as in DDPM.

Samplers (``sample(..., sampler=NAME, steps=K)``):

- ``euler``: ``K`` Euler steps on the uniform grid ``1, 1 - 1/K, ..., 0`` (``K`` NFE;
  the velocity is never evaluated at ``t = 0``): the rectified-flow Euler sampler.
- ``heun``: Heun's second-order method (``diffrax.Heun``) on the same uniform grid,
  ``2 K`` NFE (the last corrector evaluates at ``t = 0``).
- ``boss``: Euler on a stored Bellman-optimal grid of ``K`` steps (Nguyen et al. 2024,
  :mod:`genmodels.samplers.boss`), read from ``boss_grids.json`` in the checkpoint (or
  pretrained) folder, or from the config's ``boss_grids`` path, or passed as
  ``grid=`` to :meth:`FlowImages.sample`. File format: :func:`write_boss_grids`.

For the BOSS driver (cost matrix, dynamic program, straightening fine-tuning),
:func:`velocity_fn` exposes the network as a plain ``(x, t) -> v`` function in this
time convention.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.core.grids import uniform_grid
from genmodels.core.types import Array, Context, FieldFn, State
from genmodels.domains.images import constrain
from genmodels.models.image_base import ImageMethod, ImageMethodConfig
from genmodels.nets.unet import UNetConfig
from genmodels.processes.base import corrupt_state, loss_state
from genmodels.processes.flow import LinearFlow
from genmodels.samplers.ode import euler_sample, probability_flow_sample

__all__ = [
    "BOSS_GRIDS_FILE",
    "SAMPLERS",
    "FlowImageConfig",
    "FlowImageNet",
    "FlowImages",
    "field_fn",
    "find_boss_grids",
    "read_boss_grids",
    "velocity_fn",
    "write_boss_grids",
]

#: sampler names; the first is the default
SAMPLERS = ("euler", "heun", "boss")
#: name of the BOSS grid file next to a checkpoint
BOSS_GRIDS_FILE = "boss_grids.json"
#: the time convention written into (and checked in) BOSS grid files
TIME_CONVENTION = "t=1 noise (prior), t=0 data; times decrease along a grid"


@dataclass(frozen=True)
class FlowImageConfig(ImageMethodConfig):
    """A rectified-flow / flow-matching image recipe (fields of :class:`ImageMethodConfig`
    plus the ones below).

    Attributes:
      sampler: default sampler, ``euler``, ``heun`` or ``boss``.
      sample_steps: default number of steps (NFE: ``K`` for euler and boss, ``2 K``
        for heun).
      t_eps: smallest training time (``t ~ U(t_eps, 1)``; rectified flow: 1e-3).
      ot_coupling: minibatch-OT pairing of noise and images (Tong et al. 2024); off in
        rectified flow.
      time_scale: the UNet's noise label is ``time_scale * t`` (module docstring).
      boss_grids: explicit path of a BOSS grid file (default: ``boss_grids.json`` in
        the checkpoint folder sampled from).
    """

    sampler: str = "euler"
    sample_steps: int = 100
    t_eps: float = 1e-3
    ot_coupling: bool = False
    time_scale: float = 999.0
    boss_grids: str | None = None

    def build(self) -> FlowImages:
        return FlowImages(self)


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
        self,
        state: State,
        t: Array,
        ctx: Context | None = None,
        *,
        train: bool = False,
        rngs: nnx.Rngs | Array | None = None,
    ) -> State:
        """Args:
          state: ``{"image": [B, H, W, C]}``.
          t: [B] times in [0, 1] (1 = noise).
          ctx: unused (images have no context).
          train: dropout on.
          rngs: dropout randomness when training.

        Returns:
          ``{"image": [B, H, W, C]}`` velocity ``dx/dt``.
        """
        del ctx
        label = self.time_scale * jnp.asarray(t, jnp.float32)  # [B]
        return {"image": self.unet(state["image"], label, train=train, rngs=rngs)}


def velocity_fn(model: FlowImageNet) -> Callable[[Array, Array], Array]:
    """The model as a plain velocity function ``v(x, t)`` (for the BOSS driver).

    Time convention: ``t = 1`` is noise (the prior N(0, I)), ``t = 0`` is data;
    ``x_t = (1 - t) x_0 + t eps`` and ``v = dx_t/dt = eps - x_0``, so an Euler step from
    ``t_k`` to ``t_{k+1} < t_k`` is ``x + (t_{k+1} - t_k) v(x, t_k)``. (BOSS's repository
    uses ``t' = 1 - t``, data at ``t' = 1``; its velocity is ``-v``.)

    Evaluation is deterministic (no dropout). Inside ``jax.jit``, rebuild the model from
    its parts (``nnx.merge(graphdef, params, rest)``, see
    :func:`genmodels.models.base.split_model`) and call this on the merged module, so the
    parameters are traced arguments rather than constants.

    Args:
      model: a :class:`FlowImageNet`.

    Returns:
      ``fn(x [B, H, W, C], t [B]) -> v [B, H, W, C]``.
    """

    def fn(x: Array, t: Array) -> Array:
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32).reshape(-1), x.shape[:1])
        return model({"image": x}, t, {})["image"]

    return fn


def field_fn(model: FlowImageNet) -> FieldFn:
    """The model as a sampler field ``(state, t [B], ctx) -> {"image": v}``."""
    return lambda state, t, ctx: model(state, t, ctx)


# ------------------------------------------------------------------ BOSS grid files


def write_boss_grids(path: str | Path, grids: Mapping[int, Any], **meta: Any) -> Path:
    """Write BOSS time grids as JSON (the file :class:`FlowImages` reads).

    Format::

        {"convention": "t=1 noise (prior), t=0 data; times decrease along a grid",
         "grids": {"K": [t_0 = 1, t_1, ..., t_K = 0], ...},
         ...meta (e.g. "fine_steps": Kmax, "num_samples", "cost")}

    Args:
      path: the file (usually ``<checkpoint or pretrained folder>/boss_grids.json``).
      grids: steps ``K`` -> ``K + 1`` decreasing times from 1 to 0.
      meta: JSON-serialisable extras stored alongside.

    Returns:
      The path written.
    """
    out = {
        "convention": TIME_CONVENTION,
        "grids": {str(int(k)): [float(t) for t in np.asarray(g)] for k, g in grids.items()},
        **meta,
    }
    for k in out["grids"]:
        _check_grid(np.asarray(out["grids"][k]), int(k), Path(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return path


def _check_grid(g: np.ndarray, k: int, path: Path) -> np.ndarray:
    if g.shape != (k + 1,):
        raise ValueError(f"{path}: grid for K={k} has {g.size} times, expected K + 1 = {k + 1}")
    if not (abs(g[0] - 1.0) < 1e-6 and abs(g[-1]) < 1e-6 and np.all(np.diff(g) < 0)):
        raise ValueError(
            f"{path}: grid for K={k} must decrease strictly from t=1 (noise) to t=0 (data), "
            f"got {g.tolist()}"
        )
    return g


def read_boss_grids(path: str | Path) -> dict[int, np.ndarray]:
    """BOSS grids from a :func:`write_boss_grids` file.

    Returns:
      ``K -> float32 [K + 1]`` times from 1 down to 0.

    Raises:
      FileNotFoundError: no file.
      ValueError: not the format above (the message names the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no BOSS grid file")
    try:
        d = json.loads(path.read_text())
        grids = d["grids"]
        conv = d.get("convention", TIME_CONVENTION)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(
            f'{path}: not a BOSS grid file ({e}); expected {{"grids": {{"K": [1, ..., 0]}}}}'
        ) from e
    if conv != TIME_CONVENTION:
        raise ValueError(f"{path}: time convention {conv!r}, expected {TIME_CONVENTION!r}")
    return {int(k): _check_grid(np.asarray(g, np.float32), int(k), path) for k, g in grids.items()}


def find_boss_grids(folder: str | Path | None) -> Path | None:
    """``boss_grids.json`` of a checkpoint or pretrained folder, if there is one.

    Looks in ``folder`` and, when ``folder`` is a ``checkpoints`` folder, in its parent.
    """
    if folder is None:
        return None
    folder = Path(folder)
    for d in (folder, folder.parent) if folder.name == "checkpoints" else (folder,):
        if (d / BOSS_GRIDS_FILE).is_file():
            return d / BOSS_GRIDS_FILE
    return None


# ------------------------------------------------------------------------ method


class FlowImages(ImageMethod):
    """Rectified flow / flow matching on images (see the module docstring)."""

    samplers = SAMPLERS
    #: files of a training run that ``genmodels export`` carries along
    artefacts = (BOSS_GRIDS_FILE,)

    def __init__(self, config: FlowImageConfig):
        super().__init__(config)
        self.process = LinearFlow(ot_coupling=config.ot_coupling, t_eps=config.t_eps)
        self.processes = {self.leaf: self.process}

    def init_model(self, key: Array) -> FlowImageNet:
        return FlowImageNet(self.config.net, self.config.time_scale, rngs=nnx.Rngs(key))

    def loss_fn(self, model: FlowImageNet, batch: dict, key: Array):
        """Flow-matching loss: mean over the batch of the per-image pixel mean of
        ``(v_theta(x_t, t) - (eps - x_0))^2``, ``t ~ U(t_eps, 1)``.

        Returns:
          ``(loss, {})``.
        """
        kf, kt, kc, kd = jax.random.split(key, 4)
        x0 = self.clean_state(batch, kf)
        ctx: dict = {}
        t = self.process.sample_time(kt, x0[self.leaf].shape[0])  # [B]
        xt, aux = corrupt_state(self.processes, kc, x0, t, ctx)
        pred = model(xt, t, ctx, train=True, rngs=kd)
        total, _ = loss_state(self.processes, pred, x0, xt, t, aux, ctx)
        return jnp.mean(total), {}

    # -------------------------------------------------------------- sampling
    def boss_grid(self, steps: int | None) -> np.ndarray:
        """The stored BOSS grid for ``steps`` steps (``None``: the config's
        ``sample_steps`` when the file has that grid, else the file's only grid).

        Looks at the config's ``boss_grids`` path, else ``boss_grids.json`` in
        :attr:`checkpoint_dir`.

        Returns:
          float32 [K + 1] times from 1 to 0.

        Raises:
          FileNotFoundError: no grid file (the message says where it looked and how to
            make one).
          ValueError: the file has no grid for ``steps``.
        """
        path = Path(self.config.boss_grids) if self.config.boss_grids else None
        if path is None:
            path = find_boss_grids(self.checkpoint_dir)
        if path is None or not path.exists():
            where = (
                self.config.boss_grids
                or (self.checkpoint_dir and str(Path(self.checkpoint_dir) / BOSS_GRIDS_FILE))
                or "(no checkpoint folder given)"
            )
            raise FileNotFoundError(
                f"the boss sampler needs a {BOSS_GRIDS_FILE} with Bellman-optimal time grids "
                f"and found none at {where}. Compute grids for this checkpoint "
                f"(genmodels.samplers.boss: reference_trajectories, cost_matrix, "
                f"optimal_grid) and save them with genmodels.models.flow.write_boss_grids "
                f"next to the checkpoint, set --config.boss-grids FILE, or use "
                f"--sampler euler / heun"
            )
        grids = read_boss_grids(path)
        if steps is None and int(self.config.sample_steps) in grids:
            steps = int(self.config.sample_steps)
        if steps is None:
            if len(grids) != 1:
                raise ValueError(
                    f"{path} holds BOSS grids for K in {sorted(grids)}; pick one with --steps"
                )
            steps = next(iter(grids))
        if int(steps) not in grids:
            raise ValueError(
                f"{path} has no BOSS grid for {steps} steps; it has K in {sorted(grids)}"
            )
        return grids[int(steps)]

    def _resolve(self, sampler, steps, options):
        grid = options.pop("grid", None)
        if options:
            raise ValueError(f"flow sample got unknown options {sorted(options)}")
        name = sampler or self.config.sampler
        if name != "boss":
            if grid is not None:
                raise ValueError(f"grid= is an option of the boss sampler, not {name!r}")
            return super()._resolve(sampler, steps, {})
        if grid is None:
            grid = self.boss_grid(steps)
        grid = np.asarray(grid, np.float32)
        k = grid.shape[0] - 1
        if steps is not None and int(steps) != k:
            raise ValueError(f"a grid of {k} steps was given with steps={steps}")
        _check_grid(grid, k, Path("<grid>"))
        return name, k, jnp.asarray(grid)

    def _run_sampler(self, net, key, batch, sampler, steps, extra, constrain=constrain):
        shapes = {self.leaf: (batch, *self.image_shape)}
        field = field_fn(net)
        common = dict(shapes=shapes, constrain=constrain)
        if sampler == "heun":
            return probability_flow_sample(
                field,
                self.processes,
                {},
                key,
                solver=diffrax.Heun(),
                steps=steps,
                t0=1.0,
                t1=0.0,
                **common,
            )
        grid = uniform_grid(steps) if sampler == "euler" else extra
        return euler_sample(field, self.processes, {}, key, grid=grid, **common)

    def velocity_fn(self, model: FlowImageNet) -> Callable[[Array, Array], Array]:
        """:func:`velocity_fn` of ``model``."""
        return velocity_fn(model)
