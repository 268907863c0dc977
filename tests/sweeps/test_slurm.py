"""The SLURM executor against a real single-node SLURM (`sweeps.local_slurm`, started once for
this module). One sweep of 4 trials and a failing one runs through it: a second command
started while the first follows the queued tasks is refused (the sweep folder is locked);
the first stops following on Ctrl-C, and a third command started while the tasks are still
queued follows them instead, submitting nothing; one task is signalled mid-run (it
checkpoints, requeues itself and resumes), one is cancelled (the next submission resumes it),
and a third command reruns what did not finish. Each test checks one part of that story
against the local executor's numbers. Skips, naming the reason, where SLURM's packages are
missing or it won't start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiments import logs
from gen_models import config as cfg
from gen_models.config import ConfigError
from sweeps import local_slurm, slurm, sweep
from sweeps.ledger import Ledger
from tests.conftest import REPO, SHARED_DATA
from tests.sweeps import sweep_config

CONFIG_FILE = REPO / 'tests' / 'sweeps' / 'sweep_config.py'
GOOD_IDS = ['lr=0.001_seed=0', 'lr=0.001_seed=1', 'lr=0.003_seed=0', 'lr=0.003_seed=1']
FAILING_ID = 'name=no-such-dataset'
SIGNALLED, CANCELLED = GOOD_IDS[:2]
TIMEOUT_S = 600  # a cap for each wait; a loaded machine is slow
TIMING = {'time', 'train/steps_per_second', 'train/images_per_second', 'train/input_wait_fraction'}


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    """A local SLURM for this module's tests; stopped (its jobs cancelled) afterwards."""
    reason = local_slurm.missing()
    if reason:
        pytest.skip(f'no local SLURM: {reason}')
    directory = tmp_path_factory.mktemp('slurm')
    try:
        conf = local_slurm.start(directory, cpus=4)  # tasks spend much of their time importing
    except RuntimeError as error:
        local_slurm.stop(directory)
        pytest.skip(f'the local SLURM did not start: {error}')
    yield conf
    local_slurm.stop(directory)


@pytest.fixture(scope='module')
def env(cluster, data_dir):
    """The environment of the sweep commands: the session's data, the local cluster."""
    env = dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONUNBUFFERED='1', SLURM_CONF=str(cluster))
    if SHARED_DATA.is_dir():
        env['GEN_MODELS_DATA_DIR'] = str(SHARED_DATA)
    return env


def _base(data_dir, variant='with_failure'):
    config = sweep_config.get_config(variant)
    config.dataset.data_dir = data_dir
    return config


@pytest.fixture(scope='module')
def reference(data_dir, tmp_path_factory):
    """The sweep with the local executor, in this process, uninterrupted."""
    workdir = tmp_path_factory.mktemp('local')
    statuses = sweep.run_sweep(
        _base(data_dir), sweep_config.get_sweep('with_failure'), workdir, log=lambda _: None
    )
    return workdir, statuses


def _ledger(workdir: Path) -> dict:
    return {t['id']: t for t in json.loads((workdir / 'sweep.json').read_text())['trials']}


def _results(workdir, trial_id):
    return json.loads((workdir / 'trials' / trial_id / 'results.json').read_text())


def _wait_for(condition, what):
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.01)


def _job_ids(workdir: Path) -> dict[str, str | None]:
    if not (workdir / 'sweep.json').is_file():
        return {}
    return {i: (t.get('slurm') or {}).get('job_id') for i, t in _ledger(workdir).items()}


def _release(workdir: Path, env, trial_ids, before=None) -> None:
    """Waits until `trial_ids` have new job ids in sweep.json, then releases that job array
    (the sweep submits it held: --hold)."""
    before = before or {}

    def submitted():
        jobs = _job_ids(workdir)
        return all(jobs.get(i) and jobs[i] != before.get(i) for i in trial_ids)

    _wait_for(submitted, 'the submission')
    array = _job_ids(workdir)[trial_ids[0]].partition('_')[0]
    subprocess.run(['scontrol', 'release', array], env=env, check=True)


def _checkpointed(workdir: Path, trial_id: str, step: int) -> bool:
    """Whether the trial has a checkpoint of `step` or later (older ones are deleted)."""
    folder = workdir / 'trials' / trial_id / 'checkpoints'
    return folder.is_dir() and any(
        p.name.isdigit() and int(p.name) >= step for p in folder.iterdir()
    )


@dataclasses.dataclass
class Story:
    """What the sweep's commands did, for the tests to check."""

    workdir: Path
    first: tuple[int, str, str]  # exit status, stdout, stderr: stopped following on SIGINT
    busy: tuple[int, str, str]  # started while the first followed: refused
    second: tuple[int, str, str]  # its stdout read in part for `reconciled`
    third: tuple[int, str, str]
    after: dict  # sweep.json's trials after the first two commands
    reconciled: str  # the second command's line on what it found in SLURM


def _finish(process) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, out, err


def _tell(workdir: Path, command: list[str], env, start) -> Story:
    """The first command submits (held), a command started beside it is refused, the first
    stops following on SIGINT; a second one, started while every task is queued, follows
    them; past step 100 one task gets SIGTERM and one is cancelled; after both commands
    ended, a third one reruns what did not finish."""
    first = start(command)
    _wait_for(lambda: all(_job_ids(workdir).values()) and _job_ids(workdir), 'the submission')
    busy = _finish(start(command))
    first.send_signal(signal.SIGINT)
    first = _finish(first)
    second = start(command)
    reconciled = next(line for line in second.stdout if 'to submit' in line)
    _release(workdir, env, GOOD_IDS)
    jobs, cancels, how = _job_ids(workdir), [], {SIGNALLED: ['--signal=TERM'], CANCELLED: []}

    def interrupt_past_step_100() -> bool:
        for trial_id in [t for t in how if _checkpointed(workdir, t, 100)]:
            # In the background: scancel retries while an array task is in transition.
            cancels.append(start(['scancel', *how.pop(trial_id), jobs[trial_id]]))
        return not how

    _wait_for(interrupt_past_step_100, 'checkpoint 100 of the first two trials')
    second = _finish(second)
    assert [_finish(cancel)[0] for cancel in cancels] == [0, 0]
    after = _ledger(workdir)
    third = start(command)
    _release(workdir, env, [CANCELLED, FAILING_ID], before=jobs)
    return Story(workdir, first, busy, second, _finish(third), after, reconciled)


@pytest.fixture(scope='module')
def story(reference, data_dir, env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp('slurm_sweep')
    command = [
        sys.executable,
        'launch.py',
        '--mode=sweep',
        f'--config={CONFIG_FILE}:with_failure',
        f'--workdir={workdir}',
        f'--config.dataset.data_dir={data_dir}',
        '--config.train.checkpoint_every=25',  # a few seconds after checkpoint 100 to signal
        "--config.sweep.slurm.additional_parameters=('hold',)",
        '--executor=slurm',
    ]
    started = []

    def start(args):
        started.append(
            subprocess.Popen(
                args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
        return started[-1]

    try:
        yield _tell(workdir, command, env, start)
    finally:  # a story cut short leaves no command behind
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_slurm_sweep_gives_the_local_numbers(story, reference):
    assert story.second[0] == 1, story.second[2]
    assert f'2 trials failed: {CANCELLED}, {FAILING_ID}' in story.second[2]
    assert story.third[0] == 1, story.third[2]
    assert {i: t['status'] for i, t in _ledger(story.workdir).items()} == reference[1]
    for trial_id in GOOD_IDS:
        together = _results(story.workdir, trial_id)['metrics']
        assert together == _results(reference[0], trial_id)['metrics'], trial_id
        assert (story.workdir / 'trials' / trial_id / slurm.TASK_LOG).is_file()
    assert (story.workdir / 'summary.md').is_file()


def test_sweep_json_records_job_ids_array_indices_and_states(story):
    array = story.after[GOOD_IDS[0]]['slurm']['job_id'].partition('_')[0]
    for index, trial_id in enumerate([*GOOD_IDS, FAILING_ID]):
        job = story.after[trial_id]['slurm']
        assert (job['job_id'], job['array_index']) == (f'{array}_{index}', index)
        assert job['log'] == f'trials/{trial_id}/{slurm.TASK_LOG}'
    assert [story.after[i]['slurm']['state'] for i in (SIGNALLED, CANCELLED, FAILING_ID)] == [
        'COMPLETED',
        'CANCELLED',
        'FAILED',
    ]


def test_a_failing_trial_is_recorded_with_its_log(story):
    failed = story.after[FAILING_ID]
    assert failed['status'] == 'failed'
    assert failed['error'].startswith("ConfigError: config.dataset.name='no_such_dataset'")
    assert 'Traceback' in (story.workdir / failed['slurm']['log']).read_text()
    assert 'Traceback' in (story.workdir / 'trials' / FAILING_ID / 'error.txt').read_text()
    assert [story.after[i]['status'] for i in GOOD_IDS] == ['done', 'failed', 'done', 'done']


def test_a_rerun_while_tasks_are_queued_submits_nothing(story):
    assert story.busy[0] == 2 and 'is in use by pid' in story.busy[2], story.busy
    assert story.first[0] == 130, story.first[2]  # it stopped following; the tasks went on
    assert story.reconciled.strip() == 'SLURM: 5 queued or running already, 0 to submit'
    assert story.second[0] == 1, story.second[2]  # it followed the failing trial to its end
    assert len({t['slurm']['job_id'] for t in story.after.values()}) == len(story.after)
    assert len(list((story.workdir / 'slurm').glob('*_submission.sh'))) == 2  # first, third


def _without_timing(record):
    return {k: v for k, v in record.items() if k not in TIMING}


def _eval_records(trial_dir):
    """metrics.jsonl's evaluations (train records average windows, which a resume cuts)."""
    return [
        _without_timing(record)
        for record in logs.read_metrics(trial_dir)
        if any(k.startswith('eval/') for k in record)
    ]


def _resumed_from(log: str) -> list[int]:
    return [int(line.split()[-1].rstrip('.')) for line in log.splitlines() if 'Resuming' in line]


def test_a_signalled_task_checkpoints_requeues_itself_and_resumes_exactly(story, reference):
    trial = story.workdir / 'trials' / SIGNALLED
    log = (trial / slurm.TASK_LOG).read_text()
    record = story.after[SIGNALLED]
    job_id = record['slurm']['job_id']  # requeued, not submitted again
    assert record['status'] == 'done' and job_id.endswith('_0'), record
    requeues = log.count(f'\nrequeued {job_id}\n')
    assert f'checkpoint saved\nrequeued {job_id}' in log, log
    steps = _resumed_from(log)
    # scancel retries while the array is in transition and may signal the requeued task
    # again: it then requeues once more.
    assert requeues >= 1 and steps and log.count('--- ') == requeues + 1, log
    assert all(100 <= step < 300 for step in steps), log
    alone = _results(reference[0], SIGNALLED)
    resumed = _results(story.workdir, SIGNALLED)
    assert resumed['metrics'] == alone['metrics']
    assert _without_timing(resumed['train']) == _without_timing(alone['train'])
    assert _eval_records(trial) == _eval_records(reference[0] / 'trials' / SIGNALLED)


def test_a_cancelled_task_resumes_on_the_next_submission(story, reference):
    before = story.after[CANCELLED]
    assert before['status'] == 'failed' and 'ended (CANCELLED) without results' in before['error']
    log = (story.workdir / 'trials' / CANCELLED / slurm.TASK_LOG).read_text()
    job_id = before['slurm']['job_id']
    assert f'checkpoint saved\n{job_id} is ' in log and ': left to the next submission' in log
    now = _ledger(story.workdir)[CANCELLED]
    assert now['status'] == 'done' and now['slurm']['job_id'] != before['slurm']['job_id']
    (step,) = _resumed_from(log)
    assert 100 <= step < 300
    assert (
        _results(story.workdir, CANCELLED)['metrics']
        == _results(reference[0], CANCELLED)['metrics']
    )


def test_a_rerun_resubmits_only_what_did_not_finish(story, data_dir, env, monkeypatch):
    monkeypatch.setenv('SLURM_CONF', env['SLURM_CONF'])
    returncode, out, err = story.third
    assert '5 trials, 3 finished, 2 to run' in out, out
    assert 'SLURM: 0 queued or running already, 2 to submit' in out
    assert f'1 trials failed: {FAILING_ID}' in err
    again = _ledger(story.workdir)
    assert all(again[i]['slurm'] == story.after[i]['slurm'] for i in GOOD_IDS if i != CANCELLED)
    lines = []
    base = _base(data_dir)
    base.sweep.slurm.additional_parameters = ('hold',)
    trials = sweep.expand(base, sweep_config.get_sweep('with_failure'))
    slurm.dry_run(base, trials, story.workdir, 1, log=lines.append)
    assert [line.split('\t')[1] for line in lines if '\t' in line] == ['finished'] * 4 + [
        'to submit'
    ]
    assert 'would submit a job array of 1 tasks (1 trials)' in lines[-1]


def test_following_stops_on_a_signal_and_the_tasks_go_on(env, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('SLURM_CONF', env['SLURM_CONF'])
    submit = ['sbatch', '--parsable', '--hold', '--wrap', 'true']
    held = subprocess.run(submit, env=env, capture_output=True, text=True, check=True).stdout
    base = _base(data_dir, None)
    trials = sweep.expand(base, [{'lr': 0.001}])
    ledger = Ledger(tmp_path, base, trials, None)
    ledger.trials[trials[0].id]['slurm'] = {'job_id': held.strip(), 'state': 'PENDING'}
    default = signal.getsignal(signal.SIGINT)

    def interrupt():  # once the follower listens for it
        _wait_for(lambda: signal.getsignal(signal.SIGINT) is not default, 'the follower')
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    lines = []
    with pytest.raises(slurm.Detached, match='its SLURM tasks go on'):
        slurm.run(base, trials, tmp_path, ledger, 1, log=lines.append)
    assert lines == ['SLURM: 1 queued or running already, 0 to submit']
    assert slurm.job_states([held.strip()])[held.strip()]['state'] == 'PENDING'
    subprocess.run(['scancel', held.strip()], env=env, check=True)


def test_errors_are_one_line(env, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('SLURM_CONF', env['SLURM_CONF'])
    base, trials = _base(data_dir, None), [{'lr': 0.001}]
    lines = []

    def run(config, workdir):
        return sweep.run_sweep(config, trials, workdir, executor='slurm', log=lines.append)

    rejected = cfg.apply_overrides(base, {'sweep.slurm.mem': '100000G'})
    with pytest.raises(sweep.SweepError, match=r'^sbatch refused the submission: .*error'):
        run(rejected, tmp_path / 'rejected')
    assert lines[0].startswith(f'warning: {tmp_path}') and 'under /tmp' in lines[0]
    unknown = cfg.apply_overrides(base, {'sweep.slurm.partition': 'gpu'})
    with pytest.raises(
        ConfigError, match=r"^config.sweep.slurm.partition='gpu' is not allowed: partitions "
    ):
        run(unknown, tmp_path / 'unknown')
    late = cfg.apply_overrides(base, {'sweep.slurm.time': 2, 'sweep.slurm.signal_delay_s': 120})
    with pytest.raises(ConfigError, match=r'signal_delay_s=120 is not allowed: less than'):
        run(late, tmp_path / 'late')
    with pytest.raises(sweep.SweepError, match='--parallel starts local processes'):
        sweep.run_sweep(base, trials, tmp_path, parallel=2, executor='slurm', launcher=object())
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(sweep.SweepError, match=r'^--executor slurm: no sbatch, srun'):
        run(base, tmp_path / 'no_slurm')
    assert not (tmp_path / 'unknown').exists() and not (tmp_path / 'no_slurm').exists()


def test_resources_become_sbatch_options():
    resources = sweep_config.get_config().sweep.slurm
    resources.update(partition='gpu', mem='4G', gpus_per_task=1, nodes=2, tasks_per_node=4)
    resources.additional_parameters = ('account=lab', 'exclusive')
    options = slurm.parameters(resources, 'x')
    assert options['additional_parameters'] == {
        'requeue': True,
        'account': 'lab',
        'exclusive': True,
    }
    assert {k: options[k] for k in ('partition', 'mem', 'gpus_per_task', 'nodes')} == {
        'partition': 'gpu',
        'mem': '4G',
        'gpus_per_task': 1,
        'nodes': 2,
    }
    assert (options['ntasks_per_node'], options['time'], options['signal_delay_s']) == (4, 60, 120)
