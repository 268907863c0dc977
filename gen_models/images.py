"""Sample grids: float image batches -> one uint8 image -> PNG.

Grids of samples from fixed noise, saved at every evaluation, are how runs and steps are
compared by eye; the PNG is written atomically so that a killed run never leaves half a file.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Maps floats in `value_range` to uint8 [0, 255], clipping outliers (NaN -> 0)."""
    low, high = value_range
    scaled = (np.asarray(images, np.float64) - low) * (255.0 / (high - low))
    return np.rint(np.clip(np.nan_to_num(scaled), 0.0, 255.0)).astype(np.uint8)


def make_grid(
    images: np.ndarray,
    *,
    ncol: int | None = None,
    padding: int = 2,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> np.ndarray:
    """Tiles (N, H, W, C) float images, C in {1, 3}, into one uint8 (H', W', C) image.

    Images fill rows of `ncol` (default ceil(sqrt(N))) left to right; `padding` black pixels
    separate them and frame the grid, as in torchvision's `make_grid`.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images):
        raise ValueError(f'Expected (N > 0, H, W, C in {{1, 3}}) images, got {images.shape}.')
    num, height, width, channels = images.shape
    ncol = ncol or math.ceil(math.sqrt(num))
    nrow = math.ceil(num / ncol)
    grid = np.zeros(
        (nrow * (height + padding) + padding, ncol * (width + padding) + padding, channels),
        np.uint8,
    )
    for index, image in enumerate(to_uint8(images, value_range)):
        top = padding + (index // ncol) * (height + padding)
        left = padding + (index % ncol) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_image_grid(path: str | os.PathLike[str], images: np.ndarray, **grid_kwargs) -> Path:
    """Writes `make_grid(images, **grid_kwargs)` as a PNG at `path`; returns the path."""
    return save_png(path, make_grid(images, **grid_kwargs))


def save_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Writes a uint8 (H, W, C) image, C in {1, 3}, as a PNG atomically; returns the path."""
    path = Path(path)
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format='PNG')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path
