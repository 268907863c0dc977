"""Batched feature extraction and the reference-feature cache, keyed by the net's checksum."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models import data
from gen_models.metrics import features
from tests.tiny import tiny


def _channel_means(checksum: str = 'a' * 64) -> features.FeatureNet:
    """A small real feature net: per-channel pixel means."""
    return features.FeatureNet(
        name='channel-means',
        checksum=checksum,
        dim=1,
        batch_size=3,
        apply=jax.jit(lambda images: images.astype(jnp.float32).mean(axis=(1, 2))),
    )


def test_extract_features_pads_the_last_batch_and_keeps_order():
    images = np.random.default_rng(0).integers(0, 256, (7, 4, 4, 1), dtype=np.uint8)
    out = features.extract_features(_channel_means(), images)
    np.testing.assert_allclose(out, images.mean(axis=(1, 2)), rtol=1e-6)
    with pytest.raises(ValueError, match='uint8'):
        features.extract_features(_channel_means(), images.astype(np.float32))


def test_reference_features_are_cached_per_split_count_and_checksum(data_dir, tmp_path):
    dataset = tiny('quickstart', data_dir).dataset
    net = _channel_means()
    first = features.reference_features(net, dataset, 'test', 10, tmp_path)
    expected = data.load_split_array(dataset, 'test', 10)['image'].mean(axis=(1, 2))
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    (cached,) = tmp_path.glob('*.npy')
    assert 'test' in cached.name and net.checksum[:16] in cached.name
    np.save(cached, first + 1.0)  # a second call reads the file instead of recomputing
    np.testing.assert_array_equal(
        features.reference_features(net, dataset, 'test', 10, tmp_path), first + 1.0
    )
    other = features.reference_features(_channel_means('b' * 64), dataset, 'test', 10, tmp_path)
    np.testing.assert_array_equal(other, first)
    features.reference_features(net, dataset, 'test', 12, tmp_path)
    assert len(list(tmp_path.glob('*.npy'))) == 3


def test_stats_dir_from_config_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(features.STATS_DIR_ENV, str(tmp_path))
    assert features.stats_dir('here') == pathlib.Path('here')
    assert features.stats_dir('') == tmp_path
