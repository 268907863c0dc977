"""The SLURM executor: a sweep's pending trials as one job array through submitit, followed
until every task has ended, with sweep.json the truth about each.

  python launch.py --mode sweep --config configs/x.py --workdir /shared/x --executor slurm

One array task trains one trial, or one group of up to K trials with `--vectorize K`, with
the resources of `config.sweep.slurm`; several tasks per trial (`nodes`, `tasks_per_node`)
join one multi-process run through `jax.distributed`. sweep.json records each trial's job id,
array index and SLURM state; each task writes `slurm.log` (its stdout and stderr) and, when it
fails, `error.txt` in its trial folder, and submitit keeps its pickles, batch script and own
log in `workdir/slurm/`. Running the command again reconciles with `squeue`: finished trials
are skipped, queued or running ones are followed, not submitted again, and the rest (failed,
cancelled, out of time) are submitted anew and resume from their checkpoints.

SIGUSR2 (sent `sweep.slurm.signal_delay_s` before the time limit) and SIGTERM (pre-emption,
`scancel --signal=TERM`) make a task checkpoint at the next step and requeue itself while
SLURM still has it RUNNING; a task that SLURM is ending (`scancel`, the time limit itself)
checkpoints too, and the next submission resumes it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import ml_collections
import submitit
from submitit.core.utils import FailedJobError

from experiments import train
from gen_models import config as cfg
from gen_models import distributed, xla_settings
from sweeps import executors
from sweeps.expansion import SweepError, Trial
from sweeps.ledger import SWEEP_FILE, Ledger, is_finished, trial_dir

SLURM_DIR = 'slurm'  # workdir/slurm/: submitit's pickles, batch scripts and its own logs
TASK_LOG = 'slurm.log'  # in the (first) trial's folder: the task's stdout and stderr
COMMANDS = ('sbatch', 'srun', 'squeue', 'sinfo', 'scontrol')
# States of a job that will not run again (anything else is queued or running).
ENDED = frozenset(
    'BOOT_FAIL CANCELLED COMPLETED DEADLINE FAILED NODE_FAIL OUT_OF_MEMORY PREEMPTED '
    'REVOKED TIMEOUT'.split()
)
RUNNING = ('RUNNING', 'COMPLETING')
ENDED_STATUSES = ('done', 'failed')  # of a trial in sweep.json
UNSHARED_ROOTS = ('/tmp', '/var/tmp', '/dev/shm')
# Each task's Python starts with SIGTERM and SIGUSR2 ignored, until `Task` routes them: one
# that comes while it imports (scancel --signal on an array task retries until the requeued
# task runs again) would otherwise kill it.
PYTHON = shlex.join(['sh', '-c', 'trap "" TERM USR2; exec "$@"', 'sh', sys.executable])
MAX_POLL_S = 30.0


class Stopped(BaseException):
    """SIGTERM or SIGUSR2 outside the training loop: nothing since the last checkpoint is
    lost. A BaseException, so that no library's `except Exception` takes it for a failure."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Detached(train.TrainingInterrupted):
    """SIGINT/SIGTERM stopped the command that follows a sweep; its SLURM tasks go on."""

    def __init__(self, signum: int):
        self.step, self.signum = None, signum
        RuntimeError.__init__(
            self,
            f'stopped following the sweep (signal {signum}); its SLURM tasks go on. '
            'Run the same command again to follow them.',
        )


@dataclasses.dataclass(frozen=True)
class Task:
    """One array task: trains `configs` (a trial, or a vectorised group) in `workdirs`.
    Pickled by submitit and called on a node, once per process of the task."""

    configs: tuple[ml_collections.ConfigDict, ...]
    workdirs: tuple[str, ...]

    def __call__(self) -> None:
        rank = int(os.environ.get('SLURM_PROCID', '0'))
        log = TASK_LOG if rank == 0 else f'slurm.{rank}.log'
        _redirect_output(Path(self.workdirs[0]) / log)
        print(f'--- {_job_id()} on {socket.gethostname()} at {_now()}', flush=True)
        _route_signals()
        if self.configs[0].train.deterministic:
            xla_settings.request_deterministic_gpu_ops()
        distributed.initialize()  # a multi-task step is one multi-process run
        xla_settings.enable_compilation_cache()
        xla_settings.use_unrolled_threefry()
        try:
            outcomes = train.train_trials(list(self.configs), list(self.workdirs))
        except (train.TrainingInterrupted, Stopped) as stop:
            where = (
                f'at step {stop.step}, checkpoint saved'
                if isinstance(stop, train.TrainingInterrupted)
                else 'outside the training steps'
            )
            print(f'signal {stop.signum}: stopped {where}', flush=True)
            if rank == 0:
                _requeue()
            raise SystemExit(128 + stop.signum) from None
        except Exception as error:  # noqa: BLE001 - recorded for every trial of the task
            outcomes = [error] * len(self.configs)
        errors = {
            path: outcome
            for path, outcome in zip(self.workdirs, outcomes, strict=True)
            if isinstance(outcome, Exception)
        }
        for path, error in errors.items():
            if rank == 0:
                text = ''.join(traceback.format_exception(error))
                (Path(path) / executors.ERROR_FILE).write_text(text)
        if errors:  # the task fails in SLURM too
            raise RuntimeError(f'{len(errors)} of {len(outcomes)} trials failed: {list(errors)}')


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec='seconds')


def _job_id() -> str:
    array = os.environ.get('SLURM_ARRAY_JOB_ID')
    return f'{array}_{os.environ["SLURM_ARRAY_TASK_ID"]}' if array else os.environ['SLURM_JOB_ID']


def _redirect_output(path: Path) -> None:
    """Appends this process's stdout and stderr, and those of its children, to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _route_signals() -> None:
    """SLURM's signals to the training loop, in place of submitit's handlers (which ignore
    SIGTERM and requeue on SIGUSR2 without the loop's checkpoint): SIGUSR2 goes wherever
    SIGTERM goes; the loop turns SIGTERM into a checkpoint, outside it raises Stopped."""

    def stop(signum: int, _frame: Any) -> None:
        raise Stopped(signum)

    def forward(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):
            handler(signum, frame)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR2, forward)


def _requeue() -> None:
    """Puts this task back in the queue, where it starts again from its checkpoint, unless
    SLURM is ending it (scancel, the time limit: its state is no longer RUNNING); then the
    next submission resumes it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the requeue's own SIGTERM
    job_id = _job_id()
    try:
        state = job_states([job_id]).get(job_id, {}).get('state', 'unlisted')
    except SweepError as error:
        state = f'unknown ({error})'
    if state != 'RUNNING':
        print(f'{job_id} is {state}: left to the next submission, which resumes it', flush=True)
        return
    result = subprocess.run(['scontrol', 'requeue', job_id], capture_output=True, text=True)
    outcome = f'requeued {job_id}' if result.returncode == 0 else f'not requeued: {result.stderr}'
    print(outcome, flush=True)


def parameters(resources: ml_collections.ConfigDict, job_name: str) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters for `config.sweep.slurm`."""
    options = {'requeue': True}  # the task requeues itself when signalled
    for option in resources.additional_parameters:
        name, has_value, value = option.partition('=')
        options[name] = value if has_value else True
    params = {
        'job_name': job_name,
        'partition': resources.partition or None,
        'time': resources.time,
        'nodes': resources.nodes,
        'ntasks_per_node': resources.tasks_per_node,
        'cpus_per_task': resources.cpus_per_task,
        'gpus_per_task': resources.gpus_per_task or None,
        'mem': resources.mem or None,
        'array_parallelism': resources.array_parallelism,
        'signal_delay_s': resources.signal_delay_s,
        'stderr_to_stdout': True,
        'setup': [
            f'export PYTHONPATH={shlex.quote(str(executors.REPO))}${{PYTHONPATH:+:$PYTHONPATH}}'
        ],
        'additional_parameters': options,
    }
    return {key: value for key, value in params.items() if value is not None}


def _run(command: list[str]) -> str:
    """The output of a SLURM command; SweepError with its last line when it fails."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SweepError(f'{command[0]} failed: {error}') from None
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines() or ['(no output)']
        raise SweepError(f'{command[0]} failed: {lines[-1]}')
    return result.stdout


def check(
    base: ml_collections.ConfigDict,
    trials: list[Trial],
    workdir: Path,
    vectorize: int,
    log: Callable[[str], None] = print,
) -> None:
    """What must hold before anything is submitted, each a one-line SweepError or
    ConfigError; a warning for a workdir that other nodes may not see."""
    resources = base.sweep.slurm
    if resources.signal_delay_s >= resources.time * 60:
        raise cfg.ConfigError(
            'sweep.slurm.signal_delay_s',
            resources.signal_delay_s,
            f'less than sweep.slurm.time in seconds ({resources.time * 60})',
        )
    own = sorted({key for t in trials for key in t.overrides if key.startswith('sweep.slurm.')})
    if own:
        raise SweepError(f'trials set {", ".join(own)}: the tasks of one job array share them')
    if vectorize > 1 and resources.nodes * resources.tasks_per_node > 1:
        raise SweepError(
            'vectorised groups run in one process: use sweep.slurm.nodes=1 and '
            'tasks_per_node=1 with --vectorize'
        )
    absent = [name for name in COMMANDS if shutil.which(name) is None]
    if absent:
        raise SweepError(
            f'--executor slurm: no {", ".join(absent)} on PATH (SLURM client '
            'commands are needed where the sweep command runs)'
        )
    known = set(_run(['sinfo', '--noheader', '--format=%R']).split())
    unknown = [p for p in resources.partition.split(',') if p and p not in known]
    if unknown:
        raise cfg.ConfigError(
            'sweep.slurm.partition',
            resources.partition,
            f'partitions of this cluster: {", ".join(sorted(known))}',
        )
    root = next((r for r in UNSHARED_ROOTS if workdir.absolute().is_relative_to(r)), None)
    if root:
        log(
            f'warning: {workdir} is under {root}, which the nodes of a cluster rarely share; '
            'tasks on other nodes would not find it'
        )


def job_states(job_ids: Collection[str]) -> dict[str, dict[str, str]]:
    """SLURM's state and start time of each job (array tasks as '12_3') that squeue lists;
    jobs it no longer lists (ended a while ago) are absent. SweepError if squeue fails."""
    arrays = sorted({job_id.partition('_')[0] for job_id in job_ids})
    if not arrays:
        return {}
    command = ['squeue', '--noheader', '--array', '--states=all', '--format=%i|%T|%S']
    try:
        output = _run([*command, f'--jobs={",".join(arrays)}'])
    except SweepError as error:
        if 'Invalid job id' not in str(error):  # the one job asked for is gone
            raise
        output = ''
    states = {}
    for line in output.splitlines():
        job_id, state, start = line.strip().split('|')
        states[job_id] = {'state': state.split()[0], 'start': start}
    return states


def _previous_jobs(workdir: Path) -> dict[str, dict[str, Any]]:
    """Each trial's SLURM job record in the sweep.json on disk."""
    path = workdir / SWEEP_FILE
    trials = json.loads(path.read_text())['trials'] if path.exists() else []
    return {t['id']: t['slurm'] for t in trials if t.get('slurm')}


def keep_jobs(ledger: Ledger) -> None:
    """Carries the job records of earlier submissions into `ledger`, which each run builds
    anew, before it rewrites sweep.json."""
    for trial_id, job in _previous_jobs(ledger.path.parent).items():
        if trial_id in ledger.trials:
            ledger.trials[trial_id]['slurm'] = job


def _is_active(job: dict[str, Any] | None, states: dict[str, dict[str, str]]) -> bool:
    return (
        job is not None and job['job_id'] in states and states[job['job_id']]['state'] not in ENDED
    )


def _groups(base, trials: list[Trial], vectorize: int) -> list[tuple[list[Trial], list[Any]]]:
    """The trials of each array task with their configs: one each, or vectorised groups."""
    configs = [cfg.apply_overrides(base, trial.overrides) for trial in trials]
    plan = (
        executors.plan(configs, vectorize) if vectorize > 1 else [[i] for i in range(len(trials))]
    )
    return [([trials[i] for i in group], [configs[i] for i in group]) for group in plan]


def _submit(base, trials: list[Trial], workdir: Path, ledger: Ledger, vectorize: int, log):
    """Submits `trials` as one job array (a single task is a plain job) and records each
    task's job id in sweep.json."""
    groups = _groups(base, trials, vectorize)
    tasks = []
    for members, configs in groups:
        paths = [trial_dir(workdir, trial.id).absolute() for trial in members]
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            (path / executors.ERROR_FILE).unlink(missing_ok=True)  # from an earlier attempt
        tasks.append(Task(tuple(configs), tuple(str(path) for path in paths)))
    executor = submitit.SlurmExecutor(folder=workdir.absolute() / SLURM_DIR, python=PYTHON)
    executor.update_parameters(**parameters(base.sweep.slurm, workdir.name))
    try:
        jobs = executor.submit_array(tasks)
    except FailedJobError as error:
        lines = str(error).strip().splitlines() or ['(no output)']
        raise SweepError(f'sbatch refused the submission: {lines[-1]}') from None
    for index, ((members, _), job) in enumerate(zip(groups, jobs, strict=True)):
        record = {
            'job_id': job.job_id,
            'array_index': index if '_' in job.job_id else None,
            'state': 'PENDING',
            'submitted': _now(),
            'log': str(trial_dir('', members[0].id) / TASK_LOG),
        }
        for trial in members:
            ledger.trials[trial.id].update(
                status='pending', error=None, seconds=None, slurm=dict(record)
            )
    ledger.write()
    array = jobs[0].job_id.partition('_')[0]
    log(f'submitted SLURM job {array}: {len(jobs)} tasks for {len(trials)} trials')


def _error_line(text: str) -> str:
    """The last line of a traceback, its exception named without its module."""
    line = next((line for line in reversed(text.splitlines()) if line.strip()), '')
    kind, colon, message = line.partition(': ')
    return f'{kind.rpartition(".")[2]}{colon}{message}'


def _outcome(workdir: Path, trial_id: str, job: dict[str, Any], states) -> tuple[str, Any]:
    """A submitted trial's status and error, from its folder and its task's SLURM state."""
    if is_finished(workdir, trial_id):
        return 'done', None
    if _is_active(job, states):
        return ('running' if job['state'] in RUNNING else 'pending'), None
    error_file = trial_dir(workdir, trial_id) / executors.ERROR_FILE
    if error_file.is_file():
        return 'failed', _error_line(error_file.read_text(errors='replace'))
    ended = states[job['job_id']]['state'] if job['job_id'] in states else 'unlisted'
    return 'failed', f'SLURM task {job["job_id"]} ended ({ended}) without results; see {job["log"]}'


def _seconds(workdir: Path, trial_id: str, job: dict[str, Any]) -> float | None:
    """From the task's last start to its results.json or error.txt."""
    folder = trial_dir(workdir, trial_id)
    ends = [
        path.stat().st_mtime
        for path in (folder / 'results.json', folder / executors.ERROR_FILE)
        if path.exists()
    ]
    if 'started' not in job or not ends:
        return None
    return round(max(ends) - datetime.datetime.fromisoformat(job['started']).timestamp(), 3)


def _sync(ledger: Ledger, workdir: Path, trial_ids: list[str], states, log) -> bool:
    """Brings each trial's record up to date with its folder and its task's SLURM state,
    logs the trials that ended; whether anything changed."""
    changed = False
    for trial_id in trial_ids:
        record = ledger.trials[trial_id]
        before = json.dumps(record, sort_keys=True)
        ended_before = record['status'] in ENDED_STATUSES
        job = record['slurm']
        if job['job_id'] in states:
            job['state'] = states[job['job_id']]['state']
            if job['state'] == 'RUNNING':
                job['started'] = states[job['job_id']]['start']
        record['status'], record['error'] = _outcome(workdir, trial_id, job, states)
        if record['status'] in ENDED_STATUSES and not ended_before:
            record['seconds'] = _seconds(workdir, trial_id, job)
            ended = sum(r['status'] in ENDED_STATUSES for r in ledger.trials.values())
            seconds = f' in {record["seconds"]:.1f}s' if record['seconds'] is not None else ''
            error = f': {record["error"]}' if record['error'] else ''
            log(f'[{ended}/{len(ledger.trials)}] {trial_id}: {record["status"]}{seconds}{error}')
        changed |= json.dumps(record, sort_keys=True) != before
    if changed:
        ledger.write()
    return changed


def _follow(ledger: Ledger, workdir: Path, trial_ids: list[str], log) -> None:
    """Polls squeue and the trial folders until every task of `trial_ids` has ended (a
    trial is done at its results.json; its task's final state is recorded too), quickly
    after a change and less often while nothing changes. SIGINT/SIGTERM stop the
    following (Detached); the tasks go on."""
    delay, states = 1.0, {}
    with train.stop_requests() as stop:
        while not stop:
            records = [ledger.trials[i] for i in trial_ids]
            followed = [
                trial_id
                for trial_id, record in zip(trial_ids, records, strict=True)
                if record['status'] not in ENDED_STATUSES or _is_active(record['slurm'], states)
            ]
            if not followed:
                return
            try:
                states = job_states([ledger.trials[i]['slurm']['job_id'] for i in followed])
            except SweepError as error:  # slurmctld busy or restarting: ask again later
                log(f'warning: {error}')
                changed = False
            else:
                changed = _sync(ledger, workdir, followed, states, log)
            delay = 1.0 if changed else min(delay * 1.5, MAX_POLL_S)
            deadline = time.monotonic() + delay
            while not stop and time.monotonic() < deadline:
                time.sleep(0.1)
    raise Detached(stop[0])


def run(
    base: ml_collections.ConfigDict,
    pending: list[Trial],
    workdir: Path,
    ledger: Ledger,
    vectorize: int,
    log: Callable[[str], None] = print,
) -> None:
    """Submits the pending trials that SLURM is not queueing or running already, as one job
    array, and follows all of them until they have ended (`check` first)."""
    jobs = {trial.id: ledger.trials[trial.id].get('slurm') for trial in pending}
    states = job_states([job['job_id'] for job in jobs.values() if job])
    active = [trial for trial in pending if _is_active(jobs[trial.id], states)]
    to_submit = [trial for trial in pending if trial not in active]
    log(f'SLURM: {len(active)} queued or running already, {len(to_submit)} to submit')
    if to_submit:
        _submit(base, to_submit, workdir, ledger, vectorize, log)
    _follow(ledger, workdir, [trial.id for trial in pending], log)


def dry_run(
    base: ml_collections.ConfigDict,
    trials: list[Trial],
    workdir: Path,
    vectorize: int,
    log: Callable[[str], None] = print,
) -> None:
    """Prints each trial's state (finished, in SLURM, to submit) and the job array that
    `run` would submit; submits and writes nothing."""
    check(base, trials, workdir, vectorize, log)
    jobs = _previous_jobs(workdir)
    states = job_states([jobs[trial.id]['job_id'] for trial in trials if trial.id in jobs])
    to_submit = []
    for trial in trials:
        job = jobs.get(trial.id)
        if is_finished(workdir, trial.id):
            where = 'finished'
        elif _is_active(job, states):
            where = f'in SLURM as {job["job_id"]} ({states[job["job_id"]]["state"]})'
        else:
            where = 'to submit'
            to_submit.append(trial)
        log(f'{trial.id}\t{where}\t{json.dumps(trial.overrides)}')
    if to_submit:
        options = parameters(base.sweep.slurm, workdir.name)
        shown = ' '.join(
            f'{key}={value}'
            for key, value in options.items()
            if key not in ('setup', 'stderr_to_stdout')
        )
        tasks = len(_groups(base, to_submit, vectorize))
        log(f'would submit a job array of {tasks} tasks ({len(to_submit)} trials): {shown}')
