"""Shared fixtures: the local datasets folder and one prepared-data folder per session."""

import pathlib
import types

import pytest
import tensorflow_datasets as tfds

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data'


@pytest.fixture(scope='session', autouse=True)
def _quiet_tfds():
  tfds.display_progress_bar(False)


@pytest.fixture(scope='session')
def shared_data() -> pathlib.Path:
  """<repo>/../shared/data, or a skip when this machine does not have it."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f'local datasets folder {SHARED_DATA} is missing')
  return SHARED_DATA


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory) -> str:
  """Prepared TFDS data, shared by all data tests so each dataset is built once."""
  return str(tmp_path_factory.mktemp('tfds_data'))


@pytest.fixture(scope='session')
def make_config(data_dir):
  """Builds a dataset config (a plain namespace) reading from the session's data_dir."""
  def make(name: str, **overrides) -> types.SimpleNamespace:
    fields = dict(name=name, data_dir=data_dir, source_dir='', image_size=0,
                  train_split='train', eval_split='test', shapes_resolution=28)
    fields.update(overrides)
    return types.SimpleNamespace(**fields)
  return make
