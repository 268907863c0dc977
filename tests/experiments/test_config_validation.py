"""Every validation error path: unknown key, wrong type, out of range, inconsistent."""

import subprocess
import sys
from pathlib import Path

import pytest

from configs import dcgan_mnist, default
from experiments.config_validation import (
    ConfigError,
    check_image_shape,
    check_labels,
    validate_config,
)

REPO = Path(__file__).resolve().parents[2]


def _with(key: str, value):
    config = default.get_config()
    parent, _, leaf = key.rpartition('.')
    node = config
    for part in filter(None, parent.split('.')):
        node = node[part]
    with node.ignore_type():
        node[leaf] = value
    return config


@pytest.mark.parametrize(
    'key,value,allowed',
    [
        ('model.name', 'gann', "one of 'gan' | 'vae'"),
        ('model.gan_loss', 'wgan', "'minimax' | 'non_saturating'"),
        ('model.likelihood', 'poisson', "'bernoulli' | 'gaussian'"),
        ('optim.name', 'lbfgs', "'adam'"),
        ('lr', 0.0, '> 0'),
        ('lr', -1e-3, '> 0'),
        ('train.num_steps', 0, '>= 1'),
        ('train.batch_size', -4, '>= 1'),
        ('model.d_dropout', 1.0, 'in [0, 1)'),
        ('model.hidden', (), 'non-empty tuple'),
        ('dataset.image_size', 4, '0 (keep) or >= 8'),
        ('train.num_steps', 2.5, 'type int'),
        ('lr', 'fast', 'type float'),
        ('train.progress_bar', 1, 'type bool'),
    ],
)
def test_bad_values_name_key_value_and_allowed(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        validate_config(_with(key, value))
    message = str(error.value)
    assert message.startswith(f'config.{key}={value!r}')
    assert allowed in message


def test_int_accepted_for_float():
    validate_config(_with('lr', 1))


def test_unknown_and_missing_keys():
    config = default.get_config()
    config.train.num_stepz = 10
    with pytest.raises(ConfigError, match='train.num_stepz.*unknown key'):
        validate_config(config)
    config = default.get_config()
    del config.model['beta']
    with pytest.raises(ConfigError, match='model.beta.*missing'):
        validate_config(config)


def test_inconsistent_combinations():
    config = dcgan_mnist.get_config()
    config.model.net = 'mlp'
    config.model.spectral_norm = True
    with pytest.raises(ConfigError, match="spectral_norm=True .*False with model.net='mlp'"):
        validate_config(config)
    config = dcgan_mnist.get_config()
    config.dataset.binarize = True
    with pytest.raises(ConfigError, match='dataset.binarize'):
        validate_config(config)
    config = default.get_config()
    config.train.batch_size = 30
    with pytest.raises(ConfigError, match='train.batch_size=30.*multiple of the device count'):
        validate_config(config, num_devices=8)
    config = dcgan_mnist.get_config()
    config.eval.metrics = ('class_accuracy',)
    with pytest.raises(ConfigError, match='eval.metrics=.*class-conditional'):
        validate_config(config)
    config = default.get_config()
    config.dataset.image_size = 9
    with pytest.raises(ConfigError, match='dataset.image_size=9'):
        check_image_shape(config, (9, 9, 1))


def test_unknown_config_variant():
    with pytest.raises(ValueError, match="variant 'huge' is unknown"):
        dcgan_mnist.get_config('huge')


def _launch(*args):
    return subprocess.run(
        [sys.executable, 'launch.py', *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    'args,expected',
    [
        (['--config.model.name=gann'], "config.model.name='gann' is not allowed"),
        (['--config.train.num_stepz=3'], 'unknown config key'),
        (['--config.train.num_steps=abc'], 'num_steps=abc'),
        (['--config.lr=-1'], 'config.lr=-1.0 is not allowed: > 0'),
        (['--mode=fly'], '--mode'),
    ],
)
def test_launch_reports_one_line_and_exit_2(args, expected, tmp_path):
    result = _launch('--config', 'configs/quickstart.py', '--workdir', str(tmp_path), *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert 'Traceback' not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / 'checkpoints').exists()


@pytest.mark.parametrize(
    'config_arg,expected',
    [
        ('configs/missing.py', 'missing.py'),
        ('configs/dcgan_mnist.py:huge', "variant 'huge' is unknown"),
    ],
)
def test_launch_bad_config_file(config_arg, expected, tmp_path):
    result = _launch('--config', config_arg, '--workdir', str(tmp_path))
    assert result.returncode == 2
    assert expected in result.stderr and 'Traceback' not in result.stderr


def test_conditional_model_needs_labels():
    config = default.get_config()
    config.model.conditional = True
    check_labels(config, num_classes=10)
    with pytest.raises(ConfigError, match='model.conditional'):
        check_labels(config, num_classes=0)
