"""How close transformed images are to the exact targets: MSE, PSNR and SSIM per image.

Images are float batches (B, H, W, C) in [0, 1] (peak value 1).
- MSE: mean squared error over pixels and channels.
- PSNR: 10 log10(1 / MSE) dB, with MSE floored at 1e-10 (at most 100 dB for equal images).
- SSIM (Wang et al. 2004): local means, variances and covariance under an 11 x 11 Gaussian
  window of std 1.5 (normalised to sum 1), 'valid' positions only (the window inside the
  image, as in the authors' MATLAB code), constants C1 = (0.01)^2 and C2 = (0.03)^2; the
  SSIM map is computed per channel and averaged over positions and channels.
Each function returns one value per image; callers average over images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
MIN_MSE = 1e-10
PROTOCOL = (
    'outputs vs exact transformed images in [0, 1], means over images: mse; psnr = '
    '10 log10(1 / mse) dB (mse floored at 1e-10); ssim (Wang et al. 2004: Gaussian window 11, '
    'sigma 1.5, K1 0.01, K2 0.03, valid positions, mean over positions and channels); '
    'identity_* score the untransformed inputs against the same targets'
)


def mse(images: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error per image."""
    return jnp.mean((images - targets) ** 2, axis=(1, 2, 3))


def psnr(images: jax.Array, targets: jax.Array) -> jax.Array:
    """Peak signal-to-noise ratio per image in dB, for peak value 1."""
    return -10.0 * jnp.log10(jnp.maximum(mse(images, targets), MIN_MSE))


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """The 1-D Gaussian of `size` taps and std `sigma`, normalised to sum 1."""
    offsets = np.arange(size) - (size - 1) / 2
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def _valid_filter_matrix(length: int) -> np.ndarray:
    """(length - WINDOW + 1, length) matrix applying the window at every valid position."""
    if length < WINDOW:
        raise ValueError(f'SSIM needs images of at least {WINDOW} px per side (got {length})')
    window = gaussian_window()
    matrix = np.zeros((length - WINDOW + 1, length), np.float32)
    for row in range(len(matrix)):
        matrix[row, row : row + WINDOW] = window
    return matrix


def ssim(images: jax.Array, targets: jax.Array) -> jax.Array:
    """Structural similarity per image (Wang et al. 2004), mean over positions and channels."""
    rows = jnp.asarray(_valid_filter_matrix(images.shape[1]))
    cols = jnp.asarray(_valid_filter_matrix(images.shape[2]))

    def blur(values):
        return jnp.einsum(
            'ih,bhwc,jw->bijc', rows, values, cols, precision=jax.lax.Precision.HIGHEST
        )

    mean_x, mean_y = blur(images), blur(targets)
    var_x = blur(images * images) - mean_x**2
    var_y = blur(targets * targets) - mean_y**2
    cov = blur(images * targets) - mean_x * mean_y
    c1, c2 = K1**2, K2**2
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return jnp.mean(ssim_map, axis=(1, 2, 3))


def scores(images: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """{'mse', 'psnr', 'ssim'} per image."""
    return {
        'mse': mse(images, targets),
        'psnr': psnr(images, targets),
        'ssim': ssim(images, targets),
    }
