"""Exact, deterministic rendering of the procedural 'shapes' images (dSprites-like).

A white shape on black: a square, an ellipse or a heart, with a scale, a rotation and a
position. The image is a pure function of these factors, so that later code can render the
exact image of a transformed scene (rotated, flipped, shifted) as ground truth.

Geometry, in normalised image coordinates (x to the right, y down, the image is [0, 1]^2):
- every shape fits in a circle of radius `scale * BASE_RADIUS` around (pos_x, pos_y), and
  rotates about that centre;
- `rotation` (radians) turns the shape counter-clockwise as displayed; at 0 the ellipse's long
  axis is horizontal and the heart points down; all three shapes are mirror-symmetric about
  their vertical axis, so a horizontal flip is (pos_x, rotation) -> (1 - pos_x, -rotation).
Anti-aliasing is exact area sampling on a fixed grid: a pixel's value is the fraction of its
SUPERSAMPLING x SUPERSAMPLING sub-pixel centres that lie inside the shape, times 255, rounded
half up with integer arithmetic. Trigonometry uses Python's `math` (the platform libm) and the
rest is IEEE float64 arithmetic, so images are bit-identical across runs.
"""

import math

import numpy as np
from numpy.typing import ArrayLike

SHAPE_NAMES = ('square', 'ellipse', 'heart')
BASE_RADIUS = 0.2
SUPERSAMPLING = 8
_CHUNK_POINTS = 2**17  # sub-pixel samples evaluated at once: keeps temporaries in cache


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether local points (u, v) (unit circle = bounding circle, v down) are in the shape."""
    if shape == 0:  # square, its corners on the unit circle
        return np.maximum(np.abs(u), np.abs(v)) <= math.sqrt(0.5)
    if shape == 1:  # ellipse with semi-axes 1 (horizontal) and 1/2
        return u * u + 4.0 * v * v <= 1.0
    # heart (x^2 + y^2 - 1)^3 <= x^2 y^3, y up; centred on y = 1/4 and scaled by 5/4 it touches
    # the unit circle at its tip and lobes.
    x, y = 1.25 * u, 0.25 - 1.25 * v
    x2, y2 = x * x, y * y
    r = x2 + y2 - 1.0
    return r * r * r <= x2 * y2 * y


def _render_window(
    shape: int, scale, rotation, pos_x, pos_y, origin_x, origin_y, window: int, resolution: int
) -> np.ndarray:
    """Renders (n, window, window) uint8 crops whose top-left pixels are the origins."""
    s = SUPERSAMPLING
    offsets = (np.arange(window * s) + 0.5) / s  # sub-pixel centres, in pixels from the origin
    radius = scale * BASE_RADIUS
    cos = np.array([math.cos(t) for t in rotation]) / radius
    sin = np.array([math.sin(t) for t in rotation]) / radius
    dx = (origin_x[:, None] + offsets[None, :]) / resolution - pos_x[:, None]
    dy = (origin_y[:, None] + offsets[None, :]) / resolution - pos_y[:, None]
    # Inverse rotation into the shape's frame: u = dx cos - dy sin, v = dx sin + dy cos.
    u = (dx * cos[:, None])[:, None, :] - (dy * sin[:, None])[:, :, None]
    v = (dx * sin[:, None])[:, None, :] + (dy * cos[:, None])[:, :, None]
    hits = _inside(shape, u, v).reshape(-1, window, s, window, s).sum(axis=(2, 4))
    return ((hits * 255 + s * s // 2) // (s * s)).astype(np.uint8)


def render_batch(
    shape: ArrayLike,
    scale: ArrayLike,
    rotation: ArrayLike,
    pos_x: ArrayLike,
    pos_y: ArrayLike,
    resolution: int,
) -> np.ndarray:
    """Renders images (n, resolution, resolution, 1) uint8 from factor arrays of length n.

    `shape` holds indices into SHAPE_NAMES; the other factors are floats as documented in the
    module docstring. Shapes may extend past the border (they are clipped).
    """
    shape = np.asarray(shape, np.int64).reshape(-1)
    scale, rotation, pos_x, pos_y = (
        np.asarray(f, np.float64).reshape(-1) for f in (scale, rotation, pos_x, pos_y)
    )
    n = len(shape)
    images = np.zeros((n, resolution, resolution, 1), np.uint8)
    if n == 0:
        return images
    # Only a window around each shape can be non-zero: render that, then paste it.
    reach = scale * BASE_RADIUS * resolution  # bounding radius in pixels
    window = int(min(resolution, math.ceil(2 * reach.max()) + 1))
    origin_x = np.clip(np.floor(pos_x * resolution - reach), 0, resolution - window)
    origin_y = np.clip(np.floor(pos_y * resolution - reach), 0, resolution - window)
    chunk_size = max(1, _CHUNK_POINTS // (window * SUPERSAMPLING) ** 2)
    for k in range(len(SHAPE_NAMES)):
        members = np.flatnonzero(shape == k)
        if not len(members):
            continue
        for chunk in np.split(members, range(chunk_size, len(members), chunk_size)):
            crops = _render_window(
                k,
                scale[chunk],
                rotation[chunk],
                pos_x[chunk],
                pos_y[chunk],
                origin_x[chunk],
                origin_y[chunk],
                window,
                resolution,
            )
            for i, crop in zip(chunk, crops):
                ox, oy = int(origin_x[i]), int(origin_y[i])
                images[i, oy : oy + window, ox : ox + window, 0] = crop
    return images


def render(
    shape: int, scale: float, rotation: float, pos_x: float, pos_y: float, resolution: int
) -> np.ndarray:
    """Renders one image (resolution, resolution, 1) uint8 from its factors."""
    return render_batch([shape], [scale], [rotation], [pos_x], [pos_y], resolution)[0]
