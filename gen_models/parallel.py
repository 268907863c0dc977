"""Data parallelism: one per-device step mapped over a 1-D mesh of all devices.

Steps are written per device with collectives over `DATA_AXIS`; here they are wrapped
with `jax.shard_map` under `jax.jit`: the state is replicated, the batch split along
its first axis. Host batches become global arrays with
`jax.make_array_from_process_local_data`, which also covers multi-host runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gen_models.models.base import DATA_AXIS

REPLICATED = PartitionSpec()
SPLIT = PartitionSpec(DATA_AXIS)


def make_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh named `DATA_AXIS` over `devices` (default: all devices)."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (DATA_AXIS,))


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's slice of a global batch -> global arrays split over `DATA_AXIS`."""
    sharding = NamedSharding(mesh, SPLIT)
    return {
        name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
        for name, value in batch.items()
    }


def replicate(tree, mesh: Mesh):
    """Places a pytree on every device of `mesh`, unsplit."""
    return jax.device_put(tree, NamedSharding(mesh, REPLICATED))


def train_step(step_fn: Callable, mesh: Mesh) -> Callable:
    """jit(shard_map(step_fn)) taking (state, batch, base_rng).

    The step's key is `fold_in(base_rng, state.step)`, so a resumed run draws the
    same randomness as an uninterrupted one. The input state's buffers are donated.
    """
    mapped = jax.shard_map(
        step_fn,
        mesh=mesh,
        in_specs=(REPLICATED, SPLIT, REPLICATED),
        out_specs=(REPLICATED, REPLICATED),
    )

    def step(state, batch, base_rng):
        return mapped(state, batch, jax.random.fold_in(base_rng, state.step))

    return jax.jit(step, donate_argnums=(0,))


def eval_step(step_fn: Callable, mesh: Mesh) -> Callable:
    """jit(shard_map(step_fn)) for steps returning metrics already psum'd over devices."""
    return jax.jit(
        jax.shard_map(
            step_fn, mesh=mesh, in_specs=(REPLICATED, SPLIT, REPLICATED), out_specs=REPLICATED
        )
    )
