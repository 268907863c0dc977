"""Runs a hyperparameter sweep: expands its trials, runs each in its own workdir, reports.

  python launch.py --mode sweep --config configs/x.py --workdir sweeps/x [--parallel N]

The config file's `get_sweep(arg=None)` returns the trials as override dicts over dotted
config keys (`gen_models/sweep_algebra.py`). On disk:

  sweepdir/sweep.json       the base config and every trial: id, overrides, status, error,
                            seconds and the command that runs it alone
  sweepdir/trials/<id>/     the trial's workdir (config.json, metrics.jsonl, checkpoints, ...)
  sweepdir/summary.{csv,md}, plots/   from `sweeps/report.py`

Running a sweep again skips finished trials (those with results.json) and resumes the others
from their checkpoints. A failing trial is recorded with its error and the others go on.
Sequential trials run in this process and share compiled programs (`experiments/programs.py`);
`parallel > 1` runs trials as `launch.py --mode train` processes, each on its own devices;
`vectorize > 1` trains trials that differ only in shape-free hyperparameters together in one
program (`experiments/vectorized.py`).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from experiments import logs, train, vectorized
from experiments.config_validation import ConfigError, validate_config
from gen_models.sweep_algebra import Overrides
from sweeps import report
from sweeps.report import SWEEP_FILE, TRIALS_DIR

LAUNCH_LOG = 'launch.log'
ERROR_FILE = 'error.txt'
MAX_ID_LENGTH = 120
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of a sweep: the base config with `overrides`, in `trials/<id>/`."""

    id: str
    overrides: Overrides


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


class SweepError(ValueError):
    """A sweep that cannot run: no or a bad get_sweep(), repeated trials, or a sweep folder
    that holds a sweep of another base config."""


class SweepInterrupted(train.TrainingInterrupted):
    """SIGINT/SIGTERM stopped a sweep; running trials saved checkpoints."""

    def __init__(self, signum: int):
        self.step, self.signum = None, signum
        RuntimeError.__init__(
            self,
            f'sweep interrupted by signal {signum}; running trials saved checkpoints. '
            'Run the same command again to resume.',
        )


def load_sweep(config_file: str) -> list[Overrides]:
    """The trials of `get_sweep(arg)` in the config file `path[:arg]`."""
    path, _, arg = config_file.partition(':')
    spec = importlib.util.spec_from_file_location('_sweep_config', path)
    if spec is None or spec.loader is None:
        raise SweepError(f'cannot load config file {path!r}')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, 'get_sweep'):
        raise SweepError(f'{path} defines no get_sweep(); --mode sweep needs one')
    try:
        return module.get_sweep(arg) if arg else module.get_sweep()
    except (ValueError, TypeError) as error:
        raise SweepError(f'{config_file}: get_sweep(): {error}') from None


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of `config` with dotted-key `overrides`; ConfigError for unknown keys or types."""
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        parent, _, leaf = key.rpartition('.')
        node = config
        for part in filter(None, parent.split('.')):
            node = node.get(part)
            if not isinstance(node, ml_collections.ConfigDict):
                break
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise ConfigError(key, value, 'unknown key (see configs/default.py for every key)')
        try:
            node[leaf] = value
        except TypeError:
            expected = type(node[leaf]).__name__
            raise ConfigError(key, value, f'a value of type {expected}') from None
    return config


def trial_ids(sweep: Sequence[Overrides]) -> list[str]:
    """Folder names read from the overrides, e.g. 'lr=0.001_seed=2'.

    Keys are shortened to their last part where that is unambiguous in the sweep; an empty
    override dict is 'base'; overlong names end in a hash of the full overrides.
    """
    keys = {key for overrides in sweep for key in overrides}
    last = collections.Counter(key.rpartition('.')[2] for key in keys)
    ids = []
    for overrides in sweep:
        parts = []
        for key, value in overrides.items():
            name = key.rpartition('.')[2]
            parts.append(f'{name if last[name] == 1 else key}={_id_value(value)}')
        trial_id = '_'.join(parts) or 'base'
        if len(trial_id) > MAX_ID_LENGTH:
            digest = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()
            trial_id = f'{trial_id[: MAX_ID_LENGTH - 9]}-{digest[:8]}'
        ids.append(trial_id)
    return ids


def _plain(value: Any) -> Any:
    """NumPy scalars (e.g. from np.linspace) as Python numbers, the way configs hold them."""
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def _id_value(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, (tuple, list)):
        return '-'.join(_id_value(v) for v in value)
    return re.sub(r'[^A-Za-z0-9.+-]', '-', repr(value) if isinstance(value, float) else str(value))


def _flag_value(value: Any) -> str:
    """A value as `--config.key=` parses it back (floats exactly, via repr)."""
    return (
        value
        if isinstance(value, str)
        else repr(tuple(value) if isinstance(value, list) else value)
    )


def expand(base: ml_collections.ConfigDict, sweep: Sequence[Overrides]) -> list[Trial]:
    """The trials of `sweep`, each config validated (ConfigError before any run starts)."""
    sweep = [{key: _plain(value) for key, value in o.items()} for o in sweep]
    trials = [Trial(i, o) for i, o in zip(trial_ids(sweep), sweep, strict=True)]
    repeated = [i for i, n in collections.Counter(t.id for t in trials).items() if n > 1]
    if repeated:
        raise SweepError(f'the sweep repeats trials: {repeated}')
    for trial in trials:
        validate_config(apply_overrides(base, trial.overrides))
    return trials


def trial_dir(workdir: str | os.PathLike[str], trial_id: str) -> Path:
    return Path(workdir) / TRIALS_DIR / trial_id


def is_finished(workdir: str | os.PathLike[str], trial_id: str) -> bool:
    return (trial_dir(workdir, trial_id) / 'results.json').is_file()


def _as_json(tree: Any) -> Any:
    return json.loads(json.dumps(tree, sort_keys=True))


class Ledger:
    """sweep.json: the base config and each trial's state, rewritten atomically on change.

    A sweep folder holds one base config (SweepError otherwise); its trials are those
    of the latest run, each 'done' when its results.json exists, else 'pending' to start.
    """

    def __init__(
        self,
        workdir: Path,
        base: ml_collections.ConfigDict,
        trials: list[Trial],
        launcher: Launcher | None,
    ):
        self.path = workdir / SWEEP_FILE
        base_config = _as_json(base.to_dict())
        previous = json.loads(self.path.read_text()) if self.path.exists() else None
        if previous and previous['base_config'] != base_config:
            old, new = _flat(previous['base_config']), _flat(base_config)
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise SweepError(
                f'{self.path} holds a sweep of another base config (it differs in '
                f'{", ".join(changed)}); use a new --workdir'
            )
        seconds = {t['id']: t['seconds'] for t in previous['trials']} if previous else {}
        self.header = {
            'config_file': launcher and launcher.config_file,
            'base_overrides': launcher and launcher.base_overrides,
            'base_config': base_config,
        }
        self.trials = {}
        for trial in trials:
            done = is_finished(workdir, trial.id)
            command = launcher and launcher.command(trial, trial_dir(workdir, trial.id))
            self.trials[trial.id] = {
                'id': trial.id,
                'overrides': trial.overrides,
                'status': 'done' if done else 'pending',
                'error': None,
                'seconds': seconds.get(trial.id) if done else None,
                'command': command and shlex.join(command),
            }

    def update(self, trial_id: str, **fields: Any) -> None:
        self.trials[trial_id].update(fields)
        self.write()

    def write(self) -> None:
        logs.write_json(self.path, {**self.header, 'trials': list(self.trials.values())})


def _flat(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def run_sweep(
    base: ml_collections.ConfigDict,
    sweep: Sequence[Overrides],
    workdir: str | os.PathLike[str],
    *,
    parallel: int = 1,
    vectorize: int = 1,
    launcher: Launcher | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Runs the unfinished trials of `sweep` over `base` in `workdir`; returns id -> status.

    `parallel > 1` needs a `launcher`: trials then run as that many `launch.py` processes.
    `vectorize > 1` trains up to that many trials that differ only in shape-free
    hyperparameters in one program. Writes the report (summary.csv, summary.md, plots/).
    """
    workdir = Path(workdir)
    trials = expand(base, sweep)
    if parallel < 1 or vectorize < 1 or (parallel > 1 and vectorize > 1):
        raise SweepError(
            f'parallel={parallel}, vectorize={vectorize}: both >= 1, and at most one above 1'
        )
    if parallel > 1 and launcher is None:
        raise SweepError('parallel trials run as launch.py processes and need a launcher')
    workdir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(workdir, base, trials, launcher)
    ledger.write()
    pending = [t for t in trials if ledger.trials[t.id]['status'] != 'done']
    log(f'{len(trials)} trials, {len(trials) - len(pending)} finished, {len(pending)} to run')
    if parallel > 1:
        _run_processes(pending, workdir, ledger, launcher, parallel, log)
    elif vectorize > 1:
        _run_vectorized(base, pending, workdir, ledger, vectorize, log)
    else:
        _run_in_process(base, pending, workdir, ledger, log)
    for path in report.write_report(workdir):
        log(f'wrote {path}')
    return {trial_id: record['status'] for trial_id, record in ledger.trials.items()}


def _finished(ledger: Ledger, trial: Trial, start: float, log, error: str | None = None) -> None:
    status = 'failed' if error else 'done'
    seconds = round(time.perf_counter() - start, 3)
    ledger.update(trial.id, status=status, error=error, seconds=seconds)
    done = sum(r['status'] in ('done', 'failed') for r in ledger.trials.values())
    log(
        f'[{done}/{len(ledger.trials)}] {trial.id}: {status} in {seconds:.1f}s'
        + (f': {error}' if error else '')
    )


def _run_in_process(base, pending: list[Trial], workdir: Path, ledger: Ledger, log) -> None:
    """Trials one after the other in this process (sharing compiled programs)."""
    for trial in pending:
        config = apply_overrides(base, trial.overrides)
        _run_together(
            [trial],
            workdir,
            ledger,
            log,
            lambda paths, c=config: [train.train_and_evaluate(c, paths[0])],
        )


def _run_vectorized(base, pending: list[Trial], workdir: Path, ledger, size: int, log) -> None:
    """Trials that differ only in shape-free hyperparameters, `size` at a time in one
    program (`experiments/vectorized.py`); a trial that shares its structure with no other
    runs alone."""
    configs = [apply_overrides(base, trial.overrides) for trial in pending]
    for group in vectorized.plan(configs, size):
        members = [pending[i] for i in group]
        if len(members) == 1:
            _run_in_process(base, members, workdir, ledger, log)
        else:
            group_configs = [configs[i] for i in group]
            _run_together(
                members,
                workdir,
                ledger,
                log,
                lambda paths, c=group_configs: vectorized.train_group(c, paths),
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


def _run_processes(pending, workdir: Path, ledger: Ledger, launcher: Launcher, num: int, log):
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


def launch(
    base: ml_collections.ConfigDict,
    config_flag: Any,
    workdir: str,
    *,
    parallel: int = 1,
    vectorize: int = 1,
    dry_run: bool = False,
) -> int:
    """`launch.py --mode sweep`: runs (or with `dry_run` lists) the config file's sweep;
    returns the exit status, 1 when a trial failed."""
    from ml_collections import config_flags

    launcher = Launcher(
        config_flags.get_config_filename(config_flag),
        dict(config_flags.get_override_values(config_flag)),
    )
    sweep = load_sweep(launcher.config_file)
    if dry_run:
        for trial in expand(base, sweep):
            state = 'finished' if is_finished(workdir, trial.id) else 'to run'
            print(f'{trial.id}\t{state}\t{json.dumps(trial.overrides)}')
        return 0
    statuses = run_sweep(
        base, sweep, workdir, parallel=parallel, vectorize=vectorize, launcher=launcher
    )
    failed = [trial_id for trial_id, status in statuses.items() if status == 'failed']
    if failed:
        print(
            f'error: {len(failed)} trials failed: {", ".join(failed)} (see {workdir}/{SWEEP_FILE})',
            file=sys.stderr,
        )
    return 1 if failed else 0
