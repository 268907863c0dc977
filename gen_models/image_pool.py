"""CycleGAN's image pool (Zhu et al. 2017, after Shrivastava et al. 2017): the discriminator
sees a history of generated images, not only the newest, which damps oscillation.

A pool is {'images': (capacity, H, W, C), 'count': int32 scalar}, a pure value that the train
step carries and returns. `query` walks a batch in order, one key per image: while the pool
fills, each image is stored and returned; once it is full, with probability 1/2 a uniformly
chosen stored image is returned and the new one takes its slot, else the new image is
returned and the pool is unchanged (CycleGAN's `ImagePool.query`). Callers pass the global
batch with keys shared by every device, so every device keeps the same pool.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CAPACITY = 50  # CycleGAN's pool_size


def init(shape: tuple[int, ...], capacity: int = CAPACITY) -> dict[str, jax.Array]:
    """An empty pool of `capacity` images of `shape` (H, W, C)."""
    return {'images': jnp.zeros((capacity, *shape)), 'count': jnp.zeros((), jnp.int32)}


def query(
    pool: dict[str, jax.Array], images: jax.Array, keys: jax.Array
) -> tuple[dict[str, jax.Array], jax.Array]:
    """(updated pool, the images to show the discriminator), one key per image."""
    capacity = pool['images'].shape[0]

    def one(pool, item):
        image, key = item
        swap_key, slot_key = jax.random.split(key)
        filling = pool['count'] < capacity
        swap = jnp.logical_and(~filling, jax.random.uniform(swap_key) > 0.5)
        slot = jnp.where(filling, pool['count'], jax.random.randint(slot_key, (), 0, capacity))
        stored = pool['images'][slot]
        returned = jnp.where(swap, stored, image)
        write = jnp.logical_or(filling, swap)
        images = pool['images'].at[slot].set(jnp.where(write, image, stored))
        return {'images': images, 'count': pool['count'] + filling.astype(jnp.int32)}, returned

    return jax.lax.scan(one, pool, (images, keys))
