"""The procedural 'shapes' dataset: exact rendering and a deterministic builder."""

import pathlib

import numpy as np
import pytest

import gen_models.data as gd
from gen_models.data import shapes
from gen_models.data.builders import shapes as shapes_builder


@pytest.fixture(scope='module')
def factors():
    return shapes_builder.sample_factors(300, seed=1)


def test_render_is_exact_white_on_black():
    image = shapes.render(0, 1.0, 0.0, 0.5, 0.5, 64)  # axis-aligned square, 18.1 px a side
    assert image.shape == (64, 64, 1) and image.dtype == np.uint8
    assert image[32, 32, 0] == 255 and image[0, 0, 0] == 0
    side = 2 * shapes.BASE_RADIUS * np.sqrt(0.5) * 64
    # area up to the 1/8-pixel sampling grid
    np.testing.assert_allclose(image.sum() / 255, side**2, atol=4 * side / shapes.SUPERSAMPLING)


def test_render_matches_render_batch(factors):
    images = shapes.render_batch(**factors, resolution=32)
    for i in range(0, 300, 37):
        single = shapes.render(
            *(factors[k][i] for k in ('shape', 'scale', 'rotation', 'pos_x', 'pos_y')), 32
        )
        np.testing.assert_array_equal(single, images[i])


@pytest.mark.parametrize('resolution', [28, 64])
def test_flip_and_quarter_turn_are_factor_transformations(factors, resolution):
    """Ground truth for image-transformation benchmarks: exact, pixel for pixel."""
    f = {k: v.astype(np.float64) for k, v in factors.items()}
    images = shapes.render_batch(**f, resolution=resolution)
    flipped = shapes.render_batch(
        f['shape'], f['scale'], -f['rotation'], 1 - f['pos_x'], f['pos_y'], resolution
    )
    np.testing.assert_array_equal(flipped, images[:, :, ::-1])
    turned = shapes.render_batch(
        f['shape'], f['scale'], f['rotation'] + np.pi / 2, f['pos_y'], 1 - f['pos_x'], resolution
    )  # counter-clockwise
    np.testing.assert_array_equal(turned, np.rot90(images, 1, axes=(1, 2)))


def test_shapes_partly_outside_the_frame_are_clipped():
    image = shapes.render(2, 1.0, 0.3, 0.02, 0.5, 32)
    assert 0 < image.sum() < shapes.render(2, 1.0, 0.3, 0.5, 0.5, 32).sum()


def test_sample_factors_are_distinct_grid_points():
    f = shapes_builder.sample_factors(22_000)
    combos = np.stack([f['shape'], f['scale'], f['rotation'], f['pos_x'], f['pos_y']], 1)
    assert len(np.unique(combos, axis=0)) == 22_000
    assert set(np.unique(f['shape'])) == {0, 1, 2}
    np.testing.assert_array_equal(np.unique(f['scale']), shapes_builder.SCALES.astype(np.float32))
    assert f['pos_x'].min() >= 0.2 - 1e-6 and f['pos_x'].max() <= 0.8 + 1e-6


@pytest.fixture(scope='module')
def shapes_test(make_config):
    return gd.load_split_array(make_config('shapes'), 'test')


def test_stored_factors_rerender_to_stored_images(shapes_test):
    assert shapes_test['image'].shape == (2000, 28, 28, 1)
    rerendered = shapes.render_batch(
        shapes_test['shape'],
        shapes_test['scale'],
        shapes_test['rotation'],
        shapes_test['pos_x'],
        shapes_test['pos_y'],
        28,
    )
    np.testing.assert_array_equal(rerendered, shapes_test['image'])
    np.testing.assert_array_equal(shapes_test['label'], shapes_test['shape'])
    assert shapes_test['rotation'].dtype == np.float32
    drawn = shapes_builder.sample_factors(22_000)  # the test split is draws 20000..21999
    np.testing.assert_array_equal(shapes_test['pos_x'], drawn['pos_x'][20_000:])


def test_two_builds_store_identical_records(make_config, data_dir, tmp_path, shapes_test):
    """The same files holding the same records in the same order. (Their bytes can differ
    between processes: protobuf serialises a tf.Example's feature map in an order of its own
    per process.)"""
    del shapes_test  # ensures the session's build exists
    gd.prepare(make_config('shapes', data_dir=str(tmp_path)))
    files = lambda root: sorted(
        f.name for f in pathlib.Path(root, 'gen_models_shapes', 'res28').rglob('*.array_record*')
    )
    assert files(data_dir) == files(tmp_path) and files(data_dir)
    for split in ('train', 'test'):
        first = gd.load_split_array(make_config('shapes'), split)
        second = gd.load_split_array(make_config('shapes', data_dir=str(tmp_path)), split)
        assert first.keys() == second.keys()
        for key in first:
            np.testing.assert_array_equal(first[key], second[key], err_msg=f'{split}/{key}')


def test_resolution_option(make_config):
    assert shapes_builder.config_for(64) == 'res64'  # the predefined configs
    info = gd.dataset_info(make_config('shapes', shapes_resolution=20))  # a custom config
    assert info.image_shape == (20, 20, 1)
    assert (info.num_classes, info.num_train, info.num_eval) == (3, 20_000, 2_000)
    small = gd.load_split_array(make_config('shapes', shapes_resolution=20), 'test', 50)
    rerendered = shapes.render_batch(
        small['shape'], small['scale'], small['rotation'], small['pos_x'], small['pos_y'], 20
    )
    np.testing.assert_array_equal(rerendered, small['image'])
