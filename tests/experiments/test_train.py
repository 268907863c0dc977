"""End-to-end training: every config runs, runs repeat exactly, resume equals no stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments import evaluate, logs, runtime, sample, train
from gen_models import xla_settings
from gen_models.checkpoints import Checkpointer
from tests.conftest import REPO
from tests.tiny import tiny

CONFIGS = ['quickstart', 'dcgan_mnist', 'vae_mnist', 'vae_mlp_mnist']
TIMING_KEYS = (
    'time',
    'train/steps_per_second',
    'train/images_per_second',
    'train/input_wait_fraction',
)


def _train_metrics(workdir):
    """Train records without timing (evaluations depend on where a run segment ended)."""
    return [
        {k: v for k, v in record.items() if k not in TIMING_KEYS}
        for record in logs.read_metrics(workdir)
        if any(k.startswith('train/') for k in record)
    ]


def _train_metrics_or_none(workdir):
    return (workdir / 'metrics.jsonl').exists() and _train_metrics(workdir)


def _final_params(config, workdir):
    run = runtime.prepare(config)
    state, step = runtime.restore_latest(run, workdir)
    return jax.device_get(state.params), step


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('config_name', CONFIGS)
def test_every_config_trains_end_to_end(config_name, data_dir, shared_data, tmp_path):
    config = tiny(config_name, data_dir, str(shared_data))
    results = train.train_and_evaluate(config, tmp_path)

    assert results['step'] == 4
    assert all(np.isfinite(v) for v in results['metrics'].values())
    assert json.loads((tmp_path / 'results.json').read_text())['metrics'] == results['metrics']
    assert json.loads((tmp_path / 'config.json').read_text())['model']['name'] == config.model.name
    assert 'packages' in json.loads((tmp_path / 'environment.json').read_text())
    records = logs.read_metrics(tmp_path)
    assert [r['step'] for r in records if any(k.startswith('train/') for k in r)] == [2, 4]
    assert any(k.startswith('eval/') for k in records[-1])
    assert Checkpointer(tmp_path / 'checkpoints').all_steps() == [2, 4]
    assert (tmp_path / 'samples' / 'samples_0000004.png').is_file()
    assert list(tmp_path.glob('events.out.*'))
    if config.model.name == 'vae':
        assert (tmp_path / 'samples' / 'reconstructions_0000004.png').is_file()
        assert results['protocol']['metric_units'] == 'nats per image'


def test_same_seed_same_numbers_other_seed_differs(data_dir, tmp_path):
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        config = tiny('quickstart', data_dir)
        config.seed = seed
        train.train_and_evaluate(config, tmp_path / name)
    a, b, c = (_train_metrics(tmp_path / n) for n in 'abc')
    assert a == b
    assert a != c


def test_vae_elbo_improves(data_dir, tmp_path):
    config = tiny(
        'quickstart',
        data_dir,
        num_steps=150,
        log_every=50,
        eval_every=150,
        checkpoint_every=150,
        sample_every=150,
    )
    config.model.width = 16
    train.train_and_evaluate(config, tmp_path)
    elbos = [r['train/elbo'] for r in logs.read_metrics(tmp_path) if 'train/elbo' in r]
    assert elbos[-1] > elbos[0] + 50, elbos


def test_resume_equals_uninterrupted_run(data_dir, tmp_path):
    config = tiny('dcgan_mnist', data_dir, num_steps=6, checkpoint_every=3, log_every=1)
    config.dataset.name = 'shapes'
    train.train_and_evaluate(config, tmp_path / 'straight')

    config.train.num_steps = 3
    train.train_and_evaluate(config, tmp_path / 'resumed')
    config.train.num_steps = 6
    train.train_and_evaluate(config, tmp_path / 'resumed')

    straight, step_a = _final_params(config, tmp_path / 'straight')
    resumed, step_b = _final_params(config, tmp_path / 'resumed')
    assert step_a == step_b == 6
    _assert_trees_equal(straight, resumed)
    assert _train_metrics(tmp_path / 'straight') == _train_metrics(tmp_path / 'resumed')


def _launch(workdir, env, *overrides):
    return [
        sys.executable,
        'launch.py',
        '--config',
        'configs/quickstart.py',
        '--workdir',
        str(workdir),
        '--config.dataset.shapes_resolution=28',
        '--config.model.width=8',
        '--config.train.batch_size=8',
        '--config.train.eval_examples=16',
        '--config.train.progress_bar=False',
        *overrides,
    ]


def test_sigterm_checkpoints_and_resume_matches(data_dir, subprocess_env, tmp_path):
    overrides = [
        '--config.train.num_steps=2000',
        '--config.train.log_every=5',
        '--config.train.checkpoint_every=1000',
        '--config.train.eval_every=1000',
        '--config.train.sample_every=1000',
    ]
    killed = tmp_path / 'killed'
    process = subprocess.Popen(
        _launch(killed, subprocess_env, *overrides),
        cwd=REPO,
        env=subprocess_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not _train_metrics_or_none(killed):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    interrupted_at = Checkpointer(killed / 'checkpoints').latest_step()
    written = sorted(str(p.relative_to(killed)) for p in killed.rglob('*'))
    assert interrupted_at is not None and interrupted_at < 2000, (stderr, written)

    for workdir in (killed, tmp_path / 'straight'):
        finished = subprocess.run(
            _launch(workdir, subprocess_env, *overrides),
            cwd=REPO,
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert finished.returncode == 0, finished.stderr

    config = tiny('quickstart', data_dir)
    config.model.latent_dim = 16
    a, _ = _final_params(config, killed)
    b, _ = _final_params(config, tmp_path / 'straight')
    _assert_trees_equal(a, b)
    results = [
        json.loads((d / 'results.json').read_text()) for d in (killed, tmp_path / 'straight')
    ]
    assert results[0]['metrics'] == results[1]['metrics']
    environment = json.loads((killed / 'environment.json').read_text())
    assert '--xla_gpu_deterministic_ops=true' in environment['xla_flags']  # train.deterministic
    # The checkpoint carried the window logged since the last log step: every record agrees,
    # the first one after resuming included.
    assert _train_metrics(killed) == _train_metrics(tmp_path / 'straight')
    assert any(r['step'] > interrupted_at for r in _train_metrics(killed))
    kept = [{k: v for k, v in r['train'].items() if k not in TIMING_KEYS} for r in results]
    assert kept[0] == kept[1] and kept[0]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path):
    config = tiny('quickstart', data_dir, num_steps=2)
    config.model.likelihood = 'gaussian'
    train.train_and_evaluate(config, tmp_path)
    good, _ = _final_params(config, tmp_path)

    config.model.decoder_std = 1e-30  # Overflows the Gaussian log-likelihood to -inf.
    config.train.num_steps = 4
    with pytest.raises(train.NonFiniteError, match=r'non-finite .*step (3|4).*step 2'):
        train.train_and_evaluate(config, tmp_path)
    assert Checkpointer(tmp_path / 'checkpoints').latest_step() == 2
    after, _ = _final_params(config, tmp_path)
    _assert_trees_equal(good, after)


def test_stop_request_at_a_non_finite_step_reports_the_error_not_a_save(
    data_dir, tmp_path, monkeypatch
):
    """A SIGTERM that arrives on the step whose loss turns non-finite saves nothing, and the
    run says so (NonFiniteError), instead of claiming a checkpoint."""
    config = tiny('quickstart', data_dir, num_steps=4)
    config.model.likelihood = 'gaussian'
    config.model.decoder_std = 1e-30  # -inf from the first step
    config.train.log_every = 1
    feed = train.batches.batches

    def signalled_batches(*args):
        for batch in feed(*args):
            signal.raise_signal(signal.SIGTERM)  # collected by the loop's stop_requests
            yield batch

    monkeypatch.setattr(train.batches, 'batches', signalled_batches)
    with pytest.raises(train.NonFiniteError, match='step 1; stopping. No checkpoint'):
        train.train_and_evaluate(config, tmp_path)
    assert Checkpointer(tmp_path / 'checkpoints').latest_step() is None


def test_eval_and_sample_modes_use_latest_checkpoint(data_dir, tmp_path):
    config = tiny('quickstart', data_dir)
    trained = train.train_and_evaluate(config, tmp_path)
    evaluated = evaluate.evaluate(config, tmp_path)
    assert evaluated['step'] == 4
    assert evaluated['metrics'] == trained['metrics']
    paths = sample.sample(config, tmp_path)
    assert {p.name for p in paths} == {
        'samples_final_0000004.png',
        'reconstructions_final_0000004.png',
        'interpolations_final_0000004.png',
    }
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        evaluate.evaluate(config, tmp_path / 'empty')


def test_checkpoint_of_another_model_is_a_clear_error(data_dir, tmp_path):
    config = tiny('quickstart', data_dir, num_steps=2)
    train.train_and_evaluate(config, tmp_path)
    config.model.width = 16
    with pytest.raises(runtime.IncompatibleCheckpointError, match='fits this config') as error:
        train.train_and_evaluate(config, tmp_path)
    # The first differing array, by name, with the shapes saved and wanted.
    assert 'wanted float32[' in str(error.value)
    assert 'params/encoder/Conv_0/kernel: saved float32[4, 4, 1, 8], wanted' in str(error.value)


@pytest.mark.parametrize(
    ('before', 'after'),
    [
        (None, '--xla_gpu_deterministic_ops=true'),
        (
            '--xla_force_host_platform_device_count=8',
            '--xla_force_host_platform_device_count=8 --xla_gpu_deterministic_ops=true',
        ),
        ('--xla_gpu_deterministic_ops=false', '--xla_gpu_deterministic_ops=false'),
    ],
)
def test_deterministic_gpu_ops_join_the_xla_flags_unless_set(before, after):
    environ = {} if before is None else {'XLA_FLAGS': before}
    xla_settings.request_deterministic_gpu_ops(environ)
    assert environ['XLA_FLAGS'] == after
