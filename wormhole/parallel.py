"""Devices, meshes and shardings: how a run spreads over devices and hosts.

Everything here is JAX's own runtime: :func:`jax.distributed.initialize` joins the processes
of a multi-host run, a :class:`~jax.sharding.Mesh` with one ``data`` axis holds the devices,
:class:`~jax.sharding.NamedSharding` says how arrays lie on it, and the compiler inserts the
collectives (gradient all-reduce, gathers of sharded parameters). The OT engine splits its
solves over the ``data`` axis of the mesh in context (:func:`jax.set_mesh`) with
:func:`jax.shard_map` (see :mod:`wormhole.ot.batched`).

Data parallelism: each device holds ``batch_size / devices`` clouds of a batch and solves its
share of the in-batch OT problems; parameters and optimiser state are replicated, or sharded
over the same axis (``train.mesh.shard_params``: each large array split along one of its
dimensions, gathered by the compiler where it is used).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from wormhole.configlib import ConfigError

__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "check_batch_size",
    "encode_mesh",
    "global_rows",
    "initialize_distributed",
    "local_mesh",
    "make_mesh",
    "on_local_devices",
    "replicated",
    "state_shardings",
    "to_local",
    "use_cpu_devices",
]

DATA_AXIS = "data"

# Parameters smaller than this stay replicated under shard_params: splitting a bias vector
# costs a collective and saves nothing.
_MIN_SHARDED_SIZE = 2 ** 10


def use_cpu_devices(count: int) -> None:
    """Run JAX's CPU platform as ``count`` devices (``jax_num_cpu_devices``; 0: leave it).

    On a CPU each device runs its share of the batch's OT solves on its own thread, so a
    multi-core machine solves several at once. Only possible before JAX first runs
    anything; afterwards a different count is left as it is, with a warning.
    """
    if count <= 0:
        return
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        have = len(jax.devices("cpu"))
        if have != count:
            warnings.warn(f"train.mesh.cpu_devices={count} has no effect: JAX's CPU platform "
                          f"already runs as {have} device(s) in this process. Set it before "
                          f"JAX runs anything (scripts/train.py does), or start a new "
                          f"process.", RuntimeWarning, stacklevel=2)


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Join a multi-process run with :func:`jax.distributed.initialize` (once per process).

    Each argument falls back to ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``; left unset everywhere, JAX detects them on the clusters it knows
    (SLURM, Open MPI, Cloud TPU pods). Must run before anything touches a device.
    """
    if jax.distributed.is_initialized():
        return
    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    except (ValueError, RuntimeError) as err:
        raise ConfigError(f"train.distributed: could not join the multi-process run "
                          f"(coordinator {coordinator_address!r}, {num_processes} processes, "
                          f"process id {process_id}): {err}") from None


def make_mesh(data: int = -1) -> Mesh:
    """A mesh with one ``data`` axis over ``data`` devices (-1: every device of every process).

    With several processes the mesh must hold every device, so that each process feeds its
    own devices.
    """
    devices = jax.devices()
    if data == -1:
        data = len(devices)
    if not 1 <= data <= len(devices):
        raise ConfigError(f"train.mesh.data ({data}) must be -1 (all devices) or between 1 and "
                          f"the {len(devices)} devices available.")
    if jax.process_count() > 1 and data != len(devices):
        raise ConfigError(f"train.mesh.data ({data}) must cover all {len(devices)} devices of "
                          f"the {jax.process_count()} processes in a multi-process run; use -1.")
    return Mesh(np.array(devices[:data]), (DATA_AXIS,))


def local_mesh() -> Mesh:
    """This process's own devices on one ``data`` axis (evaluation and inference)."""
    return Mesh(np.array(jax.local_devices()), (DATA_AXIS,))


def encode_mesh() -> Mesh | None:
    """The mesh an inference call spreads its chunks over: the one in context
    (:func:`jax.set_mesh`), else this process's devices; ``None`` with a single device."""
    context = jax.sharding.get_mesh()
    if context is not None and not context.empty and DATA_AXIS in context.axis_names:
        return context if context.size > 1 else None
    return local_mesh() if jax.local_device_count() > 1 else None


def on_local_devices():
    """A context in which OT solves split over :func:`encode_mesh`'s devices (a no-op with
    one): inference encodes and solves on the same devices."""
    mesh = encode_mesh()
    return contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A batch must split evenly: every device holds the same number of clouds."""
    count = mesh.shape[DATA_AXIS]
    if batch_size % count:
        raise ConfigError(f"train.batch_size ({batch_size}) must be divisible by the number "
                          f"of devices ({count}) for data-parallel training; use a multiple "
                          f"of {count} or set train.mesh.data.")


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The leading (cloud) axis split over the ``data`` axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def _leaf_spec(shape: tuple[int, ...], count: int) -> PartitionSpec:
    """Split the largest dimension that divides by ``count`` (none: replicate)."""
    if count == 1 or int(np.prod(shape, dtype=np.int64)) < _MIN_SHARDED_SIZE:
        return PartitionSpec()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % count == 0:
            return PartitionSpec(*([None] * axis + [DATA_AXIS]))
    return PartitionSpec()


def state_shardings(state, mesh: Mesh, shard_params: bool = False):
    """A sharding for every leaf of ``state``: replicated, or with ``shard_params`` each
    large array split over the ``data`` axis along one of its dimensions (optimiser moments
    follow their parameters, as they have the same shapes)."""
    count = mesh.shape[DATA_AXIS]

    def one(leaf):
        if not shard_params:
            return replicated(mesh)
        return NamedSharding(mesh, _leaf_spec(tuple(np.shape(leaf)), count))

    return jax.tree.map(one, state)


def global_rows(shape: tuple[int, ...], sharding: NamedSharding,
                read: Callable[[slice], np.ndarray]) -> jax.Array:
    """A global array of ``shape`` whose rows lie as ``sharding`` says, built from
    ``read(rows)`` calls for this process's devices only: each process reads just its share
    (with memory-mapped clouds, just those rows from disk)."""

    def shard(index):
        rows = index[0] if index else slice(None)
        return read(rows)

    return jax.make_array_from_callback(shape, sharding, shard)


def to_local(tree, mesh: Mesh | None = None):
    """``tree`` (replicated or sharded global arrays) as full copies on every device of this
    process's ``mesh`` (default :func:`local_mesh`), for evaluation and inference that each
    process runs on its own."""
    mesh = mesh or local_mesh()

    def one(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            if leaf.is_fully_replicated:
                leaf = leaf.addressable_data(0)
            else:
                from jax.experimental import multihost_utils

                leaf = multihost_utils.process_allgather(leaf, tiled=True)
        return jax.device_put(leaf, replicated(mesh))

    return jax.tree.map(one, tree)
