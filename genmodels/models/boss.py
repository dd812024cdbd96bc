"""BOSS on the image flow model: Bellman-optimal time grids and straightening fine-tuning.

Nguyen, Nguyen & Nguyen, "Bellman Optimal Stepsize Straightening of Flow-Matching
Models", ICLR 2024 (arXiv 2312.16414; code nguyenngocbaocmt02/BOSS, ``ImageGeneration/``).
The shared pieces (reference trajectories, step-cost matrix, dynamic program,
straightening pairs and loss) are :mod:`genmodels.samplers.boss`; this module drives them
with a trained :class:`~genmodels.models.flow.FlowImages` model.

Time convention: the package's (``t = 1`` noise, ``t = 0`` data, grids decrease;
:mod:`genmodels.models.flow`). BOSS's code runs ``t' = 1 - t``; the grids written here are
the same sets of fine-grid points read in the other direction.

1. **Grids** (:func:`compute_boss_grids`): ``num_samples`` prior draws are integrated with
   Euler on the uniform fine grid of ``Kmax = fine_steps`` steps; the cost of one Euler
   step from fine point ``i`` to ``j`` is the squared error against the fine trajectory,
   summed over pixels and averaged over samples (the repo's ``l2_pixel`` cost); the
   Bellman dynamic program picks, for each budget ``K``, the ``K``-step path through the
   fine grid of least total cost. Repository defaults (``configs/rectified_flow/*.py``,
   ``sampling.bellman`` and ``scripts/evaluate.sh``): ``K_max = 100`` and ``num_samples =
   100`` draws in batches of 100. Grids go to ``boss_grids.json`` next to the checkpoint
   (:func:`genmodels.models.flow.write_boss_grids`), which ``--sampler boss --steps K``
   reads::

       python -m genmodels.models.boss grids flow_mnist --checkpoint pretrained
       python -m genmodels.models.boss grids flow_mnist --checkpoint runs/flow_mnist \\
           --num-samples 100 --fine-steps 100
       python -m genmodels.models.boss grids flow_qm9 --checkpoint runs/flow_qm9

   The same command serves the molecule-graph flow (``flow_qm9``,
   :mod:`genmodels.models.graph_continuous`), whose ``boss_setup`` hook supplies the
   context (node masks drawn from the training atom counts) and its constrain hook.

   Besides the grids, :func:`compute_boss_grids` reports each optimal path's cost next to
   the uniform ``K``-step path's on the same cost matrix: the dynamic program's predicted
   reduction of the (summed one-step) discretisation error.

2. **Straightening** (:class:`BossStraightenConfig` / :class:`BossStraighten`, recipe
   ``boss_mnist``): the teacher (a flow recipe and its checkpoint) is integrated on the
   fine grid from ``num_trajectories`` prior draws; the states at the points of the BOSS
   grid for the chosen ``K`` give the pairs ``(x_{i_k}, t_{i_k}) -> (x_{i_{k+1}} -
   x_{i_k}) / (t_{i_{k+1}} - t_{i_k})`` (the slope that makes one Euler step land on the
   teacher's fine trajectory) and the network, initialised from the teacher's weights,
   is trained on their mean squared error (repo: ``finetune.py`` with
   ``redress.type = generate_data_from_z0`` then ``train``, ``losses.get_redress_loss_fn``
   with the ``l2`` loss). The run folder gets the teacher's grids (``boss_grids.json``), so

       genmodels sample boss_mnist --checkpoint WORKDIR --sampler boss --steps K

   samples the straightened model on the grid it was straightened for.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from flax import nnx
from tqdm.auto import tqdm

from genmodels.core.grids import uniform_grid
from genmodels.core.types import Array
from genmodels.domains.images import constrain
from genmodels.models.base import split_model
from genmodels.models.flow import (
    BOSS_GRIDS_FILE,
    FlowImageConfig,
    FlowImages,
    field_fn,
    find_boss_grids,
    read_boss_grids,
    write_boss_grids,
)
from genmodels.samplers.boss import (
    cost_matrix,
    optimal_grid,
    path_cost,
    reference_trajectories,
    straightening_batch,
    straightening_loss,
    straightening_pairs,
)
from genmodels.train.data import ArrayLoader

__all__ = [
    "COST_MATRIX_FILE",
    "DEFAULT_KS",
    "PAIRS_FILE",
    "BossStraighten",
    "BossStraightenConfig",
    "compute_boss_grids",
    "grid_indices",
    "grids_for_checkpoint",
    "grids_meta",
    "uniform_indices",
]

#: step budgets the grids are computed for by default (the issue's NFE range)
DEFAULT_KS = tuple(range(2, 11))
#: the averaged step-cost matrix, saved next to ``boss_grids.json``
COST_MATRIX_FILE = "boss_cost_matrix.npy"
#: the cached straightening trajectories of a :class:`BossStraighten` run
PAIRS_FILE = "boss_pairs.npz"


def _run_folder(checkpoint: str | Path) -> Path:
    """The folder that holds ``checkpoints/`` (where sampler artefacts live)."""
    p = Path(checkpoint)
    return p.parent if p.name == "checkpoints" else p


def _equal_rounds(num: int, batch: int) -> tuple[int, int]:
    """``(rounds, per_round)`` with equal rounds (one compile) covering at least ``num``."""
    if num < 1 or batch < 1:
        raise ValueError(f"need num >= 1 and batch >= 1, got num={num}, batch={batch}")
    rounds = math.ceil(num / batch)
    return rounds, math.ceil(num / rounds)


def uniform_indices(k: int, fine_steps: int) -> np.ndarray:
    """Fine-grid indices of the uniform ``k``-step grid (rounded to the nearest fine point;
    exact when ``k`` divides ``fine_steps``). Returns int [k + 1]."""
    return np.rint(np.arange(k + 1) * fine_steps / k).astype(np.int64)


def grid_indices(times: np.ndarray, fine_steps: int) -> np.ndarray:
    """Fine-grid indices of a grid's times (``t_i = 1 - i / fine_steps``).

    Raises:
      ValueError: a time is not on the uniform fine grid of ``fine_steps`` steps.
    """
    times = np.asarray(times, np.float64)
    idx = np.rint((1.0 - times) * fine_steps).astype(np.int64)
    if not np.allclose(1.0 - idx / fine_steps, times, atol=1e-5):
        raise ValueError(
            f"grid {times.tolist()} is not on the uniform fine grid of {fine_steps} steps"
        )
    return idx


def _image_boss_setup(method: FlowImages, net: nnx.Module, key: Array, batch: int) -> tuple:
    """The flow problem of an image method: no context, the key draws the prior."""
    shapes = {method.leaf: (batch, *method.image_shape)}
    return field_fn(net), method.processes, {}, key, shapes, constrain


def compute_boss_grids(
    method: Any,
    model: nnx.Module,
    key: Array,
    *,
    num_samples: int = 100,
    fine_steps: int = 100,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 100,
    map_batch: int = 4,
    progress: bool = True,
) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Bellman-optimal Euler time grids of a flow model for several step budgets.

    The cost matrix ``c[i, j] = E ||x_i + (t_j - t_i) v(x_i, t_i) - x_j||^2`` (BOSS's
    one-step error against the fine Euler trajectory, summed over pixels, eq. of the
    "Bellman optimal stepsizes" section) is averaged over ``rounds`` equal batches of
    prior draws (one jitted call per batch: the fine trajectory and its cost rows), then
    the dynamic program (:func:`genmodels.samplers.boss.optimal_grid`) runs for every
    ``K``. The fine trajectories cost ``fine_steps`` network calls per draw and the cost
    rows as many again (the velocity at every fine point).

    Args:
      method: a :class:`FlowImages` (image shape, process, constrain hook), or any flow
        method with a ``boss_setup(net, key, batch) -> (field, processes, ctx, key, shapes,
        constrain)`` hook (traced inside the jitted batch; e.g. the molecule-graph flow of
        :mod:`genmodels.models.graph_continuous`, whose context, the node masks, is drawn
        per batch from ``key``).
      model: its velocity network ``(state, t [B], ctx) -> dict`` (any module with
        that call, e.g. a closed-form field in tests).
      key: PRNG key of the prior draws (round ``r`` uses ``fold_in(key, r)``).
      num_samples: prior draws (rounded up to equal batches; BOSS: 100).
      fine_steps: ``Kmax``, steps of the uniform fine grid (BOSS: 100).
      ks: step budgets ``K`` (each ``1 <= K <= fine_steps``).
      batch_size: draws per jitted call.
      map_batch: start points of the cost matrix evaluated together (memory:
        ``map_batch * (fine_steps + 1) * batch * pixels`` floats).
      progress: tqdm bar over the batches.

    Returns:
      ``(grids, info)``: ``grids[K]`` float32 [K + 1] times decreasing from 1 to 0 (the
      :func:`~genmodels.models.flow.write_boss_grids` format); ``info`` holds
      ``cost_matrix`` (float64 [Kmax + 1, Kmax + 1]), ``fine_steps``, ``num_samples``
      (the draws actually used), ``indices[K]`` (fine-grid indices), ``cost[K]`` (the
      optimal path's cost), ``uniform_cost[K]`` (the uniform path's, rounded to the fine
      grid by :func:`uniform_indices`), ``uniform_exact[K]`` (whether ``K`` divides
      ``Kmax``) and ``seconds``.
    """
    import time

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > fine_steps:
        raise ValueError(f"every K must be in [1, fine_steps={fine_steps}], got {ks}")
    rounds, per_round = _equal_rounds(num_samples, batch_size)
    fine = uniform_grid(fine_steps)
    graphdef, params, rest = split_model(model)
    setup = getattr(method, "boss_setup", None)
    if setup is None:
        setup = lambda net, key, batch: _image_boss_setup(method, net, key, batch)

    @jax.jit
    def batch_cost(params, key):
        net = nnx.merge(graphdef, params, rest)
        field, processes, ctx, key, shapes, cons = setup(net, key, per_round)
        traj = reference_trajectories(
            field, processes, ctx, key, shapes=shapes, fine_grid=fine, constrain=cons
        )
        return cost_matrix(field, traj, fine, ctx, map_batch=map_batch)  # [Kmax + 1, Kmax + 1]

    t0 = time.perf_counter()
    total = np.zeros((fine_steps + 1, fine_steps + 1), np.float64)
    for r in tqdm(range(rounds), desc="boss cost matrix", disable=not progress, unit="batch"):
        total += np.asarray(batch_cost(params, jax.random.fold_in(key, r)), np.float64)
    cost = total / rounds  # inf (j <= i) stays inf

    c32 = jnp.asarray(cost, jnp.float32)
    paths = jax.jit(lambda c: [optimal_grid(c, k, fine) for k in ks])(c32)
    grids, indices, opt_cost, uni_cost, exact = {}, {}, {}, {}, {}
    for k, p in zip(ks, paths):
        idx = np.asarray(p.indices, np.int64)
        grids[k] = np.asarray(p.times, np.float32)
        indices[k] = idx.tolist()
        opt_cost[k] = float(path_cost(cost, idx))
        uni_cost[k] = float(path_cost(cost, uniform_indices(k, fine_steps)))
        exact[k] = fine_steps % k == 0
    info = {
        "cost_matrix": cost,
        "fine_steps": int(fine_steps),
        "num_samples": int(rounds * per_round),
        "indices": indices,
        "cost": opt_cost,
        "uniform_cost": uni_cost,
        "uniform_exact": exact,
        "seconds": time.perf_counter() - t0,
    }
    return grids, info


def grids_meta(info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The JSON-serialisable part of :func:`compute_boss_grids`'s ``info``.

    Args:
      info: the ``info`` dict of :func:`compute_boss_grids`.
      extra: further JSON-serialisable entries.

    Returns:
      The metadata stored in ``boss_grids.json`` (per-K entries keyed by ``str(K)``; the
      cost matrix goes to its own ``.npy``).
    """
    out = {k: info[k] for k in ("fine_steps", "num_samples", "seconds") if k in info} | {
        k: {str(kk): v for kk, v in info[k].items()}
        for k in ("indices", "cost", "uniform_cost", "uniform_exact")
        if k in info
    }
    out.update(extra)
    return out


def _grid_table(grids: dict[int, np.ndarray], info: dict[str, Any]) -> str:
    lines = [
        "| K | BOSS grid (t from 1 to 0) | BOSS cost | uniform cost | BOSS / uniform |",
        "|---|---|---|---|---|",
    ]
    for k, g in sorted(grids.items()):
        c, u = info["cost"][k], info["uniform_cost"][k]
        star = "" if info["uniform_exact"][k] else "*"
        ratio = c / u if u > 0 else float("nan")
        times = ", ".join(f"{t:.3f}" for t in g)
        lines.append(f"| {k} | {times} | {c:.4g} | {u:.4g}{star} | {ratio:.3f} |")
    if not all(info["uniform_exact"].values()):
        lines.append(
            f"\n\\* K does not divide Kmax = {info['fine_steps']}: the uniform grid is "
            "rounded to the nearest fine-grid points."
        )
    return "\n".join(lines)


def grids_for_checkpoint(
    config: FlowImageConfig,
    checkpoint: str | Path,
    *,
    num_samples: int = 100,
    fine_steps: int = 100,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 100,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
    **meta: Any,
) -> tuple[Path, dict[int, np.ndarray], dict[str, Any]]:
    """Compute BOSS grids for a flow checkpoint and store them next to it.

    Args:
      config: a flow recipe config (:class:`FlowImageConfig` or a subclass, or
        :class:`~genmodels.models.graph_continuous.GraphFlowConfig`).
      checkpoint: the run or pretrained folder (or its ``checkpoints`` folder).
      num_samples, fine_steps, ks, batch_size: see :func:`compute_boss_grids`.
      seed: seed of the prior draws.
      out: the grid file (default ``<folder>/boss_grids.json``); the cost matrix is
        written next to it as ``boss_cost_matrix.npy``.
      progress: tqdm bar.
      meta: extra JSON-serialisable entries of the file.

    Returns:
      ``(path written, grids, info)``.
    """
    from genmodels.models.run import load_recipe_model

    method, model, _ = load_recipe_model(config, checkpoint)
    if not (isinstance(method, FlowImages) or hasattr(method, "boss_setup")):
        raise TypeError(
            f"BOSS grids need a flow recipe (images or molecule graphs), got {type(method).__name__}"
        )
    grids, info = compute_boss_grids(
        method,
        model,
        jax.random.PRNGKey(seed),
        num_samples=num_samples,
        fine_steps=fine_steps,
        ks=ks,
        batch_size=batch_size,
        progress=progress,
    )
    path = Path(out) if out is not None else _run_folder(checkpoint) / BOSS_GRIDS_FILE
    write_boss_grids(path, grids, **grids_meta(info, seed=seed, checkpoint=str(checkpoint), **meta))
    np.save(path.parent / COST_MATRIX_FILE, info["cost_matrix"])
    return path, grids, info


# ------------------------------------------------------------------ straightening


@dataclass(frozen=True)
class BossStraightenConfig(FlowImageConfig):
    """BOSS straightening fine-tuning of a flow recipe (fields of
    :class:`~genmodels.models.flow.FlowImageConfig`, which must equal the teacher's network
    and time scale, plus the ones below; :meth:`from_teacher` copies them).

    Attributes:
      teacher: the flow recipe fine-tuned (a recipe name, e.g. ``flow_mnist``).
      teacher_checkpoint: ``pretrained`` (the recipe's shipped model) or a run folder.
      steps_k: the step budget ``K`` straightened for (the paper's figures sample the
        straightened models with 6 NFE; the repo's data generation covers 1, 2, 4, 6, 8
        and 10 and its ``boss.sh`` trains ``K = 2``).
      grid_ks: budgets whose teacher grids are stored for sampling (``steps_k`` is added).
      grid_samples: prior draws of the cost matrix (BOSS: 100).
      fine_steps: ``Kmax`` of the fine Euler grid (BOSS: 100).
      num_trajectories: teacher trajectories giving the straightening pairs, ``K`` pairs
        each (BOSS ``gen_data.sh``: 5000).
      heldout_frac: fraction of the trajectories kept out of training to measure the
        straightening loss (BOSS: 10 % of the pairs).
      traj_batch: draws per jitted teacher call while generating grids and pairs.
      seed: seed of the prior draws of grids (``seed``) and pairs (``seed + 1``).
    """

    teacher: str = "flow_mnist"
    teacher_checkpoint: str = "pretrained"
    steps_k: int = 6
    grid_ks: tuple[int, ...] = DEFAULT_KS
    grid_samples: int = 100
    fine_steps: int = 100
    num_trajectories: int = 5000
    heldout_frac: float = 0.1
    traj_batch: int = 100
    seed: int = 0
    sampler: str = "boss"
    sample_steps: int = 6

    def build(self) -> BossStraighten:
        return BossStraighten(self)

    @classmethod
    def from_teacher(
        cls, teacher_config: FlowImageConfig, /, **overrides: Any
    ) -> BossStraightenConfig:
        """A config with every :class:`FlowImageConfig` field copied from the teacher's
        config (network, time scale, data set...), then ``overrides``."""
        base = {
            f.name: getattr(teacher_config, f.name) for f in dataclasses.fields(FlowImageConfig)
        }
        base.pop("boss_grids", None)
        return cls(**(base | overrides))


class BossStraighten(FlowImages):
    """BOSS straightening of a flow model (module docstring, part 2).

    Sampling, files and evaluation are :class:`FlowImages`'; the default sampler is
    ``boss`` with ``steps_k`` steps on the grid stored in the run folder.

    Training goes through :func:`genmodels.models.run.train_recipe`, which calls
    :meth:`init_train_model` with the run folder: the teacher is loaded, its grids and
    the straightening trajectories are computed once (or read from the run folder when
    resuming), and the model starts from the teacher's parameters.
    """

    #: files of a run folder that :func:`~genmodels.models.run.export_recipe` keeps
    artefacts = (BOSS_GRIDS_FILE,)

    def __init__(self, config: BossStraightenConfig):
        super().__init__(config)
        c = config
        if not 1 <= c.steps_k <= c.fine_steps:
            raise ValueError(f"steps_k must be in [1, fine_steps={c.fine_steps}], got {c.steps_k}")
        if not 0.0 <= c.heldout_frac < 1.0:
            raise ValueError(f"heldout_frac must be in [0, 1), got {c.heldout_frac}")
        self.workdir: Path | None = None
        self._prepared: dict[str, Any] | None = None
        self._teacher: tuple[FlowImages, nnx.Module, Path] | None = None

    # ---------------------------------------------------------------- teacher
    def load_teacher(self) -> tuple[FlowImages, nnx.Module, Path]:
        """``(teacher method, teacher model, its folder)`` (loaded once).

        Raises:
          FileNotFoundError: no pretrained model / checkpoint folder.
          ValueError: the teacher's network or time scale differ from this config's.
        """
        if self._teacher is not None:
            return self._teacher
        from genmodels.models.run import load_recipe_model
        from genmodels.recipes import load_recipe

        c = self.config
        tcfg, info = load_recipe(c.teacher)
        if c.teacher_checkpoint == "pretrained":
            folder = info.pretrained_dir
            if not info.has_pretrained:
                raise FileNotFoundError(
                    f"teacher recipe {c.teacher!r} ships no pretrained model (looked in "
                    f"{folder}); train it (genmodels train {c.teacher} --workdir DIR) and set "
                    "teacher_checkpoint=DIR"
                )
        else:
            folder = Path(c.teacher_checkpoint)
        for name in ("net", "time_scale"):
            if getattr(tcfg, name, None) != getattr(c, name):
                raise ValueError(
                    f"{name} of the straightened model ({getattr(c, name)}) differs from the "
                    f"teacher {c.teacher!r}'s ({getattr(tcfg, name, None)}); build the config "
                    "with BossStraightenConfig.from_teacher"
                )
        method, model, _ = load_recipe_model(tcfg, folder)
        self._teacher = (method, model, _run_folder(folder))
        return self._teacher

    def init_train_model(self, key: Array, workdir: str | Path | None) -> nnx.Module:
        """The model to fine-tune: the teacher's sampling parameters (EMA unless its
        recipe says otherwise), after preparing grids and pairs in ``workdir``."""
        del key
        self.workdir = None if workdir is None else Path(workdir)
        if self.workdir is not None:
            self.checkpoint_dir = self.workdir
        _, teacher, _ = self.load_teacher()
        self.prepare()
        # a copy, so the teacher stays intact for later use in this process
        graphdef, state = nnx.split(teacher)
        return nnx.merge(graphdef, jax.tree.map(jnp.copy, state))

    # ------------------------------------------------------------ preparation
    def _grids(self) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
        """Teacher grids: the run folder's file when resuming, else the teacher folder's
        when it was made on the same fine grid and has every budget, else computed."""
        c = self.config
        ks = sorted(set(c.grid_ks) | {c.steps_k})
        mine = {"teacher": c.teacher, "teacher_checkpoint": c.teacher_checkpoint}
        candidates = []  # (file, metadata it must match)
        if self.workdir is not None:
            candidates.append((self.workdir / BOSS_GRIDS_FILE, mine))
        _, teacher, tfolder = self.load_teacher()
        if (p := find_boss_grids(tfolder)) is not None:
            candidates.append((p, {}))
        for path, need in candidates:
            if not path.is_file():
                continue
            meta = json.loads(path.read_text())
            meta = {k: v for k, v in meta.items() if k not in ("grids", "convention")}
            grids = read_boss_grids(path)
            same = all(meta.get(k) == v for k, v in need.items())
            if same and meta.get("fine_steps") == c.fine_steps and set(ks) <= set(grids):
                return {k: grids[k] for k in ks}, {"source": str(path)} | meta
        method, _, _ = self.load_teacher()
        grids, info = compute_boss_grids(
            method,
            teacher,
            jax.random.PRNGKey(c.seed),
            num_samples=c.grid_samples,
            fine_steps=c.fine_steps,
            ks=ks,
            batch_size=c.traj_batch,
            progress=c.train.progress,
        )
        meta = grids_meta(info, seed=c.seed, source="computed")
        if self.workdir is not None:
            np.save(self.workdir / COST_MATRIX_FILE, info["cost_matrix"])
        return grids, meta

    def _pairs_meta(self, times: np.ndarray) -> dict[str, Any]:
        c = self.config
        return {
            "teacher": c.teacher,
            "teacher_checkpoint": c.teacher_checkpoint,
            "steps_k": c.steps_k,
            "fine_steps": c.fine_steps,
            "num_trajectories": c.num_trajectories,
            "traj_batch": c.traj_batch,
            "seed": c.seed,
            "times": [float(t) for t in times],
        }

    def _trajectories(self, times: np.ndarray) -> np.ndarray:
        """Teacher states at the BOSS grid's times: float32 [N, K + 1, H, W, C]."""
        c = self.config
        meta = self._pairs_meta(times)
        cache = None if self.workdir is None else self.workdir / PAIRS_FILE
        # a loaded run folder (load_recipe_model sets checkpoint_dir) is read, never written
        folder = self.checkpoint_dir
        found = cache or (None if folder is None else Path(folder) / PAIRS_FILE)
        if found is not None and found.is_file():
            with np.load(found) as f:
                if json.loads(str(f["meta"])) == meta:
                    return f["traj"]
        method, teacher, _ = self.load_teacher()
        idx = jnp.asarray(grid_indices(times, c.fine_steps))
        rounds, per_round = _equal_rounds(c.num_trajectories, c.traj_batch)
        fine = uniform_grid(c.fine_steps)
        graphdef, params, rest = split_model(teacher)
        shapes = {self.leaf: (per_round, *self.image_shape)}

        @jax.jit
        def run(params, key):
            field = field_fn(nnx.merge(graphdef, params, rest))
            traj = reference_trajectories(
                field, method.processes, {}, key, shapes=shapes, fine_grid=fine, constrain=constrain
            )[self.leaf]  # [Kmax + 1, B, H, W, C]
            return jnp.moveaxis(traj[idx], 0, 1)  # [B, K + 1, H, W, C]

        key = jax.random.PRNGKey(c.seed + 1)
        out = [
            np.asarray(run(params, jax.random.fold_in(key, r)))
            for r in tqdm(
                range(rounds), desc="boss pairs", disable=not c.train.progress, unit="batch"
            )
        ]
        traj = np.concatenate(out)[: c.num_trajectories]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".tmp.npz")
            np.savez(tmp, traj=traj, meta=np.asarray(json.dumps(meta)))
            tmp.replace(cache)
        return traj

    def prepare(self) -> dict[str, Any]:
        """Grids and straightening trajectories (computed once, cached in memory and in the
        run folder, where ``boss_grids.json`` is written).

        Returns:
          ``{"grids": K -> times, "times": [K + 1] the straightened grid, "train": float32
          [N_train, K + 1, H, W, C], "heldout": [N_heldout, K + 1, H, W, C], "meta"}``.
        """
        if self._prepared is not None:
            return self._prepared
        c = self.config
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        grids, meta = self._grids()
        if self.workdir is not None:
            run_meta = meta | {
                "teacher": c.teacher,
                "teacher_checkpoint": c.teacher_checkpoint,
                "straightened_k": c.steps_k,
            }
            write_boss_grids(self.workdir / BOSS_GRIDS_FILE, grids, **run_meta)
        times = np.asarray(grids[c.steps_k], np.float32)
        traj = self._trajectories(times)
        n_held = int(round(c.heldout_frac * len(traj)))
        if len(traj) - n_held < 1:
            raise ValueError(f"num_trajectories={c.num_trajectories} leaves nothing to train on")
        self._prepared = {
            "grids": grids,
            "times": times,
            "train": traj[: len(traj) - n_held],
            "heldout": traj[len(traj) - n_held :],
            "meta": meta,
        }
        return self._prepared

    # --------------------------------------------------------------- training
    def loader(self) -> ArrayLoader:
        """Shuffled batches of whole teacher trajectories ``{"traj": [B, K + 1, H, W, C]}``;
        :meth:`loss_fn` draws one segment per trajectory."""
        c = self.config
        prep = self.prepare()
        return ArrayLoader(
            {"traj": prep["train"]}, batch_size=c.train.batch_size, seed=c.train.seed
        )

    def loss_fn(self, model: nnx.Module, batch: dict, key: Array) -> tuple[Array, dict]:
        """BOSS straightening loss on one random segment ``k ~ U{0..K-1}`` per trajectory:
        mean over the batch of the pixel mean of ``(v_theta(x_{i_k}, t_{i_k}) -
        (x_{i_{k+1}} - x_{i_k}) / (t_{i_{k+1}} - t_{i_k}))^2``.

        Returns:
          ``(loss, {})``.
        """
        times = jnp.asarray(self.prepare()["times"])
        kb, kd = jax.random.split(key)
        traj = jnp.moveaxis(jnp.asarray(batch["traj"], jnp.float32), 1, 0)  # [K + 1, B, ...]
        x, t, target = straightening_batch(kb, {self.leaf: traj}, times, jnp.arange(times.shape[0]))
        pred = model(x, t, {}, train=True, rngs=kd)
        return jnp.mean(straightening_loss(pred, target)), {}

    def heldout_loss(
        self, model: nnx.Module, trajectories: np.ndarray | None = None, batch_size: int = 100
    ) -> dict[str, Any]:
        """Straightening loss on every segment of held-out teacher trajectories.

        Args:
          model: the velocity network (teacher or straightened).
          trajectories: float32 [N, K + 1, H, W, C] (default: the held-out split, or the
            training split when nothing is held out).
          batch_size: trajectories per jitted call.

        Returns:
          ``{"loss": mean over segments and trajectories, "per_segment": [K] means}``.
        """
        prep = self.prepare()
        traj = prep["heldout"] if trajectories is None else trajectories
        if trajectories is None and len(traj) == 0:
            traj = prep["train"]
        times = jnp.asarray(prep["times"])
        k = times.shape[0] - 1
        graphdef, params, rest = split_model(model)
        cache = self.__dict__.setdefault("_heldout_fns", {})
        if graphdef not in cache:

            @jax.jit
            def seg_loss(params, rest, tr):
                net = nnx.merge(graphdef, params, rest)
                xs, ts, tg = straightening_pairs(
                    {self.leaf: jnp.moveaxis(tr, 1, 0)}, times, jnp.arange(k + 1)
                )
                b = tr.shape[0]

                def one(i):
                    x = {self.leaf: xs[self.leaf][i]}
                    pred = net(x, jnp.full((b,), ts[i]), {})
                    return jnp.sum(straightening_loss(pred, {self.leaf: tg[self.leaf][i]}))

                return jax.lax.map(one, jnp.arange(k))  # [K] sums over the batch

            cache[graphdef] = seg_loss
        seg_loss = cache[graphdef]
        total = np.zeros(k)
        for s in range(0, len(traj), batch_size):
            total += np.asarray(seg_loss(params, rest, jnp.asarray(traj[s : s + batch_size])))
        per = total / max(len(traj), 1)
        return {"loss": float(per.mean()), "per_segment": per.tolist()}


# ------------------------------------------------------------------ command line


@dataclass(frozen=True)
class GridsArgs:
    """Compute Bellman-optimal (BOSS) Euler time grids for a flow checkpoint and write
    ``boss_grids.json`` (and ``boss_cost_matrix.npy``) next to it, so that ``genmodels
    sample RECIPE --checkpoint DIR --sampler boss --steps K`` uses them.

    Attributes:
      recipe: a flow recipe (``flow_mnist``, ``boss_mnist``, ``flow_qm9``).
      checkpoint: ``pretrained`` (the recipe's shipped model) or a run folder.
      num_samples: prior draws averaged in the cost matrix (BOSS: 100).
      fine_steps: Kmax, steps of the uniform fine Euler grid (BOSS: 100).
      ks: step budgets K to store grids for.
      batch_size: draws per jitted call.
      seed: seed of the prior draws.
      out: the grid file (default: ``<checkpoint folder>/boss_grids.json``).
    """

    recipe: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RECIPE")]
    checkpoint: str = "pretrained"
    num_samples: int = 100
    fine_steps: int = 100
    ks: tuple[int, ...] = DEFAULT_KS
    batch_size: int = 100
    seed: int = 0
    out: str | None = None


USAGE = """usage: python -m genmodels.models.boss grids RECIPE [--checkpoint DIR|pretrained]
           [--num-samples N] [--fine-steps M] [--ks K ...] [--batch-size B] [--seed S] [--out FILE]

(python -m genmodels.models.boss grids --help for details)"""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m genmodels.models.boss grids RECIPE ...`` (see :class:`GridsArgs`)."""
    from genmodels.recipes import RecipeError, load_recipe

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] != "grids":
        print(f"unknown command {argv[0]!r}\n{USAGE}", file=sys.stderr)
        return 2
    a = tyro.cli(
        GridsArgs,
        args=argv[1:],
        prog="python -m genmodels.models.boss grids",
        config=(tyro.conf.FlagConversionOff,),
    )
    try:
        cfg, info = load_recipe(a.recipe)
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.checkpoint == "pretrained":
        if not info.has_pretrained:
            print(
                f"error: recipe {a.recipe!r} ships no pretrained model (looked in "
                f"{info.pretrained_dir}); pass --checkpoint DIR",
                file=sys.stderr,
            )
            return 2
        ckpt = info.pretrained_dir
    else:
        ckpt = Path(a.checkpoint)
    path, grids, ginfo = grids_for_checkpoint(
        cfg,
        ckpt,
        num_samples=a.num_samples,
        fine_steps=a.fine_steps,
        ks=a.ks,
        batch_size=a.batch_size,
        seed=a.seed,
        out=a.out,
        recipe=a.recipe,
    )
    print(_grid_table(grids, ginfo))
    print(
        f"\nwrote {path} ({ginfo['num_samples']} draws, Kmax = {ginfo['fine_steps']}, "
        f"{ginfo['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
