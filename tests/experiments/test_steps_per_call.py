"""Several train steps per compiled call, and batches gathered from a split on the devices:
the same batches, and the same numbers as one step per call."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from experiments import batches, logs, runtime, train
from gen_models import parallel, schema
from gen_models.config import ConfigError
from tests.tiny import tiny

TIMING = ('time', 'train/steps_per_second', 'train/images_per_second', 'train/input_wait_fraction')


def _config(data_dir, name='quickstart', **overrides):
    config = tiny(name, data_dir, num_steps=8, log_every=2, checkpoint_every=4, eval_every=8)
    config.dataset.name = 'shapes'
    config.train.update(sample_every=8, **overrides)
    return config


def _records(path):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in logs.read_metrics(path)]


def _assert_close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_allclose(x[key], y[key], rtol=1e-5, atol=1e-6, err_msg=key)


def _params(config, path):
    run = runtime.prepare(config)
    state, _ = runtime.restore_latest(run, path)
    return jax.device_get(state.params)


@pytest.mark.parametrize('name', ['quickstart', 'dcgan_mnist'])
def test_two_steps_per_call_compute_what_one_step_per_call_does(data_dir, tmp_path, name):
    one = _config(data_dir, name)
    two = _config(data_dir, name, steps_per_call=2)
    train.train_and_evaluate(one, tmp_path / 'one')
    train.train_and_evaluate(two, tmp_path / 'two')
    _assert_close(_records(tmp_path / 'one'), _records(tmp_path / 'two'))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        _params(one, tmp_path / 'one'),
        _params(two, tmp_path / 'two'),
    )


def test_a_multi_step_run_resumes_exactly(data_dir, tmp_path):
    config = _config(data_dir, steps_per_call=2)
    train.train_and_evaluate(config, tmp_path / 'straight')
    config.train.num_steps = 4
    train.train_and_evaluate(config, tmp_path / 'resumed')
    config.train.num_steps = 8
    train.train_and_evaluate(config, tmp_path / 'resumed')
    trained = [
        [r for r in _records(tmp_path / d) if any(k.startswith('train/') for k in r)]
        for d in ('straight', 'resumed')
    ]  # (the 4-step run also evaluated at its end)
    assert trained[0] == trained[1] and trained[0]


@pytest.mark.parametrize('key', ['log_every', 'checkpoint_every', 'num_steps'])
def test_an_interval_that_is_not_a_multiple_of_the_call_is_refused(key):
    config = tiny('quickstart', '', steps_per_call=4)
    config.train.update(num_steps=8, log_every=4, checkpoint_every=4, eval_every=8, sample_every=8)
    config.train[key] = 6
    with pytest.raises(ConfigError, match=f'train.{key}=6 .*multiple of train.steps_per_call'):
        schema.validate(config)


@pytest.mark.parametrize('steps,seeds', [(1, [0]), (2, [0]), (1, [0, 1]), (2, [1, 0, 1])])
def test_batches_gathered_on_the_devices_are_the_host_pipelines(data_dir, steps, seeds):
    config = _config(data_dir, steps_per_call=steps, device_data_bytes=2**30)
    mesh = parallel.make_mesh()
    host = batches.host_batches(config, seeds, mesh, start_step=3)
    resident = batches.resident_batches(config, seeds, mesh, start_step=3)
    assert resident is not None
    for _ in range(3):
        a, b = jax.device_get(next(host)), jax.device_get(next(resident))
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key])
    small = _config(data_dir, device_data_bytes=1000)
    assert batches.resident_batches(small, [0], mesh, 0) is None  # too big: the host reads


def test_a_run_on_resident_data_computes_what_a_host_fed_run_does(data_dir, tmp_path):
    train.train_and_evaluate(_config(data_dir), tmp_path / 'host')
    train.train_and_evaluate(_config(data_dir, device_data_bytes=2**30), tmp_path / 'device')
    assert _records(tmp_path / 'host') == _records(tmp_path / 'device')


def test_a_vectorised_group_takes_several_steps_per_call_too(data_dir, tmp_path):
    configs = [_config(data_dir, steps_per_call=2, device_data_bytes=2**30) for _ in range(2)]
    configs[1].lr, configs[1].seed = 3e-3, 1
    together = train.train_trials(configs, [tmp_path / 'together' / str(i) for i in range(2)])
    for index, config in enumerate(configs):
        config.train.device_data_bytes = 0
        alone = train.train_and_evaluate(config, tmp_path / 'alone' / str(index))
        _assert_close([alone['metrics']], [together[index]['metrics']])
        _assert_close(
            _records(tmp_path / 'alone' / str(index)), _records(tmp_path / 'together' / str(index))
        )
