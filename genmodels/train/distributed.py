"""Several processes with ``jax.distributed``: start-up, who writes, sampling rounds.

A multi-process run is the single-process one with a global device mesh: the training
loop replicates the state over every process's devices and each process reads only its
rows of every global batch (:mod:`genmodels.train.sharding`); orbax writes the
checkpoints cooperatively; sampling gives round ``r`` (key ``fold_in(key, r)``) to process
``r mod P`` and all-gathers the rounds, so the samples are those of one process beyond
float rounding. Process 0 alone logs, draws progress bars and writes files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

#: environment variables by which JAX's cluster detection finds a multi-process job
_CLUSTER_SIGNS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def cluster_detected(env=os.environ) -> bool:
    """A multi-process job JAX can join without options: SLURM or Open MPI with more than
    one task, a multi-host Cloud TPU slice, or a Kubernetes JobSet."""
    many = any(int(env.get(k, "1") or 1) > 1 for k in _CLUSTER_SIGNS)
    return many or "," in env.get("TPU_WORKER_HOSTNAMES", "") or "JOBSET_NAME" in env


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Join a multi-process run (before any other JAX computation).

    Args:
      coordinator: ``HOST:PORT`` of process 0's coordination service.
      num_processes: the number of processes.
      process_id: this process's index in ``[0, num_processes)``.
        All three or none: none auto-detects a cluster (:func:`cluster_detected`), where
        ``jax.distributed.initialize()`` reads them from the environment.

    Returns:
      Whether this is a multi-process run.

    Raises:
      ValueError: only some of the three were given, or the id is out of range.
    """
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError("--coordinator, --num-processes and --process-id go together")
    if all(given) and not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id {process_id} is not in [0, {num_processes})")
    if not any(given) and not cluster_detected():
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return jax.process_count() > 1


def is_lead() -> bool:
    """Process 0, which logs and writes files (every process in a single-process run)."""
    return jax.process_index() == 0


def split_rounds(n: int, run: Callable[[int], Any]) -> Iterator[tuple[int, Any]]:
    """``(r, host output of run(r))`` for ``r = 0 .. n - 1``, in order, in every process.

    One process runs every round. With ``P`` processes, process ``p`` runs rounds
    ``p, p + P, ...`` (one past the end repeats the last round, discarded) and the
    outputs (pytrees of arrays of equal shapes) are all-gathered after each group of
    ``P``.
    """
    nproc, me = jax.process_count(), jax.process_index()
    if nproc == 1:
        for r in range(n):
            yield r, jax.device_get(run(r))
        return
    from jax.experimental import multihost_utils

    for first in range(0, n, nproc):
        mine = jax.tree.map(np.asarray, jax.device_get(run(min(first + me, n - 1))))
        every = multihost_utils.process_allgather(mine)  # leading axis: the process
        for p in range(min(nproc, n - first)):
            yield first + p, jax.tree.map(lambda x, p=p: np.asarray(x[p]), every)
