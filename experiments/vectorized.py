"""Vectorised sweeps: trials that differ only in shape-free hyperparameters train as one.

Trials whose configs share a structure (`programs.structure`: everything but the learning
rate, loss weights and seed) run one compiled program, `jax.vmap` over their stacked train
states, batches (each trial keeps its seed's data order), PRNG keys and hyperparameters. Each
trial still gets its own workdir with the files of a normal run (config.json,
metrics.jsonl, checkpoints, samples, results.json), written by the same functions (the
loop reuses train.py's helpers and mirrors `train_and_evaluate`), so a
vectorised trial resumes, evaluates and reports like one trained alone, and gives the same
numbers to float tolerance. Evaluation, sample grids and checkpoints work on each trial's
slice of the stacked state. Single-process runs only (what sweeps are).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from jax.sharding import NamedSharding, PartitionSpec

from experiments import environment, evaluate, logs, programs, runtime, train
from gen_models import data
from gen_models.models import DATA_AXIS, TrainState

# Stacked batches (trials, batch, ...) are split over the mesh along the batch axis.
TRIALS_SPLIT = PartitionSpec(None, DATA_AXIS)


def plan(configs: Sequence[ml_collections.ConfigDict], size: int) -> list[list[int]]:
    """Indices of `configs` in groups of at most `size` that share a structure, in order."""
    by_structure: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        by_structure.setdefault(programs.structure(config), []).append(index)
    return [
        members[start : start + size]
        for members in by_structure.values()
        for start in range(0, len(members), size)
    ]


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _trial(tree: Any, index: int) -> Any:
    return jax.tree.map(lambda x: x[index], tree)


def _stacked_batch(batches: Sequence[dict[str, np.ndarray]], mesh) -> dict[str, jax.Array]:
    sharding = NamedSharding(mesh, TRIALS_SPLIT)
    return {
        name: jax.make_array_from_process_local_data(sharding, np.stack([b[name] for b in batches]))
        for name in batches[0]
    }


def _restore(runs: list[runtime.Run], managers) -> tuple[list[TrainState], int]:
    """Every trial's state at the newest step that all of them have a checkpoint of."""
    common = set.intersection(*(set(manager.all_steps()) for manager in managers))
    if not common:
        return [runtime.initial_state(run) for run in runs], 0
    step = max(common)
    states = [
        manager.restore(runtime.initial_state(run), step=step)[0]
        for run, manager in zip(runs, managers, strict=True)
    ]
    return states, step


def train_group(
    configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str | Path]
) -> list[dict[str, Any] | Exception]:
    """Trains configs of one structure together; per trial its results, or the
    NonFiniteError that stopped it (the others go on). Resumes like `train_and_evaluate`."""
    runs = [runtime.prepare(config) for config in configs]
    if len({programs.structure(config) for config in configs}) != 1:
        raise ValueError('vectorised trials must differ only in ' + ', '.join(programs.SHAPE_FREE))
    workdirs = [Path(w) for w in workdirs]
    lead, num = runs[0], len(runs)
    train_config, mesh = lead.config.train, lead.mesh
    compiled = programs.programs(lead.config, lead.info, mesh)
    managers = [runtime.checkpointer(run, w) for run, w in zip(runs, workdirs, strict=True)]
    states, start_step = _restore(runs, managers)
    if start_step:
        tqdm.tqdm.write(f'Resuming {num} trials from their checkpoints of step {start_step}.')
    state = jax.device_put(_stack(states), NamedSharding(mesh, PartitionSpec()))
    writers = [logs.MetricWriter(w, resume_step=start_step) for w in workdirs]
    for run, workdir in zip(runs, workdirs, strict=True):
        logs.write_json(workdir / 'config.json', run.config.to_dict())
        logs.write_json(workdir / 'environment.json', environment.collect_environment())
    # The data order is a function of the seed alone (the dataset config is shared), so
    # trials with one seed share one iterator.
    iterators = {
        seed: data.make_train_iterator(
            lead.config.dataset,
            batch_size=train_config.batch_size,
            seed=seed,
            start_step=start_step,
        )
        for seed in dict.fromkeys(run.config.seed for run in runs)
    }
    keys = jnp.stack([run.keys['train'] for run in runs])
    hparams = _stack([programs.hyperparameters(run.config) for run in runs])
    num_steps = train_config.num_steps
    timing = {'compile_s': None, 'wait_s': 0.0, 'window_start': time.perf_counter()}
    timing['window_steps'] = 0
    window: list[dict[str, jax.Array]] = []
    last_train: list[dict[str, float]] = [{} for _ in runs]
    extra: list[Any] = [None] * num
    failed: dict[int, Exception] = {}
    progress = tqdm.tqdm(
        total=num_steps,
        initial=start_step,
        unit='step',
        desc=f'{num} trials',
        dynamic_ncols=True,
        disable=not train_config.progress_bar,
    )

    def each_trial(action, *args) -> None:
        """action(i, run, *args) for the trials still going; a NaN/Inf stops that trial alone."""
        for i, run in enumerate(runs):
            if i not in failed:
                try:
                    action(i, run, *args)
                except train.NonFiniteError as error:
                    failed[i] = error

    def log(i, run, step, stacked_window):
        last_train[i] = train.log_train(
            step,
            [_trial(metrics, i) for metrics in stacked_window],
            dict(timing),  # each trial's rate is the group's
            writers[i],
            progress,
            train_config.batch_size,
            managers[i],
        )

    def periodic(i, run, step, stopping):
        """What train_and_evaluate does between steps: eval, metrics, samples, checkpoint."""
        config, trial_state = run.config, _trial(state, i)
        if train.is_due(step, train_config.eval_every, num_steps):
            writers[i].write_scalars(step, runtime.evaluate_state(run, trial_state), prefix='eval')
        if config.eval.every and train.is_due(step, config.eval.every, num_steps):
            extra[i] = evaluate.compute_metrics(run, trial_state)
            writers[i].write_scalars(step, extra[i][0], prefix='eval')
        if train.is_due(step, train_config.sample_every, num_steps):
            runtime.save_samples(run, trial_state, workdirs[i], f'{step:07d}', writers[i], step)
        if train.is_due(step, train_config.checkpoint_every, num_steps) or stopping:
            train.save_checkpoint(managers[i], step, trial_state)

    try:
        with train.stop_requests() as stop:
            for step in range(start_step + 1, num_steps + 1):
                wait_start = time.perf_counter()
                by_seed = {seed: next(iterator) for seed, iterator in iterators.items()}
                batch = _stacked_batch([by_seed[run.config.seed] for run in runs], mesh)
                timing['wait_s'] += time.perf_counter() - wait_start
                compile_start = time.perf_counter()
                state, metrics = compiled.vmapped_train_step(state, batch, keys, hparams)
                if timing['compile_s'] is None:
                    jax.block_until_ready(state)
                    timing['compile_s'] = time.perf_counter() - compile_start
                    timing['window_start'] = time.perf_counter()
                else:
                    timing['window_steps'] += 1
                window.append(metrics)
                progress.update(1)
                if train.is_due(step, train_config.log_every, num_steps):
                    each_trial(log, step, jax.device_get(window))
                    timing.update(window_start=time.perf_counter(), window_steps=0, wait_s=0.0)
                    window = []
                periodic_due = stop or any(
                    every and train.is_due(step, every, num_steps)
                    for every in (
                        train_config.eval_every,
                        lead.config.eval.every,
                        train_config.sample_every,
                        train_config.checkpoint_every,
                    )
                )
                if periodic_due:
                    with train.excluded_from_rate(timing):
                        each_trial(periodic, step, bool(stop))
                if stop:
                    raise train.TrainingInterrupted(step, stop[0])
    finally:
        progress.close()
        for writer, manager in zip(writers, managers, strict=True):
            writer.close()
            manager.close()

    outcomes: list[dict[str, Any] | Exception] = []
    for i, (run, workdir) in enumerate(zip(runs, workdirs, strict=True)):
        if i in failed:
            outcomes.append(failed[i])
            continue
        trial_state = _trial(state, i)
        if run.config.eval.every and extra[i] is None:  # a finished group that was resumed
            extra[i] = evaluate.compute_metrics(run, trial_state)
        values, protocols = extra[i] or ({}, {})
        eval_metrics = {**runtime.evaluate_state(run, trial_state), **values}
        outcomes.append(
            runtime.write_results(
                run,
                workdir,
                num_steps,
                {f'eval/{k}': v for k, v in eval_metrics.items()},
                train={f'train/{k}': v for k, v in last_train[i].items()},
                compile_seconds=timing['compile_s'],
                metric_protocols=protocols,
                vectorized_trials=num,
            )
        )
    return outcomes
