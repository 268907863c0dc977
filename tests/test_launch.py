"""launch.py: bad flags and config values get one line and exit status 2, before any work."""

import subprocess
import sys

import pytest

from tests.conftest import REPO


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
        (['--config.lr=-1'], 'config.lr=-1.0 is not allowed: a finite number > 0'),
        (['--config.model.gan_loss=hinge'], 'unknown config key'),
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
