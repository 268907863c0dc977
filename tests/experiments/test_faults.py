"""Faults injected as a hostile user or a cluster would: nothing is lost, nothing is silently
wrong. Corrupt checkpoint bytes, a second launch, a rerun of a finished run, a diverging GAN,
a resume between log steps."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import evaluate, logs, runtime, train, workdir
from gen_models.checkpoints import Checkpointer
from tests.conftest import REPO
from tests.tiny import tiny

TIMING = ('time', 'train/steps_per_second', 'train/images_per_second', 'train/input_wait_fraction')


def _config(data_dir, **train_overrides):
    return tiny('quickstart', data_dir, num_steps=6, checkpoint_every=2, **train_overrides)


def _params(config, path):
    run = runtime.prepare(config)
    state, step = runtime.restore_latest(run, path)
    return jax.device_get(state.params), step


def _records(path):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in logs.read_metrics(path)]


def _flip_bytes(path, count, seed):
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for position in rng.choice(len(data), size=count, replace=False):
        data[position] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))


def _largest_file(folder):
    return max((p for p in folder.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize('count,seed', [(1, 0), (8, 1), (64, 2)])
def test_corrupt_bytes_in_the_newest_checkpoint_fall_back_to_the_previous_one(
    data_dir, tmp_path, caplog, count, seed
):
    config = _config(data_dir)
    train.train_and_evaluate(config, tmp_path / 'straight')
    shutil.copytree(tmp_path / 'straight', tmp_path / 'corrupt')
    _flip_bytes(_largest_file(tmp_path / 'corrupt' / 'checkpoints' / '6'), count, seed)
    (tmp_path / 'corrupt' / 'results.json').unlink()
    with caplog.at_level(logging.WARNING):
        train.train_and_evaluate(config, tmp_path / 'corrupt')
    assert 'Cannot restore the checkpoint of step 6' in caplog.text
    a, _ = _params(config, tmp_path / 'straight')
    b, _ = _params(config, tmp_path / 'corrupt')
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_a_restored_state_with_nan_counts_as_corrupt(data_dir, tmp_path, caplog):
    """As an older version's checkpoint of a diverged GAN: no checksums, NaN in its moments."""
    config = _config(data_dir)
    train.train_and_evaluate(config, tmp_path)
    run = runtime.prepare(config)
    state, _ = runtime.restore_latest(run, tmp_path)
    poison = lambda x: x * np.nan if np.issubdtype(x.dtype, np.floating) else x  # noqa: E731
    poisoned = state.replace(opt_state=jax.tree.map(poison, state.opt_state))
    with Checkpointer(tmp_path / 'checkpoints', max_to_keep=5) as manager:
        manager.save(8, poisoned)
    (tmp_path / 'checkpoints' / '8' / 'checksums.json').unlink()
    with caplog.at_level(logging.WARNING), runtime.checkpointer(run, tmp_path) as manager:
        _, step = runtime.restore(run, manager)
    assert step == 6 and 'holds NaN or Inf' in caplog.text


def _launch(path, *flags):
    return [
        sys.executable,
        'launch.py',
        '--config=configs/quickstart.py',
        f'--workdir={path}',
        '--config.dataset.shapes_resolution=28',
        '--config.model.width=8',
        '--config.train.batch_size=8',
        '--config.train.eval_examples=16',
        '--config.train.progress_bar=False',
        *flags,
    ]


def test_a_second_launch_into_a_held_workdir_exits_2_naming_the_holder(subprocess_env, tmp_path):
    with workdir.lock(tmp_path):
        result = subprocess.run(
            _launch(tmp_path),
            cwd=REPO,
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f'is in use by pid {os.getpid()}' in line
    assert not (tmp_path / 'checkpoints').exists()


def test_two_launches_at_once_one_runs_whole_the_other_is_refused(
    data_dir, subprocess_env, tmp_path
):
    runtime.prepare(tiny('quickstart', data_dir))  # the data, prepared before both start
    flags = ['--config.train.num_steps=40', '--config.train.log_every=2']
    processes = [
        subprocess.Popen(
            _launch(tmp_path, *flags),
            cwd=REPO,
            env=subprocess_env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = sorted((p.wait(timeout=600), p.stderr.read()) for p in processes)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    assert 'is in use by pid' in outcomes[1][1]
    steps = [r['step'] for r in logs.read_metrics(tmp_path) if 'train/loss' in r]
    assert steps == list(range(2, 41, 2))


def test_rerunning_a_finished_run_changes_nothing_and_eval_keeps_the_train_record(
    data_dir, tmp_path
):
    config = _config(data_dir)
    train.train_and_evaluate(config, tmp_path)
    written = (tmp_path / 'results.json').read_bytes()
    assert train.train_and_evaluate(config, tmp_path) == json.loads(written)
    assert (tmp_path / 'results.json').read_bytes() == written
    before = json.loads(written)
    after = evaluate.evaluate(config, tmp_path)
    assert after['train'] == before['train'] and after['train']
    assert after['compile_seconds'] == before['compile_seconds'] is not None
    assert after['metrics'] == before['metrics']


def test_a_run_stopped_at_its_last_step_keeps_its_train_record(data_dir, tmp_path):
    """A checkpoint of the last step without results.json (SIGTERM there): the rerun writes
    results.json with the train metrics and compile time the checkpoint carried."""
    config = _config(data_dir)
    train.train_and_evaluate(config, tmp_path / 'whole')
    shutil.copytree(tmp_path / 'whole', tmp_path / 'stopped')
    (tmp_path / 'stopped' / 'results.json').unlink()
    rerun = train.train_and_evaluate(config, tmp_path / 'stopped')
    whole = json.loads((tmp_path / 'whole' / 'results.json').read_text())
    for key in ('metrics', 'train', 'compile_seconds'):
        assert rerun[key] == whole[key], key


def test_a_diverging_gan_stops_and_leaves_only_sound_checkpoints(data_dir, tmp_path):
    config = tiny('dcgan_mnist', data_dir, num_steps=40, checkpoint_every=5, log_every=5)
    config.dataset.name = 'shapes'
    config.lr = 1e10
    config.train.loss_limit = 1e6
    with pytest.raises(train.NonFiniteError, match='non-finite|train.loss_limit'):
        train.train_and_evaluate(config, tmp_path)
    run = runtime.prepare(config)
    with runtime.checkpointer(run, tmp_path) as manager:
        for step in manager.all_steps():  # every checkpoint left restores, finite and whole
            manager.restore(runtime.initial_state(run), step=step)


def test_a_nan_before_any_checkpoint_says_so(data_dir, tmp_path):
    config = tiny('quickstart', data_dir, num_steps=2, log_every=1)
    config.model.likelihood = 'gaussian'
    config.model.decoder_std = 1e-30  # Overflows the Gaussian log-likelihood to -inf.
    with pytest.raises(train.NonFiniteError, match='No checkpoint was written'):
        train.train_and_evaluate(config, tmp_path)


def test_a_resume_between_log_steps_logs_what_an_uninterrupted_run_logs(data_dir, tmp_path):
    """Checkpoints every 3 steps, logs every 4: the checkpoint of step 6 carries the window
    of steps 5 and 6, so the record of step 8 is the same after a resume from step 6."""
    config = tiny('quickstart', data_dir, num_steps=10, checkpoint_every=3, log_every=4)
    config.train.keep_checkpoints = 5
    train.train_and_evaluate(config, tmp_path / 'straight')
    shutil.copytree(tmp_path / 'straight', tmp_path / 'resumed')
    for step in (9, 10):  # as if killed at step 7 or 8
        shutil.rmtree(tmp_path / 'resumed' / 'checkpoints' / str(step))
    (tmp_path / 'resumed' / 'results.json').unlink()
    train.train_and_evaluate(config, tmp_path / 'resumed')
    assert _records(tmp_path / 'resumed') == _records(tmp_path / 'straight')
