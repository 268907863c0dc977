"""Sample-mode grids: spherical interpolation and class-conditional grid layout."""

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import runtime, sample, train
from gen_models.models import base
from tests.tiny import tiny


def test_slerp_ends_norm_and_angle():
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(2, 16))
    fractions = jnp.linspace(0.0, 1.0, 5)
    path = np.asarray(sample.slerp(jnp.asarray(start), jnp.asarray(end), fractions))
    np.testing.assert_allclose(path[0], start, atol=1e-5)
    np.testing.assert_allclose(path[-1], end, atol=1e-5)
    # Equal norms at the ends stay equal along the great circle, at equal angular steps.
    unit_start, unit_end = start / np.linalg.norm(start), end / np.linalg.norm(end)
    unit = np.asarray(sample.slerp(jnp.asarray(unit_start), jnp.asarray(unit_end), fractions))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    angles = np.arccos(np.clip(np.sum(unit[1:] * unit[:-1], axis=1), -1, 1))
    np.testing.assert_allclose(angles, np.arccos(unit_start @ unit_end) / 4, atol=1e-4)


def test_slerp_of_parallel_vectors_is_linear():
    start = jnp.ones(4)
    path = sample.slerp(start, 3 * start, jnp.asarray([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(np.asarray(path), [[1] * 4, [2] * 4, [3] * 4], atol=1e-5)


@pytest.mark.parametrize(
    'num_classes,num_samples,expected', [(0, 64, None), (10, 64, 6), (3, 2, 1)]
)
def test_class_labels_one_row_per_class(num_classes, num_samples, expected):
    labels = base.class_labels(num_classes, num_samples)
    if expected is None:
        assert labels is None
        return
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(
        labels.reshape(num_classes, expected), np.arange(num_classes)[:, None].repeat(expected, 1)
    )


@pytest.mark.parametrize(
    'config_name,expected',
    [
        ('cgan_mnist', {'samples', 'interpolations'}),
        ('vaegan_mnist', {'samples', 'reconstructions', 'interpolations'}),
        ('cvae_mnist', {'samples', 'reconstructions', 'interpolations'}),
    ],
)
def test_sample_mode_draws_every_grid_of_the_family(config_name, expected, data_dir, tmp_path):
    config = tiny(config_name, data_dir, num_steps=2, checkpoint_every=2, eval_every=2)
    config.dataset.name = 'shapes'  # labelled, embedded: conditional models run on it
    config.dataset.binarize = False
    train.train_and_evaluate(config, tmp_path)
    paths = sample.sample(config, tmp_path)
    assert {p.name.split('_final_')[0] for p in paths} == expected
    run = runtime.prepare(config)
    if run.model.num_classes:  # One row of the samples grid per class.
        grid = np.asarray(Image.open(tmp_path / 'samples' / 'samples_final_0000002.png'))
        side = run.info.image_shape[0] + 2
        assert (grid.shape[0] - 2) // side == run.model.num_classes
