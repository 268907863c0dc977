"""How a sweep's pending trials run: one by one in this process, in vectorised groups, or as
`launch.py` processes. Each executor records every outcome in the ledger.

Sequential trials run in this process and share compiled programs (`experiments/programs.py`);
`parallel > 1` runs trials as `launch.py --mode train` processes, each on its own devices;
`vectorize > 1` trains trials that differ only in traced hyperparameters and the seed
together in one program (`experiments.train.train_trials`).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_collections

from experiments import programs, train
from gen_models import config as cfg
from gen_models.sweep_algebra import Overrides
from sweeps.expansion import Trial
from sweeps.ledger import Ledger, is_finished, trial_dir

LAUNCH_LOG = 'launch.log'
ERROR_FILE = 'error.txt'
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Launcher:
    """How a trial runs as a `launch.py` process: the config file (`path[:arg]`) and the
    `--config.key=value` overrides the sweep command was given."""

    config_file: str
    base_overrides: Overrides

    def command(self, trial: Trial, workdir: Path) -> list[str]:
        overrides = {**self.base_overrides, **trial.overrides}
        return [
            sys.executable,
            str(REPO / 'launch.py'),
            '--mode=train',
            f'--config={self.config_file}',
            f'--workdir={workdir}',
            *(f'--config.{key}={_flag_value(value)}' for key, value in overrides.items()),
        ]


def _flag_value(value: Any) -> str:
    """A value as `--config.key=` parses it back (floats exactly, via repr)."""
    return (
        value
        if isinstance(value, str)
        else repr(tuple(value) if isinstance(value, list) else value)
    )


class SweepInterrupted(train.TrainingInterrupted):
    """SIGINT/SIGTERM stopped a sweep; running trials saved checkpoints."""

    def __init__(self, signum: int):
        self.step, self.signum = None, signum
        RuntimeError.__init__(
            self,
            f'sweep interrupted by signal {signum}; running trials saved checkpoints. '
            'Run the same command again to resume.',
        )


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


def _finished(ledger: Ledger, trial: Trial, start: float, log, error: str | None = None) -> None:
    status = 'failed' if error else 'done'
    seconds = round(time.perf_counter() - start, 3)
    ledger.update(trial.id, status=status, error=error, seconds=seconds)
    done = sum(r['status'] in ('done', 'failed') for r in ledger.trials.values())
    log(
        f'[{done}/{len(ledger.trials)}] {trial.id}: {status} in {seconds:.1f}s'
        + (f': {error}' if error else '')
    )


def run_in_process(base, pending: list[Trial], workdir: Path, ledger: Ledger, log) -> None:
    """Trials one after the other in this process (sharing compiled programs)."""
    for trial in pending:
        config = cfg.apply_overrides(base, trial.overrides)
        _run_together(
            [trial],
            workdir,
            ledger,
            log,
            lambda paths, c=config: [train.train_and_evaluate(c, paths[0])],
        )


def run_vectorized(base, pending: list[Trial], workdir: Path, ledger, size: int, log) -> None:
    """Trials that differ only in traced hyperparameters and the seed, `size` at a time in
    one program (`experiments.train.train_trials`); a trial that shares its structure with no
    other runs alone."""
    configs = [cfg.apply_overrides(base, trial.overrides) for trial in pending]
    for group in plan(configs, size):
        members = [pending[i] for i in group]
        if len(members) == 1:
            run_in_process(base, members, workdir, ledger, log)
        else:
            group_configs = [configs[i] for i in group]
            _run_together(
                members,
                workdir,
                ledger,
                log,
                lambda paths, c=group_configs: train.train_trials(c, paths),
            )


def _run_together(trials: list[Trial], workdir: Path, ledger: Ledger, log, train_fn) -> None:
    """Runs train_fn(workdirs) -> per trial results or the exception that stopped it, and
    records each outcome; an exception of train_fn itself fails every trial."""
    paths = [trial_dir(workdir, trial.id) for trial in trials]
    for trial in trials:
        ledger.update(trial.id, status='running', error=None)
    start = time.perf_counter()
    try:
        outcomes = train_fn(paths)
    except (train.TrainingInterrupted, KeyboardInterrupt):
        for trial in trials:
            ledger.update(trial.id, status='interrupted')
        raise
    except Exception as error:  # noqa: BLE001 - any failure of a trial is recorded
        outcomes = [error] * len(trials)
    for trial, path, outcome in zip(trials, paths, outcomes, strict=True):
        if isinstance(outcome, Exception):
            path.mkdir(parents=True, exist_ok=True)
            (path / ERROR_FILE).write_text(''.join(traceback.format_exception(outcome)))
            _finished(ledger, trial, start, log, f'{type(outcome).__name__}: {outcome}')
        else:
            _finished(ledger, trial, start, log)


def run_processes(pending, workdir: Path, ledger: Ledger, launcher: Launcher, num: int, log):
    """Trials as `launch.py` processes, `num` at a time, each slot on its own devices.

    SIGINT/SIGTERM are passed on to the running trials, which checkpoint and stop.
    """
    slots = device_slots(num)
    queue = collections.deque(pending)
    running: dict[int, tuple[Trial, subprocess.Popen, float]] = {}
    with train.stop_requests() as stop:
        while (queue and not stop) or running:
            for slot in range(num):
                if slot not in running and queue and not stop:
                    trial = queue.popleft()
                    running[slot] = (
                        trial,
                        _start(trial, workdir, ledger, launcher, slots[slot]),
                        time.perf_counter(),
                    )
            if stop:
                for _, process, _ in running.values():
                    if process.poll() is None:
                        process.send_signal(stop[0])
            for slot, (trial, process, start) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[slot]
                if stop and not is_finished(workdir, trial.id):
                    ledger.update(trial.id, status='interrupted')
                elif process.returncode == 0 and is_finished(workdir, trial.id):
                    _finished(ledger, trial, start, log)
                else:
                    _finished(ledger, trial, start, log, _process_error(workdir, trial, process))
            time.sleep(0.05)
    if stop:
        raise SweepInterrupted(stop[0])


@dataclasses.dataclass(frozen=True)
class Slot:
    """What one parallel worker may use: environment variables and, on CPU, cores."""

    env: dict[str, str]
    cpus: frozenset[int] | None


def device_slots(num: int) -> list[Slot]:
    """Splits this machine's devices over `num` workers without initialising JAX here.

    GPUs (CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`): disjoint sets when there are at least
    `num`, else workers share GPUs round-robin with a memory fraction each. Otherwise CPU
    cores (this process's affinity) are split into disjoint sets.
    """
    gpus = _visible_gpus()
    if gpus and len(gpus) >= num:
        return [Slot({'CUDA_VISIBLE_DEVICES': ','.join(gpus[i::num])}, None) for i in range(num)]
    if gpus:
        fraction = 0.9 / math.ceil(num / len(gpus))
        return [
            Slot(
                {
                    'CUDA_VISIBLE_DEVICES': gpus[i % len(gpus)],
                    'XLA_PYTHON_CLIENT_MEM_FRACTION': f'{fraction:.3f}',
                },
                None,
            )
            for i in range(num)
        ]
    cores = sorted(os.sched_getaffinity(0))
    return [
        Slot({}, frozenset(cores[i::num] if num <= len(cores) else [cores[i % len(cores)]]))
        for i in range(num)
    ]


def _visible_gpus() -> list[str]:
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [g for g in visible.split(',') if g.strip() and g.strip() != '-1']
    try:
        listing = subprocess.run(
            ['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith('GPU ')]


def _start(trial: Trial, workdir: Path, ledger: Ledger, launcher: Launcher, slot: Slot):
    path = trial_dir(workdir, trial.id)
    path.mkdir(parents=True, exist_ok=True)
    ledger.update(trial.id, status='running', error=None)
    with (path / LAUNCH_LOG).open('a') as output:
        # The file stays open in the child; tqdm redraws at most every 30 s into it.
        return subprocess.Popen(
            launcher.command(trial, path),
            cwd=REPO,
            env={**os.environ, **slot.env, 'PYTHONUNBUFFERED': '1', 'TQDM_MININTERVAL': '30'},
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=None if slot.cpus is None else lambda: os.sched_setaffinity(0, slot.cpus),
        )


def _process_error(workdir: Path, trial: Trial, process: subprocess.Popen) -> str:
    """The last line the trial's process printed (its error), with its exit status."""
    lines = (trial_dir(workdir, trial.id) / LAUNCH_LOG).read_text(errors='replace').splitlines()
    last = next((line.strip() for line in reversed(lines) if line.strip()), '')
    return f'exit status {process.returncode}: {last}'
