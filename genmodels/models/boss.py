"""BOSS straightening of a flow model, and the command that computes BOSS grids.

Nguyen, Nguyen & Nguyen, "Bellman Optimal Stepsize Straightening of Flow-Matching
Models", ICLR 2024 (arXiv 2312.16414; code nguyenngocbaocmt02/BOSS, ``ImageGeneration/``).
Grids, trajectories, cost matrix, dynamic program and straightening loss are
:mod:`genmodels.samplers.boss`'s; a flow method hands over its model as a
:class:`~genmodels.samplers.boss.FlowProblem`.

1. **Grids** (``genmodels boss-grids RECIPE --checkpoint DIR``): the repository's
   defaults (``Kmax = 100`` fine Euler steps, 100 prior draws), K = 2..10, written to
   ``boss_grids.json`` next to the checkpoint (with the cost matrix) for the ``boss``
   sampler.
2. **Straightening** (:class:`BossStraightenConfig`, recipe ``boss_mnist``): the teacher's
   fine-grid trajectories from ``num_trajectories`` prior draws give, at the points of
   the BOSS grid for ``K = steps_k``, the pairs ``(x_{i_k}, t_{i_k}) -> (x_{i_{k+1}} -
   x_{i_k}) / (t_{i_{k+1}} - t_{i_k})`` (one Euler step lands on the trajectory); the
   network, initialised from the teacher, is trained on their mean squared error (repo
   ``finetune.py``, ``redress.type = generate_data_from_z0``, ``l2`` loss). The run folder
   gets the teacher's grids; the reference straightens one model per K.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.core.types import Array
from genmodels.models.flow import FlowImageConfig, FlowMethod
from genmodels.models.runner import split_model
from genmodels.samplers.boss import (
    BOSS_GRIDS_FILE,
    COST_MATRIX_FILE,
    DEFAULT_KS,
    boss_trajectories,
    compute_boss_grids,
    find_boss_grids,
    grids_meta,
    read_boss_grids,
    run_folder,
    straightening_batch,
    straightening_loss,
    straightening_pairs,
    write_boss_grids,
)
from genmodels.train.data import ArrayLoader

__all__ = ["PAIRS_FILE", "BossStraighten", "BossStraightenConfig"]

#: the cached straightening trajectories of a :class:`BossStraighten` run
PAIRS_FILE = "boss_pairs.npz"


@dataclass(frozen=True)
class BossStraightenConfig(FlowImageConfig):
    """BOSS straightening of a flow recipe: :class:`FlowImageConfig` fields, equal to the
    teacher's network and time scale (:meth:`from_teacher` copies them), plus:

    Attributes:
      teacher: the flow recipe fine-tuned (e.g. ``flow_mnist``).
      teacher_checkpoint: ``pretrained`` (the recipe's shipped model) or a run folder.
      steps_k: the step budget ``K`` straightened for (the paper's figures: 6 NFE).
      grid_ks: budgets whose teacher grids are stored for sampling (``steps_k`` added).
      grid_samples: prior draws of the cost matrix (BOSS: 100).
      fine_steps: ``Kmax`` of the fine Euler grid (BOSS: 100).
      num_trajectories: teacher trajectories giving ``K`` pairs each (BOSS: 5000).
      heldout_frac: trajectories kept out of training to measure the loss (BOSS: 10 %).
      traj_batch: draws per jitted teacher call (grids and pairs).
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
    def from_teacher(cls, teacher_config: FlowImageConfig, /, **overrides: Any):
        """Every :class:`FlowImageConfig` field of the teacher's config (but its grid
        file), then ``overrides``."""
        base = {
            f.name: getattr(teacher_config, f.name) for f in dataclasses.fields(FlowImageConfig)
        }
        base.pop("boss_grids", None)
        return cls(**(base | overrides))


class BossStraighten(FlowMethod):
    """BOSS straightening of a flow model (module docstring, 2.): the flow method with the
    straightening data and loss; it samples as the flow method does.

    :func:`genmodels.models.run.train_recipe` calls :meth:`init_train_model` with the run
    folder: the teacher is loaded, its grids and trajectories computed once (or read from
    the run folder when resuming), and the model starts from the teacher's parameters.
    """

    def __init__(self, config: BossStraightenConfig):
        super().__init__(config)
        if not 1 <= config.steps_k <= config.fine_steps:
            raise ValueError(
                f"steps_k must be in [1, fine_steps={config.fine_steps}], got {config.steps_k}"
            )
        if not 0.0 <= config.heldout_frac < 1.0:
            raise ValueError(f"heldout_frac must be in [0, 1), got {config.heldout_frac}")
        self.workdir: Path | None = None
        self._prepared: dict[str, Any] | None = None
        self._teacher: tuple[FlowMethod, nnx.Module, Path] | None = None

    def load_teacher(self) -> tuple[FlowMethod, nnx.Module, Path]:
        """``(teacher method, teacher model, its folder)``, loaded once.

        Raises:
          FileNotFoundError: no pretrained model / checkpoint folder.
          ValueError: the teacher's network or time scale differ from this config's.
        """
        if self._teacher is None:
            from genmodels.models.run import load_recipe_model
            from genmodels.recipes import load_recipe

            c = self.config
            tcfg, info = load_recipe(c.teacher)
            folder = Path(c.teacher_checkpoint)
            if c.teacher_checkpoint == "pretrained":
                folder = info.pretrained_dir
                if not info.has_pretrained:
                    raise FileNotFoundError(
                        f"teacher recipe {c.teacher!r} ships no pretrained model (looked in "
                        f"{folder}); train it (genmodels train {c.teacher} --workdir DIR) and "
                        "set teacher_checkpoint=DIR"
                    )
            for name in ("net", "time_scale"):
                if getattr(tcfg, name, None) != getattr(c, name):
                    raise ValueError(
                        f"{name} of the straightened model ({getattr(c, name)}) differs from the "
                        f"teacher {c.teacher!r}'s ({getattr(tcfg, name, None)}); build the "
                        "config with BossStraightenConfig.from_teacher"
                    )
            method, model, _ = load_recipe_model(tcfg, folder)
            self._teacher = (method, model, run_folder(folder))
        return self._teacher

    def init_train_model(self, key: Array, workdir: str | Path | None) -> nnx.Module:
        """A copy of the teacher's sampling parameters, after preparing grids and pairs in
        ``workdir`` (which becomes :attr:`checkpoint_dir`)."""
        del key
        self.workdir = None if workdir is None else Path(workdir)
        if self.workdir is not None:
            self.checkpoint_dir = self.workdir
        _, teacher, _ = self.load_teacher()
        self.prepare()
        graphdef, state = nnx.split(teacher)
        return nnx.merge(graphdef, jax.tree.map(jnp.copy, state))

    # ------------------------------------------------------------ preparation
    def _grids(self) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
        """Teacher grids: the run folder's file when resuming, else the teacher folder's
        when it was made on the same fine grid and has every budget, else computed."""
        c = self.config
        ks = sorted(set(c.grid_ks) | {c.steps_k})
        mine = {"teacher": c.teacher, "teacher_checkpoint": c.teacher_checkpoint}
        method, teacher, tfolder = self.load_teacher()
        candidates = [(self.workdir / BOSS_GRIDS_FILE, mine)] if self.workdir else []
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
        grids, info = compute_boss_grids(
            method.boss_problem(teacher), jax.random.PRNGKey(c.seed), num_samples=c.grid_samples,
            fine_steps=c.fine_steps, ks=ks, batch_size=c.traj_batch, progress=c.train.progress,
        )  # fmt: skip
        if self.workdir is not None:
            np.save(self.workdir / COST_MATRIX_FILE, info["cost_matrix"])
        return grids, grids_meta(info, seed=c.seed, source="computed")

    def _trajectories(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """Teacher states at the grid's times, per leaf float32 [N, K + 1, ...]; cached
        in the run folder (a loaded run folder is read, never written)."""
        c = self.config
        meta = {
            "teacher": c.teacher,
            "teacher_checkpoint": c.teacher_checkpoint,
            "steps_k": c.steps_k,
            "fine_steps": c.fine_steps,
            "num_trajectories": c.num_trajectories,
            "traj_batch": c.traj_batch,
            "seed": c.seed,
            "times": [float(t) for t in times],
        }
        cache = None if self.workdir is None else self.workdir / PAIRS_FILE
        found = cache or (self.checkpoint_dir and Path(self.checkpoint_dir) / PAIRS_FILE)
        if found and found.is_file():
            with np.load(found) as f:
                if json.loads(str(f["meta"])) == meta:
                    return {k: f[k] for k in f.files if k != "meta"}
        method, teacher, _ = self.load_teacher()
        traj = boss_trajectories(
            method.boss_problem(teacher), jax.random.PRNGKey(c.seed + 1), times,
            num=c.num_trajectories, fine_steps=c.fine_steps, batch_size=c.traj_batch,
            progress=c.train.progress,
        )  # fmt: skip
        if cache is not None:
            tmp = cache.with_name(cache.name + ".tmp.npz")
            np.savez(tmp, meta=np.asarray(json.dumps(meta)), **traj)
            tmp.replace(cache)
        return traj

    def prepare(self) -> dict[str, Any]:
        """Grids and straightening trajectories, computed once (``boss_grids.json`` is
        written to the run folder).

        Returns:
          ``{"grids": K -> times, "times": [K + 1] the straightened grid, "train" and
          "heldout": per leaf [N, K + 1, ...], "meta"}``.
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
        n = len(next(iter(traj.values())))
        n_train = n - int(round(c.heldout_frac * n))
        if n_train < 1:
            raise ValueError(f"num_trajectories={c.num_trajectories} leaves nothing to train on")
        self._prepared = {
            "grids": grids,
            "times": times,
            "train": {k: v[:n_train] for k, v in traj.items()},
            "heldout": {k: v[n_train:] for k, v in traj.items()},
            "meta": meta,
        }
        return self._prepared

    # --------------------------------------------------------------- training
    def loader(self) -> ArrayLoader:
        """Shuffled batches of whole teacher trajectories (per leaf [B, K + 1, ...]);
        :meth:`loss_fn` draws one segment per trajectory."""
        c = self.config
        return ArrayLoader(
            self.prepare()["train"], batch_size=c.train.batch_size, seed=c.train.seed
        )

    def loss_fn(self, model: nnx.Module, batch: dict, key: Array) -> tuple[Array, dict]:
        """BOSS straightening loss on one segment ``k ~ U{0..K-1}`` per trajectory: the
        mean of ``(v_theta(x_{i_k}, t_{i_k}) - (x_{i_{k+1}} - x_{i_k}) / (t_{i_{k+1}} -
        t_{i_k}))^2``. Returns ``(loss, {})``."""
        times = jnp.asarray(self.prepare()["times"])
        kb, kd = jax.random.split(key)
        traj = {k: jnp.moveaxis(jnp.asarray(v, jnp.float32), 1, 0) for k, v in batch.items()}
        x, t, target = straightening_batch(kb, traj, times, jnp.arange(times.shape[0]))
        pred = model(x, t, {}, train=True, rngs=kd)
        return jnp.mean(straightening_loss(pred, target)), {}

    def heldout_loss(
        self, model: nnx.Module, trajectories: dict | None = None, batch_size: int = 100
    ) -> dict[str, Any]:
        """Straightening loss on every segment of teacher trajectories (default: the
        held-out ones, or the training ones when none are held out).

        Returns:
          ``{"loss": mean over segments and trajectories, "per_segment": [K] means}``.
        """
        prep = self.prepare()
        traj = prep["heldout"] if trajectories is None else trajectories
        if trajectories is None and len(next(iter(traj.values()))) == 0:
            traj = prep["train"]
        times = jnp.asarray(prep["times"])
        k = times.shape[0] - 1
        graphdef, params, rest = split_model(model)
        cache = self.__dict__.setdefault("_heldout_fns", {})
        if graphdef not in cache:

            @jax.jit
            def seg_loss(params, rest, tr):  # [K] sums over the batch
                net = nnx.merge(graphdef, params, rest)
                tr = {n: jnp.moveaxis(v, 1, 0) for n, v in tr.items()}  # [K + 1, B, ...]
                xs, ts, tg = straightening_pairs(tr, times, jnp.arange(k + 1))
                b = next(iter(tr.values())).shape[1]

                def one(i):
                    pred = net({n: v[i] for n, v in xs.items()}, jnp.full((b,), ts[i]), {})
                    return jnp.sum(straightening_loss(pred, {n: v[i] for n, v in tg.items()}))

                return jax.lax.map(one, jnp.arange(k))

            cache[graphdef] = seg_loss
        seg_loss = cache[graphdef]
        n = len(next(iter(traj.values())))
        total = np.zeros(k)
        for s in range(0, n, batch_size):
            part = {name: jnp.asarray(v[s : s + batch_size]) for name, v in traj.items()}
            total += np.asarray(seg_loss(params, rest, part))
        per = total / max(n, 1)
        return {"loss": float(per.mean()), "per_segment": per.tolist()}
