"""Image grids: value mapping, layout, padding and PNG files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gen_models.images import make_grid, save_image_grid, to_uint8


def constant_images(num: int, height: int, width: int, channels: int) -> np.ndarray:
    """Image i is filled with the value that maps to uint8 10 * (i + 1) in [-1, 1]."""
    values = 10.0 * (np.arange(num) + 1) / 127.5 - 1.0
    return np.broadcast_to(values[:, None, None, None], (num, height, width, channels)).copy()


def test_to_uint8_maps_range_and_clips():
    images = np.array([-1.0, 0.0, 1.0, -3.0, 2.0, np.nan])
    np.testing.assert_array_equal(to_uint8(images, (-1.0, 1.0)), [0, 128, 255, 0, 255, 0])
    np.testing.assert_array_equal(to_uint8(np.array([0.0, 0.5, 1.0]), (0.0, 1.0)), [0, 128, 255])


@pytest.mark.parametrize('channels', [1, 3])
def test_grid_layout_and_padding(channels):
    images = constant_images(5, 4, 3, channels)
    grid = make_grid(images, padding=2)  # ncol = ceil(sqrt(5)) = 3, so 2 rows.
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * (4 + 2) + 2, 3 * (3 + 2) + 2, channels)
    for index in range(5):
        top, left = 2 + (index // 3) * 6, 2 + (index % 3) * 5
        assert (grid[top : top + 4, left : left + 3] == 10 * (index + 1)).all()
    # Everything else is black padding: the frame, the gaps and the empty sixth cell.
    cells = sum(
        grid[2 + r * 6 : 6 + r * 6, 2 + c * 5 : 5 + c * 5].size
        for r in range(2)
        for c in range(3)
        if 3 * r + c < 5
    )
    assert np.count_nonzero(grid) == cells


def test_grid_with_ncol_and_no_padding():
    images = constant_images(6, 2, 2, 3)
    grid = make_grid(images, ncol=6, padding=0)
    assert grid.shape == (2, 12, 3)
    np.testing.assert_array_equal(grid[0, ::2, 0], 10 * np.arange(1, 7))


@pytest.mark.parametrize('shape', [(4, 4, 3), (2, 4, 4, 2), (0, 4, 4, 3)])
def test_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError):
        make_grid(np.zeros(shape))


@pytest.mark.parametrize('channels, mode', [(1, 'L'), (3, 'RGB')])
def test_png_round_trip(tmp_path, channels, mode):
    images = np.random.default_rng(0).uniform(0.0, 1.0, (7, 5, 6, channels))
    path = save_image_grid(
        tmp_path / 'samples' / 'step_100.png', images, ncol=4, value_range=(0.0, 1.0)
    )
    assert path == tmp_path / 'samples' / 'step_100.png'
    assert [p.name for p in path.parent.iterdir()] == ['step_100.png']  # No temporary left.
    with Image.open(path) as png:
        assert png.format == 'PNG' and png.mode == mode
        pixels = np.asarray(png)
    expected = make_grid(images, ncol=4, value_range=(0.0, 1.0))
    np.testing.assert_array_equal(pixels, expected[..., 0] if channels == 1 else expected)
