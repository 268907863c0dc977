"""Session-wide fixtures: the local datasets folder and one prepared-data folder.

Datasets are prepared once per test session into a temporary TFDS data_dir; raw files
come from `<repo>/../shared/data`, and tests that need them skip when it is missing.
"""

from __future__ import annotations

import os
import pathlib

import pytest
import tensorflow_datasets as tfds

from gen_models import xla_settings

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data() -> pathlib.Path:
    """<repo>/../shared/data, or a skip when this machine does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'local datasets folder {SHARED_DATA} is missing')
    return SHARED_DATA


@pytest.fixture(scope='session', autouse=True)
def _quiet_tfds():
    tfds.display_progress_bar(False)


def _session_folder(tmp_path_factory, name: str) -> pathlib.Path:
    """A folder of this test session, shared by its pytest-xdist workers (each of which has
    its own base temp folder under one common parent)."""
    if not os.environ.get('PYTEST_XDIST_WORKER'):
        return tmp_path_factory.mktemp(name)
    path = tmp_path_factory.getbasetemp().parent / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory) -> pathlib.Path:
    """One persistent compilation cache per session (subprocesses find it in the environment),
    and the CPU threefry lowering launch.py trains with: repeated compiles are skipped."""
    path = _session_folder(tmp_path_factory, 'jax_cache')
    os.environ[xla_settings.COMPILATION_CACHE_ENV] = str(path)
    xla_settings.use_unrolled_threefry()
    return xla_settings.enable_compilation_cache(str(path))


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory) -> str:
    """Prepared TFDS data shared by every test of the session and its workers (each dataset
    built once, or by two workers at once, whose race `datasets.prepare` settles)."""
    return str(_session_folder(tmp_path_factory, 'tfds_data'))


@pytest.fixture
def subprocess_env(data_dir) -> dict[str, str]:
    """Environment for launching the CLI in a subprocess against the session's data."""
    env = dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONUNBUFFERED='1')
    if SHARED_DATA.is_dir():
        env['GEN_MODELS_DATA_DIR'] = str(SHARED_DATA)
    return env
