"""Data-test fixtures; `shared_data` and `data_dir` come from tests/conftest.py."""

import types

import pytest


@pytest.fixture(scope='session')
def make_config(data_dir):
    """Builds a dataset config (a plain namespace) reading from the session's data_dir."""

    def make(name: str, **overrides) -> types.SimpleNamespace:
        fields = dict(
            name=name,
            data_dir=data_dir,
            source_dir='',
            image_size=0,
            train_split='train',
            eval_split='test',
            shapes_resolution=28,
        )
        fields.update(overrides)
        return types.SimpleNamespace(**fields)

    return make
