"""The training loop, model-agnostic, for K >= 1 trials: `train_and_evaluate` (K = 1) and
`train_trials` (a vectorised group).

Resumes from the newest sound checkpoint automatically; the data order and every PRNG key
are functions of (seed, step), and a checkpoint carries the train metrics logged since the
last log step, so an interrupted and resumed run computes and logs the same numbers as one
that never stopped. SIGINT/SIGTERM save a checkpoint and stop; a non-finite or diverging loss
(`train.loss_limit`) stops the run and leaves the last good checkpoint in place. A run that
already finished is not run again: its results.json stays as it is. Each workdir is locked
for the run (`experiments/workdir.py`).

K > 1 trials whose configs share a structure (`programs.structure`: everything but the traced
hyperparameters and the seed) train as one compiled program, `jax.vmap` over their stacked
states, batches (each trial keeps its seed's data order), keys and hyperparameters. Each
trial keeps the workdir and files of a run alone (config.json, metrics.jsonl, checkpoints,
best checkpoint, samples, results.json) and, to float tolerance, its numbers; a trial whose
loss turns non-finite stops alone. Every feature of the loop works for both by construction.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
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

from experiments import batches, best_checkpoint, environment, evaluate, logs, programs, runtime
from experiments import workdir as workdir_lock
from gen_models.checkpoints import non_finite_arrays
from gen_models.config import ConfigError


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


def _mean_metrics(window: list[dict[str, jax.Array]]) -> dict[str, float]:
    """Means over the window's steps (entries are one step's values, or a call's steps')."""
    steps = jax.device_get(
        jax.tree.map(lambda *xs: jnp.concatenate([jnp.ravel(x) for x in xs]), *window)
    )
    return {name: float(np.mean(values)) for name, values in steps.items()}


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _slice(tree: Any, index: int) -> Any:
    return jax.tree.map(lambda x: x[index], tree)


class Trial:
    """One trial's run, workdir and what the loop keeps for it: checkpoints, logs, the last
    train metrics and evaluation, and the error that stopped it (if any)."""

    def __init__(self, run: runtime.Run, workdir: str | Path, is_lead: bool):
        self.workdir = Path(workdir)
        self.run = run
        self.config = run.config
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manager = runtime.checkpointer(self.run, self.workdir)
        evaluation = self.config.eval
        self.best = (
            best_checkpoint.BestCheckpoint(
                self.workdir, evaluation.keep_best, evaluation.keep_best_mode
            )
            if evaluation.keep_best
            else None
        )
        self.is_lead = is_lead
        self.writer: logs.MetricWriter | None = None
        self.last_train: dict[str, float] = {}
        self.extra: tuple[dict, dict] | None = None  # eval.metrics (values, protocols)
        self.error: Exception | None = None
        self.recorded: dict[str, Any] | None = None  # results.json of a finished run

    def resume(self, step: int, num_steps: int) -> dict[str, Any]:
        """Takes up what the checkpoint of `step` carried; returns it (empty for step 0)."""
        carried = (self.manager.extra(step) if step else None) or {}
        self.last_train = carried.get('last_train', {})
        path = self.workdir / 'results.json'
        if step == num_steps and path.is_file():
            results = json.loads(path.read_text())
            self.recorded = results if results.get('step') == num_steps else None
        return carried

    def open_logs(self, start_step: int) -> None:
        self.writer = logs.MetricWriter(self.workdir, resume_step=start_step, enabled=self.is_lead)
        if self.is_lead:
            logs.write_json(self.workdir / 'config.json', self.config.to_dict())
            logs.write_json(self.workdir / 'environment.json', environment.collect_environment())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.manager.close()
        if self.best is not None:
            self.best.close()


def _restore(trials: list[Trial]) -> tuple[list[Any], int]:
    """Every trial's state, replicated over the mesh, at the newest step it can restore; a
    group restores the newest step all its trials have a checkpoint of. Fresh states at
    step 0 when there is none."""
    if len(trials) == 1:
        restored = runtime.restore(trials[0].run, trials[0].manager)
        if restored is None:
            return [runtime.initial_state(trials[0].run)], 0
        return [restored[0]], restored[1]
    common = set.intersection(*(set(t.manager.all_steps()) for t in trials))
    errors = []
    for step in sorted(common, reverse=True):  # an unsound checkpoint: an older common step
        try:
            states = [t.manager.restore(runtime.initial_state(t.run), step=step)[0] for t in trials]
        except Exception as error:  # noqa: BLE001 - unreadable, corrupt or non-finite
            tqdm.tqdm.write(f'Cannot restore every trial at step {step} ({error}); trying older.')
            errors.append(error)
            continue
        return states, step
    if errors:
        raise errors[0]
    return [runtime.initial_state(t.run) for t in trials], 0


class Loop:
    """The state of K trials training together, and what happens between steps."""

    def __init__(self, trials: list[Trial]):
        self.trials = trials
        self.lead = trials[0].run
        self.train_config = self.lead.config.train
        self.num_steps = self.train_config.num_steps
        states, self.start_step = _restore(trials)
        self.steps_per_call = self.train_config.steps_per_call
        if self.start_step % self.steps_per_call:
            raise ConfigError(
                'train.steps_per_call',
                self.steps_per_call,
                f'a divisor of the step {self.start_step} the run resumes from',
            )
        if self.start_step:
            where = trials[0].workdir if len(trials) == 1 else f'{len(trials)} trials'
            tqdm.tqdm.write(f'Resuming {where} from the checkpoint of step {self.start_step}.')
        if len(trials) == 1:
            self.state = states[0]
            train_step, rng = runtime.train_step(self.lead), self.lead.keys['train']
            self._step = lambda state, batch: train_step(state, batch, rng)
        else:
            if jax.process_count() > 1:
                raise ValueError('vectorised trials run in one process')
            self.state = jax.device_put(
                _stack(states), NamedSharding(self.lead.mesh, PartitionSpec())
            )
            compiled = programs.programs(self.lead.config, self.lead.info, self.lead.mesh)
            keys = jnp.stack([t.run.keys['train'] for t in trials])
            hparams = _stack([programs.hyperparameters(t.config) for t in trials])
            self._step = lambda state, batch: compiled.vmapped_train_step(
                state, batch, keys, hparams
            )
        carried = [trial.resume(self.start_step, self.num_steps) for trial in trials]
        self.finished = all(trial.recorded is not None for trial in trials)
        if not self.finished:
            for trial in trials:
                trial.open_logs(self.start_step)
        self.timing = {'compile_s': None, 'wait_s': 0.0, 'window_start': time.perf_counter()}
        self.timing['window_steps'] = 0
        self.compile_seconds = carried[0].get('compile_seconds')
        self.window: list[Any] = self._carried_window([c.get('window', {}) for c in carried])

    def _carried_window(self, windows: list[dict[str, list[float]]]) -> list[Any]:
        """The train metrics logged since the checkpoint's last log step, as the loop holds
        them (per step: scalars, or for a group one value per trial)."""
        length = min(len(next(iter(w.values()), [])) for w in windows)
        if not length:
            return []
        if len(self.trials) == 1:
            return [{k: np.float32(v[i]) for k, v in windows[0].items()} for i in range(length)]
        return [
            {k: np.asarray([w[k][i] for w in windows], np.float32) for k in windows[0]}
            for i in range(length)
        ]

    def carried(self, index: int, trial: Trial) -> dict[str, Any]:
        """What a checkpoint of this trial must carry to resume exactly."""
        window = self.window if len(self.trials) == 1 else [_slice(m, index) for m in self.window]
        values = jax.device_get(window)
        return {
            'window': {
                k: [float(v) for m in values for v in np.ravel(m[k])]
                for k in (values[0] if values else {})
            },
            'last_train': trial.last_train,
            'compile_seconds': self.timing['compile_s'] or self.compile_seconds,
        }

    def trial_state(self, index: int) -> Any:
        return self.state if len(self.trials) == 1 else _slice(self.state, index)

    def live(self) -> list[tuple[int, Trial]]:
        return [(i, t) for i, t in enumerate(self.trials) if t.error is None]

    def each(self, action, *args) -> None:
        """action(i, trial, *args) for the trials still going; a NaN/Inf stops that one."""
        for index, trial in self.live():
            try:
                action(index, trial, *args)
            except NonFiniteError as error:
                trial.error = error

    def step(self, batch) -> None:
        """One compiled call: `steps_per_call` train steps."""
        if self.timing['compile_s'] is None:
            start = time.perf_counter()
            self.state, metrics = self._step(self.state, batch)
            jax.block_until_ready(self.state)
            self.timing['compile_s'] = time.perf_counter() - start
            self.timing['window_start'] = time.perf_counter()
        else:
            self.state, metrics = self._step(self.state, batch)
            self.timing['window_steps'] += self.steps_per_call
        self.window.append(metrics)

    def log(self, step: int, progress) -> None:
        window = self.window if len(self.trials) == 1 else jax.device_get(self.window)
        self.each(self._log_trial, step, window, progress)
        self.timing.update(window_start=time.perf_counter(), window_steps=0, wait_s=0.0)
        self.window = []

    def _log_trial(self, index: int, trial: Trial, step: int, window, progress) -> None:
        trial_window = window if len(self.trials) == 1 else [_slice(m, index) for m in window]
        trial.last_train = log_train(
            step, trial_window, self.timing, trial, self.train_config.batch_size
        )
        if len(self.trials) == 1:
            keys = (*trial.run.model.summary_keys, 'images_per_second')
            progress.set_postfix({k: f'{v:.3g}' for k, v in trial.last_train.items() if k in keys})

    def periodic(self, step: int, stopping: bool) -> None:
        """Eval, eval.metrics, sample grids and checkpoints that fall on `step`."""
        every = (
            self.train_config.eval_every,
            self.lead.config.eval.every,
            self.train_config.sample_every,
            self.train_config.checkpoint_every,
        )
        if stopping or any(n and is_due(step, n, self.num_steps) for n in every):
            with excluded_from_rate(self.timing):
                self.each(self._periodic_trial, step, stopping)

    def _periodic_trial(self, index: int, trial: Trial, step: int, stopping: bool) -> None:
        run, state, config = trial.run, self.trial_state(index), trial.config
        if is_due(step, self.train_config.eval_every, self.num_steps):
            trial.writer.write_scalars(step, runtime.evaluate_state(run, state), prefix='eval')
        if config.eval.every and is_due(step, config.eval.every, self.num_steps):
            trial.extra = evaluate.compute_metrics(run, state)
            trial.writer.write_scalars(step, trial.extra[0], prefix='eval')
            if trial.best is not None:
                trial.best.offer(step, trial.extra[0], state)
        if is_due(step, self.train_config.sample_every, self.num_steps):
            runtime.save_samples(run, state, trial.workdir, f'{step:07d}', trial.writer, step)
        if is_due(step, self.train_config.checkpoint_every, self.num_steps) or stopping:
            save_checkpoint(trial.manager, step, state, self.carried(index, trial))

    def results(self, index: int, trial: Trial) -> dict[str, Any]:
        """Final evaluation of a trial that finished, written to its results.json (a run
        finished before keeps the file it wrote)."""
        if trial.recorded is not None:
            return trial.recorded
        run, state = trial.run, self.trial_state(index)
        if trial.config.eval.every and trial.extra is None:  # a finished run that was resumed
            trial.extra = evaluate.compute_metrics(run, state)
        values, protocols = trial.extra or ({}, {})
        eval_metrics = {**runtime.evaluate_state(run, state), **values}
        extra = {'vectorized_trials': len(self.trials)} if len(self.trials) > 1 else {}
        return runtime.write_results(
            run,
            trial.workdir,
            self.num_steps,
            {f'eval/{k}': v for k, v in eval_metrics.items()},
            train={f'train/{k}': v for k, v in trial.last_train.items()},
            compile_seconds=self.timing['compile_s'] or self.compile_seconds,
            metric_protocols=protocols,
            **extra,
        )


def train_trials(
    configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str | Path]
) -> list[dict[str, Any] | Exception]:
    """Trains configs of one structure together (one alone is a normal run): per trial its
    results, or the NonFiniteError that stopped it while the others went on."""
    if len({programs.structure(config) for config in configs}) != 1:
        raise ValueError(
            'vectorised trials must differ only in traced hyperparameters and the seed'
        )
    runs = [runtime.prepare(config) for config in configs]  # every config error first
    is_lead = jax.process_index() == 0
    with contextlib.ExitStack() as locks:
        for workdir in workdirs:
            locks.enter_context(workdir_lock.lock(workdir))
        trials = [Trial(run, workdir, is_lead) for run, workdir in zip(runs, workdirs, strict=True)]
        try:
            loop = Loop(trials)
            if loop.finished:
                tqdm.tqdm.write(
                    f'{", ".join(str(t.workdir) for t in trials)}: finished before; '
                    'results.json kept as it is.'
                )
            else:
                _run(loop)
        finally:
            for trial in trials:
                trial.close()
        return [
            trial.error if trial.error is not None else loop.results(i, trial)
            for i, trial in enumerate(trials)
        ]


def _run(loop: Loop) -> None:
    """Calls from the start step to the last, with what falls between them."""
    num_steps, per_call = loop.num_steps, loop.steps_per_call
    progress = tqdm.tqdm(
        total=num_steps,
        initial=loop.start_step,
        unit='step',
        desc=f'{len(loop.trials)} trials' if len(loop.trials) > 1 else None,
        dynamic_ncols=True,
        disable=not (loop.train_config.progress_bar and loop.trials[0].is_lead),
    )
    seeds = [trial.config.seed for trial in loop.trials]
    calls = batches.batches(loop.lead.config, seeds, loop.lead.mesh, loop.start_step)
    try:
        with stop_requests() as stop:
            for step in range(loop.start_step + per_call, num_steps + 1, per_call):
                wait_start = time.perf_counter()
                batch = next(calls)
                loop.timing['wait_s'] += time.perf_counter() - wait_start
                loop.step(batch)
                progress.update(per_call)
                if is_due(step, loop.train_config.log_every, num_steps):
                    loop.log(step, progress)
                loop.periodic(step, bool(stop))
                if not loop.live():  # each trial's error (NaN/Inf) is its outcome
                    return
                if stop:
                    raise TrainingInterrupted(step, stop[0])
    finally:
        progress.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming if it holds checkpoints); returns results."""
    (outcome,) = train_trials([config], [workdir])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def log_train(step, window, timing, trial: Trial, batch_size: int) -> dict[str, float]:
    """Writes the mean train metrics of the window; stops the trial on NaN/Inf."""
    means = _mean_metrics(window)
    bad = [name for name, value in means.items() if not np.isfinite(value)]
    limit = trial.config.train.loss_limit
    diverged = [
        f'{k}={v:.3g}' for k, v in means.items() if limit and 'loss' in k and abs(v) > limit
    ]
    if bad or diverged:
        what = f'non-finite {", ".join(bad)}' if bad else f'{", ".join(diverged)} beyond '
        what += '' if bad else f'train.loss_limit={limit:g}'
        raise NonFiniteError(f'{what} at step {step}; stopping. {_kept(trial.manager)}')
    elapsed = time.perf_counter() - timing['window_start']
    if timing['window_steps']:
        means['steps_per_second'] = timing['window_steps'] / elapsed
        means['images_per_second'] = means['steps_per_second'] * batch_size
        means['input_wait_fraction'] = timing['wait_s'] / elapsed
    trial.writer.write_scalars(step, means, prefix='train')
    return means


def _kept(manager) -> str:
    step = manager.latest_step()
    return (
        'No checkpoint was written.'
        if step is None
        else f'The last good checkpoint (step {step}) is kept.'
    )


def save_checkpoint(manager, step: int, state, carried: dict[str, Any] | None = None) -> None:
    """Saves `state` (with `carried`, what resuming exactly needs) at `step`, refusing a state
    with NaN or Inf anywhere, optimiser moments included (the last good checkpoint stays)."""
    bad = non_finite_arrays(state)
    if bad:
        raise NonFiniteError(
            f'non-finite values at step {step} in {len(bad)} arrays (e.g. {", ".join(bad[:2])}); '
            f'not saving. {_kept(manager)}'
        )
    manager.save(step, state, carried)
