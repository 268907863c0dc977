"""launch.py: bad flags and config values get one line and exit status 2, before any work."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.tiny import tiny


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


@pytest.mark.parametrize(
    'source,expected',
    [
        ('def get_config(:\n  pass\n', 'bad.py:1: invalid syntax'),
        ('def get_config(arg=None):\n    return 1 / 0\n', 'bad.py:2: ZeroDivisionError'),
        ('X = 1\n', 'bad.py defines no get_config(arg=None)'),
        ('def get_config(arg=None):\n    return None\n', 'get_config() returned None'),
    ],
)
def test_a_config_file_that_does_not_load_is_one_line(source, expected, tmp_path):
    (tmp_path / 'bad.py').write_text(source)
    result = _launch('--config', str(tmp_path / 'bad.py'), '--workdir', str(tmp_path / 'run'))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert expected in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.parametrize(
    'workdir,expected',
    [('', 'must name a folder'), ('/proc/nope/run', 'cannot be made'), (None, 'is a file')],
)
def test_a_workdir_that_cannot_hold_a_run_is_one_line(workdir, expected, tmp_path):
    if workdir is None:
        workdir = str(tmp_path / 'file')
        (tmp_path / 'file').write_text('')
    result = _launch('--config', 'configs/quickstart.py', '--workdir', workdir)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_saved_config_json_is_a_config(data_dir, subprocess_env, tmp_path):
    """`--config runs/x/config.json` reruns a run as it was configured, overrides on top."""
    config = tiny('quickstart', data_dir, num_steps=2)
    (tmp_path / 'config.json').write_text(json.dumps(config.to_dict()))
    result = subprocess.run(
        [
            sys.executable,
            'launch.py',
            f'--config={tmp_path / "config.json"}',
            f'--workdir={tmp_path / "run"}',
            '--config.train.num_steps=3',
        ],
        cwd=REPO,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert 'step 3:' in result.stdout
