"""What the continuous-state methods (PFGM++, flow matching) compose the same way.

A :class:`ContinuousMethod` is a task (its config's ``task()``: images, generic graphs,
molecules), one process of a continuous kind shared by every state leaf, a network (its
config's ``make_net``) predicting that process's target, and the process's loss at one
noise level per example. Sampling is any registry entry that accepts the process kind,
run through the :class:`~genmodels.models.runner.Runner`: each round draws the task's
context (node counts for graphs) and the prior with the round key, integrates, and the
task decodes and collates the rounds. The methods add their process, networks and
sampler inputs (a BOSS grid).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array, Context, State
from genmodels.models.runner import (
    Runner,
    batch_sharded_constrain,
    resolve_sampler,
    sampler_names,
    shard_batch,
)
from genmodels.models.tasks.base import array_loader
from genmodels.processes.base import loss_state
from genmodels.samplers.guidance import condition_context, guided_model, resolve_condition
from genmodels.samplers.registry import get_sampler, run_sampler

__all__ = ["ContinuousMethod"]


class ContinuousMethod:
    """A continuous process on the task of a config (module docstring).

    Args:
      config: a recipe config with ``task()``, ``make_net(process, rngs)``, the class
        attributes ``corrupt`` (the task's training noise) and ``whole_batches``, and the
        fields ``sampler``, ``sample_steps``, ``sample_batch``, ``train``.
      process: the process of every leaf.

    Attributes:
      config, task, process, processes (leaf -> process), samplers (registry names, the
      default first), sample_suffix, sample_suffixes, eval_splits, runner.
    """

    def __init__(self, config: Any, process: Any):
        self.config, self.task, self.process = config, config.task(), process
        self.processes = {k: process for k in self.task.shapes(1)}
        self.samplers = sampler_names(self.processes, config.sampler)
        self.sample_suffix = self.task.sample_suffix
        self.eval_splits, self.sample_suffixes = self.task.eval_splits, self.task.sample_suffixes
        self.runner = Runner()

    def init_model(self, key: Array) -> nnx.Module:
        return self.config.make_net(self.process, nnx.Rngs(key))

    def loader(self):
        return array_loader(self.task, self.config.train)

    def loss_fn(self, model: nnx.Module, batch: dict, key: Array) -> tuple[Array, dict]:
        """The process's loss at one noise level ``t ~ process.sample_time`` per example,
        summed over the leaves, averaged over the batch.

        Returns:
          ``(loss, {"loss_<leaf>": ...})``.
        """
        kf, kt, kc, kd = jax.random.split(key, 4)
        x0, ctx = self.task.dense_batch(batch, kf)
        t = self.process.sample_time(kt, next(iter(x0.values())).shape[0])  # [B]
        xt, aux = self.config.corrupt(self.processes, kc, x0, t, ctx)
        pred = model(xt, t, ctx, train=True, rngs=kd)
        total, per_leaf = loss_state(self.processes, pred, x0, xt, t, aux, ctx)
        return jnp.mean(total), {f"loss_{k}": jnp.mean(v) for k, v in per_leaf.items()}

    # -------------------------------------------------------------- sampling
    def sampler_inputs(self, entry: Any, steps: int | None, options: dict) -> int | None:
        """Fill in what a sampler needs beyond the config (``options``, in place); returns
        the steps. None here; the flow method reads stored BOSS grids."""
        del entry, options
        return steps

    def _round(self, model: nnx.Module, batch: int, sampler, steps, options: dict):
        """The compiled round ``key -> (state, ctx, {"nfe"})`` of one sampler call."""
        label, guidance = resolve_condition(self.task.condition, options)
        entry = get_sampler(sampler or self.config.sampler, self.processes)
        steps = self.sampler_inputs(entry, steps, options)
        name, steps, opts = resolve_sampler(self.processes, sampler, steps, self.config, **options)
        task, procs = self.task, self.processes

        def body(net, key, mesh):
            ctx, k = task.sample_context(key, batch)
            if label is not None:
                ctx = condition_context(ctx, jnp.full((batch,), label, jnp.int32))
            ctx = shard_batch(ctx, mesh)
            hook = batch_sharded_constrain(task.constrain, mesh)
            state, info = run_sampler(
                name, guided_model(net, procs, guidance), procs, ctx, k,
                shapes=task.shapes(batch), steps=steps, options=opts, constrain=hook,
            )  # fmt: skip
            return state, ctx, {"nfe": info["nfe"]}

        return self.runner.compile(model, batch, (name, steps, opts, label, guidance), body)

    def sample_states(
        self, model: nnx.Module, key: Array, batch: int, *, sampler=None, steps=None, **options
    ) -> tuple[State, Context, dict]:
        """One jitted round of raw samples: ``(state, ctx, {"nfe"})``, the batch axis
        sharded over the devices when they divide it. ``options``: the sampler's
        (``genmodels samplers RECIPE`` lists them)."""
        return self._round(model, batch, sampler, steps, dict(options))(key)

    def _rounds(self, model, key, num, sampler, steps, batch_size, progress, options):
        """``(decoded rounds, NFE per sample)`` of ``ceil(num / batch)`` rounds."""
        batch = batch_size or self.config.sample_batch
        batch = batch if self.config.whole_batches else min(batch, max(num, 1))
        fn = self._round(model, batch, sampler, steps, options)
        parts, nfe = [], 0
        for state, ctx, info in Runner.rounds(
            num, batch, key, lambda k, r: fn(k), progress=progress
        ):
            parts.append(self.task.decode(state, ctx))
            nfe = int(info["nfe"])
        return parts, nfe

    def sample_parts(self, model, key, num, *, sampler=None, steps=None, **options) -> list:
        """``task.decode`` of each sampling round (round ``r`` uses ``fold_in(key, r)``);
        ``task.collate(parts, num, ...)`` makes them samples (molecules: ``task.pairs``
        gives corrected and raw SMILES of one run). ``options``: the sampler's."""
        batch_size, progress = options.pop("batch_size", None), options.pop("progress", True)
        return self._rounds(model, key, num, sampler, steps, batch_size, progress, options)[0]

    def sample(
        self, model, key, num, *, sampler=None, steps=None, batch_size=None, progress=True,
        return_nfe=False, **options,
    ) -> Any:  # fmt: skip
        """``num`` decoded samples (and the NFE per sample with ``return_nfe``).

        Args:
          model: the network.
          key: PRNG key; round ``r`` uses ``fold_in(key, r)``.
          num: samples wanted.
          sampler, steps: registry name and steps (default: the config's).
          batch_size: samples per round (default: ``sample_batch``).
          progress: progress bar.
          options: the sampler's options (e.g. ``solver`` of ``ode``, ``grid`` of
            ``boss``), ``label`` and ``guidance`` (a class-conditional model: the class,
            and the classifier-free weight ``w``, 1 by default); the others go to the
            task's ``collate`` (molecules: ``correction``).
        """
        entry = get_sampler(sampler or self.config.sampler, self.processes)
        mine = {f.name for f in dataclasses.fields(entry.options)} | {"label", "guidance"}
        mine &= set(options)
        sampler_options = {k: options.pop(k) for k in mine}
        try:
            self.task.collate([], 0, **options)  # a bad option fails before sampling
        except TypeError as e:
            raise ValueError(f"sample got unknown options {sorted(options)}") from e
        parts, nfe = self._rounds(
            model, key, num, sampler, steps, batch_size, progress, sampler_options
        )
        out = self.task.collate(parts, num, **options)
        return (out, nfe) if return_nfe else out

    def write_samples(self, samples: Any, path) -> None:
        self.task.write_samples(samples, path)

    def read_samples(self, path) -> Any:
        return self.task.read_samples(path)

    def evaluate(self, samples: Any, split: str = "test", meta: dict | None = None) -> dict:
        return self.task.evaluate(samples, split=split, meta=meta)
