"""The one sampling harness every method samples through.

A method describes one sampling round as a traceable ``body(net, key, mesh, *args)``
(the network merged from its parameters, the round's PRNG key, the device mesh or
``None``, and any array arguments); the :class:`Runner` owns the rest:

- one ``jax.jit`` per (network graph, batch, options), cached;
- the device mesh: when several devices divide the batch, the batch axis is sharded over
  a ``"data"`` mesh axis and the parameters are replicated (the samples do not depend on
  it beyond float rounding);
- ``num`` samples as ``ceil(num / batch)`` rounds with keys ``fold_in(key, round)``;
- a progress bar over the samples, shown for every run (one batch included: it appears
  before the first compile, so a long single batch is never silent);
- gathering each round's outputs to the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import jax
from flax import nnx
from tqdm.auto import tqdm

from genmodels.core.types import Array, ConstrainFn, Context, State
from genmodels.train.distributed import is_lead, split_rounds
from genmodels.train.sharding import batch_sharded, data_mesh, replicated

__all__ = [
    "Runner",
    "batch_sharded_constrain",
    "decode_rounds",
    "resolve_sampler",
    "sampler_names",
    "sampling_mesh",
    "shard_batch",
    "split_model",
    "task_samples",
]


def split_model(model: nnx.Module):
    """``(graphdef, params, rest)``: a pure view of an nnx module for jitted sampling."""
    return nnx.split(model, nnx.Param, ...)


def sampling_mesh(batch: int):
    """The data mesh over all devices when there are several and they divide ``batch``,
    else ``None``."""
    ndev = jax.local_device_count()  # each process samples its own rounds
    return data_mesh(jax.local_devices()) if ndev > 1 and batch % ndev == 0 else None


def shard_batch(tree: Any, mesh) -> Any:
    """``tree`` with every leaf's leading (batch) axis constrained to ``mesh``'s data
    axis (``tree`` itself without a mesh). Traceable."""
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, batch_sharded(mesh))


def batch_sharded_constrain(constrain: ConstrainFn, mesh) -> ConstrainFn:
    """``constrain`` followed by a batch-sharding constraint on every leaf.

    Samplers apply their ``constrain`` hook to the prior draw and after every update, so
    the state carried through the loop is batch-sharded from the first step on, without
    the sampler knowing about devices.
    """
    if mesh is None:
        return constrain

    def fn(state: State, ctx: Context) -> State:
        return shard_batch(constrain(state, ctx), mesh)

    return fn


class Runner:
    """Compiled-call cache, device mesh, rounds and progress bar (module docstring).

    One runner per method object; it holds compiled functions only.
    """

    def __init__(self) -> None:
        self._cache: dict[Hashable, tuple[Callable, Any]] = {}

    def compile(
        self,
        model: nnx.Module,
        batch: int,
        options: Hashable,
        body: Callable[..., Any],
    ) -> Callable[..., Any]:
        """``fn(key, *args)`` running ``body`` jitted on ``model``'s current parameters.

        Args:
          model: the network (its parameters are read at every call of the result).
          batch: the batch size of one round (picks the mesh).
          options: everything else the traced ``body`` depends on (hashable); with the
            graph definition and ``batch`` it keys the compile cache.
          body: ``body(net, key, mesh, *args) -> pytree``, traceable.

        Returns:
          ``fn(key, *args)``.
        """
        graphdef, params, rest = split_model(model)
        ck = (graphdef, int(batch), options)
        if ck not in self._cache:
            mesh = sampling_mesh(batch)

            @jax.jit
            def run(params, rest, key, *args):
                net = nnx.merge(graphdef, params, rest)
                return body(net, key, mesh, *args)

            self._cache[ck] = (run, mesh)
        run, mesh = self._cache[ck]
        if mesh is not None:
            # parameters (e.g. restored onto one device) replicated over the batch's devices
            params, rest = jax.device_put((params, rest), replicated(mesh))
        return lambda key, *args: run(params, rest, key, *args)

    @staticmethod
    def rounds(
        num: int,
        batch: int,
        key: Array,
        fn: Callable[[Array, int], Any],
        *,
        desc: str = "sample",
        progress: bool = True,
    ) -> Iterator[Any]:
        """Host outputs of ``ceil(num / batch)`` rounds of ``fn(fold_in(key, r), r)``.

        Args:
          num: samples wanted (the last round may make more; callers keep ``num``).
          batch: samples per round.
          key: PRNG key; round ``r`` gets ``fold_in(key, r)``.
          fn: one round, ``(key, r) -> pytree`` (device arrays are fetched to the host).
          desc: progress-bar label.
          progress: show the bar (always on from the command line).

        Yields:
          Each round's output, on the host.
        """
        rounds = max(math.ceil(num / batch), 0)
        bar = tqdm(total=num, desc=desc, unit="sample", disable=not (progress and is_lead()))
        with bar:  # several processes: rounds split over them (train/distributed.py)
            for r, out in split_rounds(rounds, lambda r: fn(jax.random.fold_in(key, r), r)):
                bar.update(min(batch, num - r * batch))
                yield out


def sampler_names(processes: Any, default: str) -> tuple[str, ...]:
    """Registry names that can integrate ``processes``, ``default`` first (a method's
    ``samplers``)."""
    from genmodels.samplers.registry import get_sampler, samplers_for

    get_sampler(default, processes)  # a clear error for a bad default
    return (default, *sorted(n for n in samplers_for(processes) if n != default))


def resolve_sampler(
    processes: Any,
    name: str | None,
    steps: int | None,
    config: Any,
    **overrides: Any,
) -> tuple[str, int | None, Any]:
    """``(name, steps, options)`` of one sampling call, defaults from the method config.

    Args:
      processes: leaf -> process (their kind picks the implementation).
      name: the requested sampler (``None``: ``config.sampler``).
      steps: requested steps (``None``: ``config.sample_steps``, or adaptive for an
        adaptive entry such as ``ode`` or ``fhs``).
      config: the recipe config; fields named like the options' fields (``snr``,
        ``sample_eps``, ...) override the entry's defaults.
      overrides: explicit option values (e.g. a BOSS ``grid``, a ``precision``); ``None``
        values are ignored.

    Returns:
      The registry name, the step count (``None`` = adaptive) and the options dataclass.

    Raises:
      ValueError: unknown or incompatible sampler, non-positive steps, or an override the
        sampler does not take.
    """
    import dataclasses

    from genmodels.samplers.registry import get_sampler

    name = name or config.sampler
    entry = get_sampler(name, processes)
    if steps is None and not entry.adaptive:
        steps = config.sample_steps
    if steps is not None and int(steps) < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    fields = {f.name for f in dataclasses.fields(entry.options)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ValueError(
            f"sampler {name!r} takes no option {', '.join(unknown)}; its options: "
            f"{', '.join(sorted(fields)) or 'none'}"
        )
    from_config = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    options = entry.make_options(**{**from_config, **given})
    return name, (None if steps is None else int(steps)), options


def decode_rounds(
    decode: Callable, fn: Callable[[Array], Any], num: int, batch: int, key: Array, progress=True
) -> list:
    """``decode(state, ctx)`` (a task's, on the host) of every round of a compiled
    ``fn(key) -> (state, ctx, ...)`` (:meth:`Runner.rounds`: round ``r`` uses
    ``fold_in(key, r)``)."""
    rounds = Runner.rounds(num, batch, key, lambda k, r: fn(k)[:2], progress=progress)
    return [decode(state, ctx) for state, ctx in rounds]


def task_samples(task: Any, parts: Callable[[], list], num: int, options: dict) -> Any:
    """``task.collate(parts(), num, **options)``, refusing options the task does not take
    before any sampling (``options``: the task's own, e.g. ``correction`` for molecules).

    Raises:
      ValueError: an option the task does not take.
    """
    try:
        task.collate([], 0, **options)
    except TypeError as e:
        raise ValueError(
            f"unknown options {sorted(options)} for sampling {type(task).__name__} objects"
        ) from e
    return task.collate(parts(), num, **options)
