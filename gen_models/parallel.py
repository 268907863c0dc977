"""Data parallelism: one per-device step mapped over a 1-D mesh of all devices.

Steps are written per device with collectives over `DATA_AXIS` (gradients and metrics
`pmean`'d, batch-norm statistics synced). Here they are mapped over the mesh with
`jax.shard_map` under `jax.jit` (backend 'shard_map', the default, which spans hosts after
`jax.distributed.initialize()`) or with `jax.pmap` (backend 'pmap'); both keep the state
replicated and split the batch along its first axis, so the training loop is the same.

Both use pmap's semantics for collectives (`check_vma=False`): the gradient of a replicated
parameter is the device's own, and the step's `pmean` makes it the global batch's. (With
shard_map's default `check_vma=True`, autodiff already sums gradients over devices, and a
`pmean` on top would train N devices with an N times larger gradient.)

Host batches become global arrays with `jax.make_array_from_process_local_data`: process p
passes its p-th contiguous slice of the global batch, which also covers multi-host runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gen_models.models.base import DATA_AXIS

BACKENDS = ('shard_map', 'pmap')
REPLICATED = PartitionSpec()
SPLIT = PartitionSpec(DATA_AXIS)


def make_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh named `DATA_AXIS` over `devices` (default: all devices of all processes)."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (DATA_AXIS,))


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's slice of a global batch -> global arrays split over `DATA_AXIS`.

    Raises ValueError when the slice does not split evenly over this process's devices.
    """
    sharding = NamedSharding(mesh, SPLIT)
    local_devices = len(mesh.local_devices)
    for name, value in batch.items():
        if len(value) % local_devices:
            raise ValueError(
                f'batch {name!r} has {len(value)} examples on this process, which cannot be '
                f'split evenly over its {local_devices} devices'
            )
    return {
        name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
        for name, value in batch.items()
    }


def replicate(tree, mesh: Mesh):
    """Places a pytree on every device of `mesh`, unsplit."""
    return jax.device_put(tree, NamedSharding(mesh, REPLICATED))


def train_step(step_fn: Callable, mesh: Mesh, backend: str = 'shard_map') -> Callable:
    """(state, batch, base_rng) -> (state, metrics): `step_fn` on every device of `mesh`.

    The step's key is `fold_in(base_rng, state.step)`, so a resumed run draws the
    same randomness as an uninterrupted one. The input state's buffers are donated.
    """

    def keyed_step(state, batch, base_rng):
        return step_fn(state, batch, jax.random.fold_in(base_rng, state.step))

    return _map_over_devices(keyed_step, mesh, backend, donate_state=True)


def eval_step(step_fn: Callable, mesh: Mesh, backend: str = 'shard_map') -> Callable:
    """(state, batch, rng) -> metrics, for steps returning metrics already psum'd over devices."""
    return _map_over_devices(step_fn, mesh, backend, donate_state=False)


def _map_over_devices(fn: Callable, mesh: Mesh, backend: str, donate_state: bool) -> Callable:
    """Maps fn(state, batch, rng) over `mesh`: state and rng replicated, batch split along
    its first axis; outputs must be the same on every device and come back replicated."""
    donate = (0,) if donate_state else ()
    if backend == 'shard_map':
        return jax.jit(
            jax.shard_map(
                fn,
                mesh=mesh,
                in_specs=(REPLICATED, SPLIT, REPLICATED),
                out_specs=REPLICATED,
                check_vma=False,
            ),
            donate_argnums=donate,
        )
    if backend == 'pmap':
        return _pmapped(fn, mesh, donate)
    raise ValueError(f'unknown parallel backend {backend!r}; one of {BACKENDS}')


def _pmapped(fn: Callable, mesh: Mesh, donate: tuple[int, ...]) -> Callable:
    """`jax.pmap` of fn over the devices of `mesh`, taking and returning the same global
    arrays as the shard_map backend: the batch gets a leading device axis on the way in, and
    on several processes the outputs (which pmap makes host-local) are made global again."""
    mapped = jax.pmap(
        fn,
        axis_name=DATA_AXIS,
        in_axes=(None, 0, None),
        out_axes=None,
        devices=tuple(mesh.devices.flat),
        axis_size=mesh.size,
        donate_argnums=donate,
    )
    per_device = jax.jit(
        lambda batch: jax.tree.map(lambda x: x.reshape(mesh.size, -1, *x.shape[1:]), batch),
        out_shardings=NamedSharding(mesh, SPLIT),
    )

    def step(state, batch, rng):
        outputs = mapped(state, per_device(batch), rng)
        if jax.process_count() == 1:
            return outputs
        return multihost_utils.host_local_array_to_global_array(outputs, mesh, REPLICATED)

    return step
