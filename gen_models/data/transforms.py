"""Image transformations that turn a batch x into training pairs (input, target) = (x, x').

Pure jnp functions on float image batches (B, H, W, C) in [0, 1], applied on device inside
the train and eval steps, so that the target x' of every example is known exactly. Random
parts (noise, random mask boxes) are drawn from one key per example (`base.example_keys`),
so pairs do not depend on the device count and repeat exactly.

Geometry: rows go down, columns to the right, and rotations and zooms act about the image
centre ((H - 1) / 2, (W - 1) / 2) in pixel-centre coordinates. Positive angles turn the
image counter-clockwise as displayed (like np.rot90). A transformed pixel reads its source
position by bilinear interpolation, with black (0) outside the image; multiples of 90
degrees are exact index permutations (rot90).

`config.transform` (configs/default.py) selects one:
- 'none': x' = x.
- 'rotate': x' = x rotated by `angle` degrees.
- 'flip': x' = x mirrored, `flip_axis` 'horizontal' (left-right) or 'vertical' (up-down).
- 'scale': x' = x zoomed by `scale` about the centre (> 1 enlarges, < 1 shrinks).
- 'mask' (inpainting): the input is x with a box set to 0, the target is x: `mask` 'quarter'
  (the top-left quadrant), 'centre' (the centred half-size box), 'random' (a half-size box
  at a uniform position per example) or 'lower_half' (the bottom H // 2 rows: face
  completion, as in scikit-learn's Olivetti example).
- 'noise' (denoising): the input is clip(x + noise_std * N(0, I), 0, 1), the target is x.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

TRANSFORMS = ('none', 'rotate', 'flip', 'scale', 'mask', 'noise')
FLIP_AXES = {'vertical': 1, 'horizontal': 2}
MASKS = ('quarter', 'centre', 'random', 'lower_half')
PAIRINGS = ('paired', 'unpaired')


def affine(images: jax.Array, matrix: np.ndarray) -> jax.Array:
    """Resamples images so that output pixel p reads input position c + matrix @ (p - c).

    c is the image centre and positions are (row, column); bilinear, 0 outside the image.
    """
    height, width = images.shape[1:3]
    centre = np.array([(height - 1) / 2, (width - 1) / 2])[:, None]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
    offsets = np.stack([rows, cols]).reshape(2, -1) - centre
    # Host-side float64 constants: the same source positions on every backend.
    source = (np.asarray(matrix) @ offsets + centre).reshape(2, height, width).astype(np.float32)

    def one_plane(plane):
        return jax.scipy.ndimage.map_coordinates(plane, list(source), order=1, cval=0.0)

    # vmap over the batch and the channels: planes are (H, W).
    per_channel = jax.vmap(one_plane, in_axes=2, out_axes=2)
    return jax.vmap(per_channel)(images)


def rotate(images: jax.Array, angle: float) -> jax.Array:
    """Rotation by `angle` degrees counter-clockwise; multiples of 90 are exact (rot90) where
    they keep the image's shape (any multiple of 180, or of 90 on square images)."""
    height, width = images.shape[1:3]
    if angle % 180 == 0 or (angle % 90 == 0 and height == width):
        return jnp.rot90(images, k=int(angle // 90) % 4, axes=(1, 2))
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    # Output (row, col) offsets -> input offsets: the inverse rotation, with rows pointing down.
    return affine(images, np.array([[cos, sin], [-sin, cos]]))


def flip(images: jax.Array, axis: str) -> jax.Array:
    """Mirror image: 'horizontal' reverses the columns, 'vertical' the rows."""
    return jnp.flip(images, axis=FLIP_AXES[axis])


def scale(images: jax.Array, factor: float) -> jax.Array:
    """Zoom by `factor` about the centre (bilinear); factor 1 is the identity."""
    return affine(images, np.eye(2) / factor)


def box_mask(height: int, width: int, top: jax.Array | int, left: jax.Array | int) -> jax.Array:
    """(H, W, 1) float mask: 0 in the (H // 2, W // 2) box at (top, left), 1 elsewhere."""
    rows = jnp.arange(height)[:, None, None]
    cols = jnp.arange(width)[None, :, None]
    inside = (
        (rows >= top) & (rows < top + height // 2) & (cols >= left) & (cols < left + width // 2)
    )
    return jnp.where(inside, 0.0, 1.0)


def mask(images: jax.Array, region: str, keys: jax.Array) -> jax.Array:
    """Sets part of every image to 0: a half-size box ('quarter', 'centre' or 'random' per
    key) or the lower half ('lower_half')."""
    height, width = images.shape[1:3]
    if region == 'lower_half':
        return images * jnp.where(
            jnp.arange(height)[:, None, None] < height - height // 2, 1.0, 0.0
        )
    if region == 'quarter':
        return images * box_mask(height, width, 0, 0)
    if region == 'centre':
        return images * box_mask(height, width, height // 4, width // 4)

    def one(key):
        top_key, left_key = jax.random.split(key)
        top = jax.random.randint(top_key, (), 0, height - height // 2 + 1)
        left = jax.random.randint(left_key, (), 0, width - width // 2 + 1)
        return box_mask(height, width, top, left)

    return images * jax.vmap(one)(keys)


def add_noise(images: jax.Array, std: float, keys: jax.Array) -> jax.Array:
    """images + std * N(0, I), one draw per example's key, clipped to [0, 1]."""
    noise = jax.vmap(lambda key: jax.random.normal(key, images.shape[1:]))(keys)
    return jnp.clip(images + std * noise, 0.0, 1.0)


def make_pair(transform_config, images: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(input, target) for float images in [0, 1] and one key per example, per the config."""
    name = transform_config.name
    if name == 'none':
        return images, images
    if name == 'rotate':
        return images, rotate(images, transform_config.angle)
    if name == 'flip':
        return images, flip(images, transform_config.flip_axis)
    if name == 'scale':
        return images, scale(images, transform_config.scale)
    if name == 'mask':
        return mask(images, transform_config.mask, keys), images
    if name == 'noise':
        return add_noise(images, transform_config.noise_std, keys), images
    raise ValueError(f'transform.name={name!r}: allowed {TRANSFORMS}')
