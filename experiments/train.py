"""train_and_evaluate(config, workdir): the training loop, model-agnostic.

Resumes from the newest readable checkpoint automatically; the data order and every
PRNG key are functions of (seed, step), so an interrupted and resumed run computes the
same numbers as one that never stopped. SIGINT/SIGTERM save a checkpoint and stop; a
non-finite loss stops the run and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from experiments import best_checkpoint, environment, evaluate, logs, runtime
from gen_models import data, parallel


class NonFiniteError(RuntimeError):
    """Training produced NaN or Inf; the last good checkpoint is left untouched."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint of `step` was written."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum
        super().__init__(
            f'interrupted by signal {signum} at step {step}; checkpoint saved. '
            'Run the same command again to resume.'
        )


@contextlib.contextmanager
def stop_requests():
    """Collects SIGINT/SIGTERM into a flag the loop checks between steps."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def excluded_from_rate(timing: dict[str, Any]):
    """Keeps eval, sampling and checkpoint time out of the measured training rate."""
    start = time.perf_counter()
    yield
    timing['window_start'] += time.perf_counter() - start


def is_due(step: int, every: int, last: int) -> bool:
    """Whether a periodic action (log, eval, checkpoint) falls on `step`: every `every`
    steps and at the `last` one."""
    return step % every == 0 or step == last


def _all_finite(tree: Any) -> bool:
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return bool(jnp.all(jnp.stack(leaves))) if leaves else True


def _mean_metrics(window: list[dict[str, jax.Array]]) -> dict[str, float]:
    stacked = jax.device_get(jax.tree.map(lambda *xs: jnp.stack(xs), *window))
    return {name: float(np.mean(values)) for name, values in stacked.items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming if it holds checkpoints); returns results."""
    workdir = Path(workdir)
    run = runtime.prepare(config)
    train_config = config.train
    is_lead = jax.process_index() == 0
    workdir.mkdir(parents=True, exist_ok=True)

    manager = runtime.checkpointer(run, workdir)
    best = (
        best_checkpoint.BestCheckpoint(workdir, config.eval.keep_best, config.eval.keep_best_mode)
        if config.eval.keep_best
        else None
    )
    restored = runtime.restore(run, manager)
    state, start_step = restored or (runtime.initial_state(run), 0)
    if restored is not None:
        tqdm.tqdm.write(f'Resuming {workdir} from the checkpoint of step {start_step}.')
    writer = logs.MetricWriter(workdir, resume_step=start_step, enabled=is_lead)
    if is_lead:
        logs.write_json(workdir / 'config.json', config.to_dict())
        logs.write_json(workdir / 'environment.json', environment.collect_environment())

    num_steps = train_config.num_steps
    step_fn = runtime.train_step(run)
    batches = data.make_train_iterator(
        config.dataset,
        batch_size=train_config.batch_size,
        seed=config.seed,
        start_step=start_step,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        transform=functools.partial(parallel.shard_batch, mesh=run.mesh),  # on the devices ahead
    )
    timing = {
        'compile_s': None,
        'wait_s': 0.0,
        'window_start': time.perf_counter(),
        'window_steps': 0,
    }
    window: list[dict[str, jax.Array]] = []
    last_train: dict[str, float] = {}
    extra = None  # (values, protocols) of config.eval.metrics, when they are due in training
    progress = tqdm.tqdm(
        total=num_steps,
        initial=start_step,
        unit='step',
        dynamic_ncols=True,
        disable=not (train_config.progress_bar and is_lead),
    )
    try:
        with stop_requests() as stop:
            for step in range(start_step + 1, num_steps + 1):
                wait_start = time.perf_counter()
                batch = next(batches)
                timing['wait_s'] += time.perf_counter() - wait_start
                if timing['compile_s'] is None:
                    compile_start = time.perf_counter()
                    state, metrics = step_fn(state, batch, run.keys['train'])
                    jax.block_until_ready(state)
                    timing['compile_s'] = time.perf_counter() - compile_start
                    timing['window_start'] = time.perf_counter()
                else:
                    state, metrics = step_fn(state, batch, run.keys['train'])
                    timing['window_steps'] += 1
                window.append(metrics)
                progress.update(1)

                if is_due(step, train_config.log_every, num_steps):
                    last_train = log_train(
                        step, window, timing, writer, progress, train_config.batch_size, manager
                    )
                    window = []
                with excluded_from_rate(timing):
                    if is_due(step, train_config.eval_every, num_steps):
                        writer.write_scalars(
                            step, runtime.evaluate_state(run, state), prefix='eval'
                        )
                    if config.eval.every and is_due(step, config.eval.every, num_steps):
                        extra = evaluate.compute_metrics(run, state)
                        writer.write_scalars(step, extra[0], prefix='eval')
                        if best is not None:
                            best.offer(step, extra[0], state)
                    if is_due(step, train_config.sample_every, num_steps):
                        runtime.save_samples(run, state, workdir, f'{step:07d}', writer, step)
                    if is_due(step, train_config.checkpoint_every, num_steps) or stop:
                        save_checkpoint(manager, step, state)
                if stop:
                    raise TrainingInterrupted(step, stop[0])
    finally:
        progress.close()
        writer.close()
        manager.close()
        if best is not None:
            best.close()

    eval_metrics = runtime.evaluate_state(run, state)
    if config.eval.every and extra is None:  # a finished run that was resumed
        extra = evaluate.compute_metrics(run, state)
    values, protocols = extra or ({}, {})
    return runtime.write_results(
        run,
        workdir,
        num_steps,
        {f'eval/{k}': v for k, v in {**eval_metrics, **values}.items()},
        train={f'train/{k}': v for k, v in last_train.items()},
        compile_seconds=timing['compile_s'],
        metric_protocols=protocols,
    )


def log_train(step, window, timing, writer, progress, batch_size, manager) -> dict[str, float]:
    """Writes the mean train metrics of the window; stops the run on NaN/Inf."""
    means = _mean_metrics(window)
    bad = [name for name, value in means.items() if not np.isfinite(value)]
    if bad:
        raise NonFiniteError(
            f'non-finite {", ".join(bad)} at step {step}; stopping. The last good checkpoint '
            f'(step {manager.latest_step()}) is kept.'
        )
    elapsed = time.perf_counter() - timing['window_start']
    if timing['window_steps']:
        means['steps_per_second'] = timing['window_steps'] / elapsed
        means['images_per_second'] = means['steps_per_second'] * batch_size
        means['input_wait_fraction'] = timing['wait_s'] / elapsed
    writer.write_scalars(step, means, prefix='train')
    progress.set_postfix(
        {
            k: f'{v:.3g}'
            for k, v in means.items()
            if k in ('loss', 'd_loss', 'g_loss', 'elbo', 'images_per_second')
        }
    )
    timing.update(window_start=time.perf_counter(), window_steps=0, wait_s=0.0)
    return means


def save_checkpoint(manager, step: int, state) -> None:
    """Saves `state` at `step`, refusing non-finite parameters (the last good one stays)."""
    if not _all_finite(state.params):
        raise NonFiniteError(
            f'non-finite parameters at step {step}; not saving. The last '
            f'good checkpoint (step {manager.latest_step()}) is kept.'
        )
    manager.save(step, state)
