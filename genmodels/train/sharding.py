"""Data parallelism with ``jax.sharding``: batch sharded, parameters replicated.

Single host: :func:`data_mesh` spans all local devices. Multi-host: call
``jax.distributed.initialize()`` (coordinator address, process count and id from the
cluster environment, e.g. SLURM or a TPU pod) in every process *before* any other JAX
call; ``jax.devices()`` then lists the devices of every host, the same mesh spans them,
and each process feeds its own slice of the global batch (see
:func:`global_batch_from_local`). Nothing else in the training loop changes.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices)."""
    devs = np.asarray(devices if devices is not None else jax.devices())
    return Mesh(devs, ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that puts a full copy on every device (parameters, optimizer state)."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (batch) axis over the ``"data"`` axis."""
    return NamedSharding(mesh, P("data"))


def shard_batch(batch, mesh: Mesh):
    """Place a host batch on the mesh, split along its leading axis.

    Raises:
      ValueError: the batch size is not a multiple of the number of devices.
    """
    n = mesh.devices.size
    for k, v in batch.items():
        if v.shape[0] % n:
            raise ValueError(
                f"batch leaf {k!r} has {v.shape[0]} examples, not a multiple of the {n} "
                "devices; choose a batch size divisible by the device count"
            )
    return jax.device_put(batch, batch_sharded(mesh))


def process_rows(batch_size: int, mesh: Mesh) -> slice:
    """This process's rows of a global batch of ``batch_size`` sharded over ``mesh``
    (all of them in a single process)."""
    idx = batch_sharded(mesh).addressable_devices_indices_map((batch_size,))
    starts = sorted({(i[0].start or 0, i[0].stop or batch_size) for i in idx.values()})
    lo, hi = starts[0][0], starts[-1][1]
    if sum(b - a for a, b in starts) != hi - lo:
        raise ValueError("this process's devices do not hold one contiguous block of the batch")
    return slice(lo, hi)


def put_replicated(tree, mesh: Mesh):
    """``tree`` (the same values in every process) as arrays replicated over ``mesh``,
    which may span several processes."""
    sh = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sh, np.asarray(x)), tree)


def to_host(x) -> np.ndarray:
    """A replicated (or single-process) array as a host array, in every process."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


def global_batch_from_local(local_batch, mesh: Mesh):
    """Multi-host: assemble the global batch from each process's local slice."""
    sh = batch_sharded(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sh, np.asarray(x)), local_batch
    )
