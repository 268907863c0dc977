"""Dropout masks with half the random-number work of `flax.linen.Dropout`, one draw per net."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def keep_mask(rng: jax.Array, shape: Sequence[int], keep_rate: float) -> jax.Array:
    """Boolean Bernoulli(keep_rate) draws from 16-bit uniforms, two per 32-bit random word.

    Threefry makes one 32-bit word per element whatever the dtype asked for, so this halves
    the random-number work of `jax.random.bernoulli` (most of a dropout layer's cost on
    CPU); keep_rate is rounded to a multiple of 2**-16.
    """
    size = math.prod(shape)
    words = jax.random.bits(rng, (-(-size // 2),), jnp.uint32)
    halves = lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:size].reshape(shape)
    return halves.astype(jnp.uint32) < jnp.uint32(round(keep_rate * 2**16))


def dropout_masks(
    rng: jax.Array, shapes: Sequence[Sequence[int]], keep_rate: float
) -> list[jax.Array]:
    """Keep masks of several layers from one `keep_mask` draw: one threefry loop for a whole
    network instead of one per layer, which is less to compile and to launch."""
    sizes = [math.prod(shape) for shape in shapes]
    flat = keep_mask(rng, (sum(sizes),), keep_rate)
    starts = np.cumsum([0, *sizes])
    return [
        flat[start : start + size].reshape(shape)
        for start, size, shape in zip(starts, sizes, shapes)
    ]
