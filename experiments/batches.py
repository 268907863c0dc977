"""What the training loop feeds its compiled step: one call's batches, on the devices.

A call takes `train.steps_per_call` = K steps (K >= 1) of one trial or of a vectorised group
of T trials. Its batches are those the host pipeline makes for steps s .. s + K - 1 (a
function of (seed, step): resume stays exact), laid out as the program wants them: (B, ...)
for one step of one trial, (K, B, ...) for several, (T, B, ...) or (T, K, B, ...) for a
group, the batch axis split over the mesh. With `train.device_data_bytes` large enough for
the decoded train split, the split is placed on the devices once and each call gathers its
batches there from the same indices (`data.train_indices`): the same pixels, and no images
cross from the host per step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gen_models import data, parallel
from gen_models.models import DATA_AXIS


def _spec(leading: int) -> PartitionSpec:
    """Batches with `leading` axes (trials, steps) before the batch axis."""
    return PartitionSpec(*(None,) * leading, DATA_AXIS)


def _layout(per_trial: Sequence[Sequence[Any]], group: bool, multi_step: bool) -> Any:
    """Stacks [trial][step] host values into the call's layout (numpy, on the host)."""
    steps = [np.stack(s) if multi_step else s[0] for s in per_trial]
    return np.stack(steps) if group else steps[0]


def _grouped(iterators: dict[int, Iterator], seeds: Sequence[int], steps: int) -> list[list[Any]]:
    """[trial][step] values of one call; trials of one seed share their iterator's values."""
    drawn = {seed: [next(it) for _ in range(steps)] for seed, it in iterators.items()}
    return [drawn[seed] for seed in seeds]


def _from_step(source: Callable[..., Iterator], config: ml_collections.ConfigDict, start_step: int):
    """`source` (the train pipeline's batches or indices) of this process from `start_step`,
    given a seed."""
    return functools.partial(
        source,
        config.dataset,
        batch_size=config.train.batch_size,
        start_step=start_step,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )


def _call_sharding(mesh, group: bool, steps: int) -> NamedSharding:
    """How a call's arrays lie on the mesh: split over the batch axis, after the trial and
    step axes that groups and several steps per call add."""
    return NamedSharding(mesh, _spec(int(group) + int(steps > 1)))


def host_batches(
    config: ml_collections.ConfigDict, seeds: Sequence[int], mesh, start_step: int
) -> Iterator[dict[str, jax.Array]]:
    """Each call's batches, read on the host and transferred in one go."""
    steps, group = config.train.steps_per_call, len(seeds) > 1
    make = _from_step(data.make_train_iterator, config, start_step)
    sharding = _call_sharding(mesh, group, steps)
    if not group and steps == 1:  # on the devices ahead, on the pipeline's thread
        yield from make(seed=seeds[0], transform=functools.partial(parallel.shard_batch, mesh=mesh))
        return
    iterators = {seed: make(seed=seed) for seed in dict.fromkeys(seeds)}
    while True:
        per_trial = _grouped(iterators, seeds, steps)
        yield {
            k: jax.make_array_from_process_local_data(
                sharding, _layout([[b[k] for b in s] for s in per_trial], group, steps > 1)
            )
            for k in per_trial[0][0]
        }


def resident_batches(
    config: ml_collections.ConfigDict, seeds: Sequence[int], mesh, start_step: int
) -> Iterator[dict[str, jax.Array]] | None:
    """Each call's batches gathered on the devices from a copy of the train split placed
    there once; None when the decoded split is larger than `train.device_data_bytes`."""
    arrays = data.train_split_arrays(config.dataset, config.train.device_data_bytes)
    if arrays is None:
        return None
    return _gathered(config, seeds, mesh, start_step, arrays)


def _gathered(config, seeds, mesh, start_step, arrays) -> Iterator[dict[str, jax.Array]]:
    steps, group = config.train.steps_per_call, len(seeds) > 1
    table = jax.device_put(arrays, NamedSharding(mesh, PartitionSpec()))
    index_sharding = _call_sharding(mesh, group, steps)
    gather = jax.jit(
        lambda table, index: {k: jnp.take(v, index, axis=0) for k, v in table.items()},
        out_shardings=index_sharding,
    )
    make = _from_step(data.train_indices, config, start_step)
    iterators = {seed: make(seed=seed) for seed in dict.fromkeys(seeds)}
    while True:
        index = _layout(_grouped(iterators, seeds, steps), group, steps > 1)
        yield gather(table, jax.make_array_from_process_local_data(index_sharding, index))


def batches(
    config: ml_collections.ConfigDict, seeds: Sequence[int], mesh, start_step: int
) -> Iterator[dict[str, jax.Array]]:
    """The calls' batches of trials with `seeds` (one seed: a single run), from `start_step`."""
    resident = None
    if config.train.device_data_bytes:
        resident = resident_batches(config, seeds, mesh, start_step)
    return resident or host_batches(config, seeds, mesh, start_step)
