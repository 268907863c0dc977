"""Reading a dataset config: defaults and environment fallbacks."""

import os
import types

import ml_collections

from gen_models.data.config import DataSpec


def test_config_dict_and_defaults(monkeypatch):
    monkeypatch.delenv('TFDS_DATA_DIR', raising=False)
    monkeypatch.delenv('GEN_MODELS_DATA_DIR', raising=False)
    spec = DataSpec.from_config(
        ml_collections.ConfigDict({'name': 'mnist', 'data_dir': '', 'source_dir': ''})
    )
    assert spec.data_dir == os.path.expanduser('~/tensorflow_datasets')
    assert spec.source_dir is None  # download
    assert (spec.image_size, spec.train_split, spec.eval_split, spec.shapes_resolution) == (
        0,
        'train',
        'test',
        64,
    )


def test_environment_fallbacks_and_explicit_values(monkeypatch):
    monkeypatch.setenv('TFDS_DATA_DIR', '/prepared')
    monkeypatch.setenv('GEN_MODELS_DATA_DIR', '/sources')
    spec = DataSpec.from_config(types.SimpleNamespace(name='cifar10', data_dir='', source_dir=''))
    assert (spec.data_dir, spec.source_dir) == ('/prepared', '/sources')
    spec = DataSpec.from_config(
        types.SimpleNamespace(name='cifar10', data_dir='/a', source_dir='/b', image_size=64)
    )
    assert (spec.data_dir, spec.source_dir, spec.image_size) == ('/a', '/b', 64)
    assert DataSpec.from_config(spec) == spec
