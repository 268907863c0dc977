"""Image transformations: exact against numpy, keyed draws reproducible, identities exact."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest

from configs import default
from gen_models.data import transforms
from gen_models.models import base


@pytest.fixture(scope='module')
def images() -> np.ndarray:
    return np.random.default_rng(0).random((4, 12, 12, 2)).astype(np.float32)


def _config(**overrides) -> ml_collections.ConfigDict:
    config = default.get_config().transform
    config.update(overrides)
    return config


@pytest.mark.parametrize('angle, turns', [(90.0, 1), (180.0, 2), (270.0, 3), (-90.0, 3)])
def test_quarter_turns_are_np_rot90(images, angle, turns):
    np.testing.assert_array_equal(
        transforms.rotate(images, angle), np.rot90(images, turns, axes=(1, 2))
    )


def test_bilinear_rotation_agrees_with_rot90_and_scipy(images):
    """The resampling path (used for other angles) at exactly 90 degrees is rot90, and at 30
    degrees it matches scipy's order-1 rotation of each plane about its centre, zeros outside
    (scipy's rotate by 90 is np.rot90: the same direction)."""
    from scipy import ndimage

    quarter = transforms.affine(images, np.array([[0.0, 1.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(quarter, np.rot90(images, axes=(1, 2)), atol=1e-6)
    expected = np.stack(
        [
            np.stack(
                [
                    ndimage.rotate(plane, 30.0, reshape=False, order=1, mode='grid-constant')
                    for plane in np.moveaxis(image, -1, 0)
                ],
                axis=-1,
            )
            for image in images
        ]
    )
    np.testing.assert_allclose(transforms.rotate(images, 30.0), expected, atol=1e-5)


@pytest.mark.parametrize('axis, numpy_axis', [('horizontal', 2), ('vertical', 1)])
def test_flip_is_np_flip(images, axis, numpy_axis):
    np.testing.assert_array_equal(transforms.flip(images, axis), np.flip(images, numpy_axis))


def test_rotation_by_zero_and_scale_one_are_identities(images):
    np.testing.assert_array_equal(transforms.rotate(images, 0.0), images)
    np.testing.assert_array_equal(transforms.rotate(images, 360.0), images)
    np.testing.assert_array_equal(transforms.scale(images, 1.0), images)


def test_scale_zooms_about_the_centre():
    """A 2x zoom of the centred 4 x 4 block of a 12 x 12 image is the centred 6 x 6 block with a
    bilinear ramp around it: output pixel p reads 5.5 + (p - 5.5) / 2, separably."""
    image = np.zeros((1, 12, 12, 1), np.float32)
    image[0, 4:8, 4:8] = 1.0
    profile = np.array([0, 0.25, 0.75, 1, 1, 1, 1, 1, 1, 0.75, 0.25, 0], np.float32)
    zoomed = transforms.scale(image, 2.0)
    np.testing.assert_allclose(zoomed[0, :, :, 0], np.outer(profile, profile), atol=1e-6)
    np.testing.assert_allclose(transforms.scale(zoomed, 0.5)[0, 5:7, 5:7], 1.0)


def _quarter_zeroed(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, : x.shape[1] // 2, : x.shape[2] // 2] = 0.0
    return out


def test_quarter_and_centre_masks(images):
    keys = base.index_keys(jax.random.key(0), len(images))
    np.testing.assert_array_equal(transforms.mask(images, 'quarter', keys), _quarter_zeroed(images))
    centre = np.asarray(transforms.mask(images, 'centre', keys))
    expected = images.copy()
    expected[:, 3:9, 3:9] = 0.0
    np.testing.assert_array_equal(centre, expected)


@pytest.mark.parametrize('height', [12, 7])
def test_lower_half_mask_zeroes_the_bottom_half_of_the_rows(height):
    images = np.random.default_rng(1).random((3, height, 5, 1)).astype(np.float32)
    keys = base.index_keys(jax.random.key(0), len(images))
    expected = images.copy()
    expected[:, height - height // 2 :] = 0.0
    np.testing.assert_array_equal(transforms.mask(images, 'lower_half', keys), expected)


def test_random_masks_are_half_size_boxes_drawn_per_key(images):
    keys = base.index_keys(jax.random.key(0), len(images))
    masked = np.asarray(transforms.mask(images, 'random', keys))
    boxes = masked != images
    for box in boxes[..., 0]:
        rows, cols = np.nonzero(box)
        assert rows.max() - rows.min() == 5 and cols.max() - cols.min() == 5
        assert box.sum() == 36
    assert len({tuple(np.argwhere(b[..., 0])[0]) for b in boxes}) > 1  # positions differ
    # Example i's box depends on its key alone.
    np.testing.assert_array_equal(transforms.mask(images[1:2], 'random', keys[1:2]), masked[1:2])


def test_noise_is_keyed_reproducible_and_clipped(images):
    keys = base.index_keys(jax.random.key(3), len(images))
    noisy = np.asarray(transforms.add_noise(images, 0.5, keys))
    np.testing.assert_array_equal(noisy, transforms.add_noise(images, 0.5, keys))
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    draws = np.stack([np.asarray(jax.random.normal(k, images.shape[1:])) for k in keys])
    np.testing.assert_allclose(noisy, np.clip(images + 0.5 * draws, 0.0, 1.0), atol=1e-6)
    other = transforms.add_noise(images, 0.5, base.index_keys(jax.random.key(4), len(images)))
    assert not np.allclose(noisy, other)


@pytest.mark.parametrize(
    'overrides, make_input, make_target',
    [
        ({'name': 'none'}, lambda x: x, lambda x: x),
        ({'name': 'rotate', 'angle': 90.0}, lambda x: x, lambda x: np.rot90(x, axes=(1, 2))),
        ({'name': 'flip', 'flip_axis': 'vertical'}, lambda x: x, lambda x: x[:, ::-1]),
        ({'name': 'mask', 'mask': 'quarter'}, _quarter_zeroed, lambda x: x),
    ],
)
def test_pairs_are_input_and_exact_target(images, overrides, make_input, make_target):
    keys = base.index_keys(jax.random.key(0), len(images))
    source, target = transforms.make_pair(_config(**overrides), images, keys)
    np.testing.assert_array_equal(source, make_input(images))
    np.testing.assert_array_equal(target, make_target(images))


def test_denoising_pair_has_the_clean_target(images):
    keys = base.index_keys(jax.random.key(0), len(images))
    source, target = transforms.make_pair(_config(name='noise', noise_std=0.1), images, keys)
    np.testing.assert_array_equal(target, images)
    np.testing.assert_array_equal(source, transforms.add_noise(images, 0.1, keys))
