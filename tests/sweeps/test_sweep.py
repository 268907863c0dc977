"""Sweeps: the algebra, trial ids, a 4-trial sweep end to end, failures, kill and resume,
parallel launch.py trials."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from experiments import logs, train
from gen_models import config as cfg
from gen_models import sweep_algebra as hyper
from gen_models.config import ConfigError
from sweeps import archive, executors, expansion, report, sweep
from tests.conftest import REPO
from tests.sweeps import sweep_config

CONFIG_FILE = REPO / 'tests' / 'sweeps' / 'sweep_config.py'
GOOD_IDS = ['lr=0.001_seed=0', 'lr=0.001_seed=1', 'lr=0.003_seed=0', 'lr=0.003_seed=1']
FAILING_ID = 'name=no-such-dataset'
LOWERING_EVENT = '/jax/core/compile/jaxpr_to_mlir_module_duration'
LOWERED = '<a program lowered>'  # marks a lowering among the sweep's log lines


def test_product_zip_chain_counts_and_order():
    lrs, seeds = hyper.sweep('lr', [1, 2, 3]), hyper.seeds(2, start=5)
    assert hyper.product(lrs, seeds) == [
        {'lr': lr, 'seed': seed} for lr in (1, 2, 3) for seed in (5, 6)
    ]
    assert len(hyper.product(lrs, seeds, hyper.sweep('model.beta', [0.5, 1.0]))) == 12
    assert hyper.zipit(lrs, hyper.sweep('model.beta', 'abc')) == [
        {'lr': 1, 'model.beta': 'a'},
        {'lr': 2, 'model.beta': 'b'},
        {'lr': 3, 'model.beta': 'c'},
    ]
    assert hyper.chain(lrs, seeds, hyper.fixed('x', 0)) == [*lrs, *seeds, {'x': 0}]
    assert len(hyper.product(hyper.chain(lrs, hyper.fixed('lr', 9)), seeds)) == 8
    with pytest.raises(ValueError, match='one length'):
        hyper.zipit(lrs, seeds)
    with pytest.raises(ValueError, match='same keys'):
        hyper.product(lrs, hyper.fixed('lr', 1))


def test_random_search_is_deterministic_and_samples_its_distributions():
    space = {
        'lr': hyper.log_uniform(1e-4, 1e-1),
        'model.beta': hyper.uniform(0.5, 2.0),
        'optim.name': hyper.choice(['adam', 'sgd', 'rmsprop']),
    }
    trials = hyper.random_search(2000, space, seed=3)
    assert trials == hyper.random_search(2000, space, seed=3)
    assert trials != hyper.random_search(2000, space, seed=4)
    assert len(trials) == 2000 and all(t.keys() == space.keys() for t in trials)
    lrs = np.array([t['lr'] for t in trials])
    betas = np.array([t['model.beta'] for t in trials])
    assert lrs.min() >= 1e-4 and lrs.max() < 1e-1
    assert betas.min() >= 0.5 and betas.max() < 2.0
    # Log-uniform: each decade holds a third of the draws; uniform: each half holds half.
    decades = np.histogram(np.log10(lrs), bins=[-4, -3, -2, -1])[0] / len(lrs)
    np.testing.assert_allclose(decades, 1 / 3, atol=0.05)
    assert abs(np.mean(betas < 1.25) - 0.5) < 0.05
    assert {t['optim.name'] for t in trials} == {'adam', 'sgd', 'rmsprop'}
    assert all(isinstance(t['lr'], float) for t in trials)


def test_trial_ids_are_read_from_the_overrides():
    ids = expansion.trial_ids(
        [
            {'lr': 0.001, 'seed': 0},
            {'model.beta': 0.5, 'model.hidden': (64, 32)},
            {'optim.name': 'adam', 'dataset.name': 'mnist'},
            {},
            {'lr': 1e-3 + 1e-12 * np.arange(40).sum()},
        ]
    )
    assert ids[:4] == [
        'lr=0.001_seed=0',
        'beta=0.5_hidden=64-32',
        'optim.name=adam_dataset.name=mnist',
        'base',
    ]
    assert ids[4] == f'lr={1e-3 + 1e-12 * 780!r}'  # floats keep every digit: no collisions
    long = expansion.trial_ids([{f'model.key{i}': i for i in range(40)}])[0]
    assert len(long) == expansion.MAX_ID_LENGTH


def test_bad_overrides_fail_before_any_trial_runs(tmp_path):
    base = sweep_config.get_config()
    with pytest.raises(ConfigError, match=r'config.model.betta=0.5 is not allowed: unknown key'):
        sweep.run_sweep(base, [{'model.betta': 0.5}], tmp_path)
    with pytest.raises(
        ConfigError, match=r"config.lr='fast' is not allowed: a value of type float"
    ):
        sweep.run_sweep(base, [{'lr': 'fast'}], tmp_path)
    with pytest.raises(
        ConfigError, match=r'config.lr=-1.0 is not allowed: a finite number > 0 \(trial lr=-1.0\)'
    ):
        sweep.run_sweep(base, [{'lr': 1e-3}, {'lr': -1.0}], tmp_path)
    with pytest.raises(sweep.SweepError, match='repeats trials'):
        sweep.run_sweep(base, [{'lr': 1e-3}, {'lr': 1e-3}], tmp_path)
    assert not (tmp_path / 'trials').exists()


def test_worker_devices_are_disjoint(monkeypatch):
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0,1,2')
    assert [s.env['CUDA_VISIBLE_DEVICES'] for s in executors.device_slots(2)] == ['0,2', '1']
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '3')
    shared = executors.device_slots(2)
    assert [s.env for s in shared] == [
        {'CUDA_VISIBLE_DEVICES': '3', 'XLA_PYTHON_CLIENT_MEM_FRACTION': '0.450'}
    ] * 2
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    cores = os.sched_getaffinity(0)
    slots = executors.device_slots(len(cores))
    assert all(len(s.cpus) == 1 for s in slots) and set().union(*(s.cpus for s in slots)) == cores


def _base(data_dir):
    config = sweep_config.get_config('with_failure')
    config.dataset.data_dir = data_dir
    return config


@pytest.fixture(scope='module')
def reference(data_dir, tmp_path_factory):
    """The 4-trial sweep plus one failing trial, uninterrupted, in this process."""
    workdir = tmp_path_factory.mktemp('reference')
    lines = []

    def lowered(event, seconds, **kwargs):  # every compile, from a cache or not, lowers first
        if event == LOWERING_EVENT:
            lines.append(LOWERED + kwargs.get('fun_name', ''))

    jax.monitoring.register_event_duration_secs_listener(lowered)
    try:
        statuses = sweep.run_sweep(
            _base(data_dir), sweep_config.get_sweep('with_failure'), workdir, log=lines.append
        )
    finally:
        jax.monitoring.unregister_event_duration_listener(lowered)
    return workdir, statuses, [line for line in lines if not line.startswith(LOWERED)], lines


def _results(workdir, trial_id):
    return json.loads((workdir / 'trials' / trial_id / 'results.json').read_text())


def test_sweep_end_to_end_failure_recorded_and_rerun_skips(reference, data_dir):
    workdir, statuses, lines, events = reference
    assert statuses == {**{i: 'done' for i in GOOD_IDS}, FAILING_ID: 'failed'}
    record = json.loads((workdir / 'sweep.json').read_text())
    assert [t['id'] for t in record['trials']] == [*GOOD_IDS, FAILING_ID]
    assert {k: record['base_config']['sweep'][k] for k in ('metric', 'mode')} == {
        'metric': 'eval/elbo',
        'mode': 'max',
    }
    failed = record['trials'][-1]
    assert (
        failed['status'] == 'failed' and "config.dataset.name='no_such_dataset'" in failed['error']
    )
    assert 'Traceback' in (workdir / 'trials' / FAILING_ID / 'error.txt').read_text()
    for trial_id, trial in zip(GOOD_IDS, record['trials'], strict=False):
        trial_dir = workdir / 'trials' / trial_id
        config = json.loads((trial_dir / 'config.json').read_text())
        assert (config['lr'], config['seed']) == (
            trial['overrides']['lr'],
            trial['overrides']['seed'],
        )
        assert (trial_dir / 'metrics.jsonl').is_file() and (trial_dir / 'checkpoints').is_dir()
        assert _results(workdir, trial_id)['step'] == 300
    assert {p.name for p in (workdir / 'plots').iterdir()} == {
        'eval-elbo_vs_lr.png',
        'curves_elbo.png',
    }
    assert f'{FAILING_ID}: failed' in ' '.join(lines)

    # Trials 2..4 reuse trial 1's init, train and eval programs: after trial 1 has ended,
    # only the sample grids' programs (drawn with each trial's own model) are lowered again.
    first_done = next(i for i, line in enumerate(events) if line.startswith('[1/'))
    lowered = [line.removeprefix(LOWERED) for line in events if line.startswith(LOWERED)]
    later = {line.removeprefix(LOWERED) for line in events[first_done:] if line.startswith(LOWERED)}
    assert len(lowered) > 10 and later == {'jit(generate)', 'jit(reconstruct)'}

    before = {i: _results(workdir, i)['time'] for i in GOOD_IDS}
    rerun_lines = []
    again = sweep.run_sweep(
        _base(data_dir), sweep_config.get_sweep('with_failure'), workdir, log=rerun_lines.append
    )
    assert again == statuses
    assert rerun_lines[0] == '5 trials, 4 finished, 1 to run'
    assert {i: _results(workdir, i)['time'] for i in GOOD_IDS} == before

    other = _base(data_dir)
    other.train.num_steps = 301
    with pytest.raises(sweep.SweepError, match='differs in train.num_steps'):
        sweep.run_sweep(other, sweep_config.get_sweep(), workdir)


def _launch(workdir, data_dir, variant, *flags):
    return [
        sys.executable,
        'launch.py',
        '--mode=sweep',
        f'--config={CONFIG_FILE}:{variant}',
        f'--workdir={workdir}',
        f'--config.dataset.data_dir={data_dir}',
        *flags,
    ]


def test_killed_sweep_reruns_only_unfinished_trials(reference, data_dir, subprocess_env, tmp_path):
    workdir = tmp_path / 'killed'
    command = _launch(workdir, data_dir, 'with_failure')
    process = subprocess.Popen(command, cwd=REPO, env=subprocess_env, stdout=subprocess.DEVNULL)
    third = workdir / 'trials' / GOOD_IDS[2]
    deadline = time.time() + 120
    while time.time() < deadline and not (third / 'checkpoints' / '100').is_dir():
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    finished = [i for i in GOOD_IDS if (workdir / 'trials' / i / 'results.json').is_file()]
    assert finished[:2] == GOOD_IDS[:2], finished
    times = {i: _results(workdir, i)['time'] for i in finished}

    rerun = subprocess.run(
        command, cwd=REPO, env=subprocess_env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 1, rerun.stderr  # the failing trial fails again
    assert f'5 trials, {len(finished)} finished, {5 - len(finished)} to run' in rerun.stdout
    if GOOD_IDS[2] not in finished:
        assert f'Resuming {third}' in rerun.stdout
    assert {i: _results(workdir, i)['time'] for i in finished} == times
    assert f'1 trials failed: {FAILING_ID}' in rerun.stderr
    for name in ('summary.csv', 'summary.md'):
        expected = (reference[0] / name).read_text().replace(reference[0].name, workdir.name)
        assert (workdir / name).read_text() == expected


def test_dry_run_lists_trials_and_their_state(reference, data_dir, capsys):
    argv = [
        'launch.py',
        f'--config={CONFIG_FILE}:with_failure',
        f'--config.dataset.data_dir={data_dir}',
    ]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file('config', flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    config_flag = flag_values['config']
    assert sweep.launch(config_flag.value, config_flag, reference[0], dry_run=True) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split('\t') for line in lines] == [
        *(
            [i, 'finished', json.dumps({'lr': lr, 'seed': seed})]
            for i, (lr, seed) in zip(
                GOOD_IDS, [(0.001, 0), (0.001, 1), (0.003, 0), (0.003, 1)], strict=True
            )
        ),
        [FAILING_ID, 'to run', json.dumps({'dataset.name': 'no_such_dataset'})],
    ]


def test_parallel_trials_run_as_processes(reference, data_dir, subprocess_env, tmp_path):
    workdir = tmp_path / 'parallel'
    finished = subprocess.run(
        _launch(workdir, data_dir, 'one_and_failure', '--parallel=2'),
        cwd=REPO,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 1, finished.stderr
    trials = {t['id']: t for t in json.loads((workdir / 'sweep.json').read_text())['trials']}
    assert trials[GOOD_IDS[0]]['status'] == 'done'
    assert trials[FAILING_ID]['status'] == 'failed'
    assert trials[FAILING_ID]['error'].startswith('exit status 2: error: config.dataset.name=')
    assert '--config.dataset.name=no_such_dataset' in trials[FAILING_ID]['command']
    alone = _results(workdir, GOOD_IDS[0])['metrics']
    in_process = _results(reference[0], GOOD_IDS[0])['metrics']
    assert alone.keys() == in_process.keys()
    for name, value in alone.items():
        assert math.isclose(value, in_process[name], rel_tol=1e-5), name
    summary = report.collect(workdir)
    assert [row.status for row in summary.rows] == ['done', 'failed']


TIMING = {'time', 'train/steps_per_second', 'train/images_per_second', 'train/input_wait_fraction'}


def _train_records(trial_dir):
    return [
        {k: v for k, v in record.items() if k not in TIMING}
        for record in logs.read_metrics(trial_dir)
        if any(k.startswith('train/') for k in record)
    ]


def _assert_close_records(a, b):
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for x, y in zip(a, b, strict=True):
        for name, value in x.items():
            assert math.isclose(value, y[name], rel_tol=1e-5, abs_tol=1e-6), (name, x, y)


def test_vectorized_sweep_matches_one_by_one(reference, data_dir, tmp_path):
    statuses = sweep.run_sweep(
        _base(data_dir), sweep_config.get_sweep('with_failure'), tmp_path, vectorize=4
    )
    assert statuses == reference[1]
    for trial_id in GOOD_IDS:
        together, alone = _results(tmp_path, trial_id), _results(reference[0], trial_id)
        assert together['vectorized_trials'] == 4 and together['step'] == 300
        _assert_close_records([together['metrics']], [alone['metrics']])
        trial_dir = tmp_path / 'trials' / trial_id
        _assert_close_records(
            _train_records(trial_dir), _train_records(reference[0] / 'trials' / trial_id)
        )
        config = json.loads((trial_dir / 'config.json').read_text())
        assert f'lr={config["lr"]}_seed={config["seed"]}' == trial_id
        assert sorted(p.name for p in (trial_dir / 'checkpoints').iterdir()) == [
            '100',
            '200',
            '300',
        ]
        assert (trial_dir / 'samples' / 'samples_0000300.png').is_file()


def test_vectorized_group_resumes_from_its_checkpoints(reference, data_dir, tmp_path):
    configs = [
        cfg.apply_overrides(_base(data_dir), overrides) for overrides in sweep_config.get_sweep()
    ]
    workdirs = [tmp_path / trial_id for trial_id in GOOD_IDS]
    for config in configs:
        config.train.num_steps = 150  # stops with checkpoints of steps 100 and 150
    train.train_trials(configs, workdirs)
    for config in configs:
        config.train.num_steps = 300
    # One trial lost its newest checkpoint: the group resumes where all have one (100).
    shutil.rmtree(workdirs[2] / 'checkpoints' / '150')
    outcomes = train.train_trials(configs, workdirs)
    for trial_id, workdir, outcome in zip(GOOD_IDS, workdirs, outcomes, strict=True):
        alone = _results(reference[0], trial_id)
        _assert_close_records([outcome['metrics']], [alone['metrics']])
        _assert_close_records(
            _train_records(workdir), _train_records(reference[0] / 'trials' / trial_id)
        )


def test_archive_keeps_outcomes_and_restoring_runs_only_the_rest(reference, data_dir, tmp_path):
    workdir, statuses = reference[:2]
    kept = tmp_path / 'archive'
    assert archive.save(workdir, kept) == 4  # the failed trial wrote no results.json
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob('*') if p.is_file())
    assert files == [
        'sweep.json',
        *(
            f'trials/{i}/{name}'
            for i in GOOD_IDS
            for name in ('config.json', 'environment.json', 'results.json')
        ),
    ]
    assert report.collect(kept).rows == report.collect(workdir).rows
    for trial_id in GOOD_IDS[2:]:  # an archive of a sweep that stopped after two trials
        shutil.rmtree(kept / 'trials' / trial_id)

    resumed = tmp_path / 'resumed'
    assert archive.restore(kept, resumed) == 2
    assert archive.restore(kept, resumed) == 0  # present files are kept, never rewritten
    lines = []
    again = sweep.run_sweep(
        _base(data_dir), sweep_config.get_sweep('with_failure'), resumed, log=lines.append
    )
    assert again == statuses and lines[0] == '5 trials, 2 finished, 3 to run'
    for trial_id in GOOD_IDS:
        assert _results(resumed, trial_id)['metrics'] == _results(workdir, trial_id)['metrics']
    assert not (resumed / 'trials' / GOOD_IDS[0] / 'checkpoints').exists()  # not trained again

    other = _base(data_dir)
    other.train.num_steps = 301
    sweep.run_sweep(other, sweep_config.get_sweep('one_and_failure'), tmp_path / 'other')
    with pytest.raises(ValueError, match='another base config'):
        archive.restore(kept, tmp_path / 'other')
