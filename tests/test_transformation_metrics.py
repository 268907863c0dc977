"""MSE, PSNR and SSIM against numpy and an independent scipy SSIM."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from gen_models.metrics import transformation


@pytest.fixture(scope='module')
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = ndimage.uniform_filter(rng.random((3, 20, 17, 2)), size=(1, 3, 3, 1))
    noisy = np.clip(images + 0.1 * rng.standard_normal(images.shape), 0.0, 1.0)
    return images.astype(np.float32), noisy.astype(np.float32)


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 with scipy's Gaussian filter (sigma 1.5, truncated to radius 5: an
    11-tap window), cropped to positions where the window lies inside the image."""

    def blur(values):
        return ndimage.gaussian_filter(values, 1.5, truncate=5 / 1.5)[5:-5, 5:-5]

    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return float(
        np.mean((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    )


def test_mse_and_psnr_match_numpy(pair):
    x, y = pair
    mse = np.mean((x.astype(np.float64) - y) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(transformation.mse(x, y), mse, rtol=1e-5)
    np.testing.assert_allclose(transformation.psnr(x, y), 10 * np.log10(1 / mse), rtol=1e-5)
    assert float(transformation.psnr(x, x)[0]) == pytest.approx(100.0)  # MSE floored at 1e-10


def test_ssim_matches_an_independent_implementation(pair):
    x, y = pair
    expected = [
        np.mean([reference_ssim(a[..., c], b[..., c]) for c in range(a.shape[-1])])
        for a, b in zip(x, y)
    ]
    np.testing.assert_allclose(transformation.ssim(x, y), expected, rtol=1e-4)
    assert 0.2 < min(expected) < max(expected) < 0.99  # a test of real, partial similarity


def test_ssim_of_an_image_with_itself_is_one_and_symmetric(pair):
    x, y = pair
    np.testing.assert_allclose(transformation.ssim(x, x), 1.0, rtol=1e-5)
    np.testing.assert_allclose(transformation.ssim(x, y), transformation.ssim(y, x), rtol=1e-6)


def test_gaussian_window_and_small_images():
    window = transformation.gaussian_window()
    assert len(window) == 11 and window.sum() == pytest.approx(1.0)
    assert window[5] / window[6] == pytest.approx(np.exp(1 / (2 * 1.5**2)))
    with pytest.raises(ValueError, match='at least 11 px'):
        transformation.ssim(np.zeros((1, 10, 12, 1)), np.zeros((1, 10, 12, 1)))
