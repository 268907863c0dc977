"""CycleGAN's image pool against its definition: fills first, then returns a past image with
probability 1/2 (swapping the new one in), never holds more than its capacity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import image_pool


def _keys(start, num):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(start + jnp.arange(num))


def test_while_filling_the_pool_stores_and_returns_each_image():
    pool = image_pool.init((2, 2, 1), capacity=50)
    images = jnp.arange(30.0)[:, None, None, None] * jnp.ones((30, 2, 2, 1))
    pool, returned = image_pool.query(pool, images, _keys(0, 30))
    np.testing.assert_array_equal(returned, images)
    assert int(pool['count']) == 30
    np.testing.assert_array_equal(pool['images'][:30], images)


def test_a_full_pool_returns_past_images_half_the_time_and_swaps_them_out():
    pool = image_pool.init((1, 1, 1), capacity=50)
    history = set()
    swapped = 0
    for batch in range(40):  # 50 to fill, then 1,950 queries
        values = 1000.0 * batch + jnp.arange(50.0)
        before = set(np.asarray(pool['images']).ravel().tolist())
        pool, returned = image_pool.query(pool, values[:, None, None, None], _keys(50 * batch, 50))
        returned = np.asarray(returned).ravel()
        after = set(np.asarray(pool['images']).ravel().tolist())
        if batch:
            past = [r for r, v in zip(returned, np.asarray(values)) if r != v]
            assert set(past) <= before | set(np.asarray(values).tolist())  # stored earlier
            swapped += len(past)
        history |= set(np.asarray(values).tolist())
        assert after <= history and int(pool['count']) == 50
    # past images among 1,950 queries of a full pool: 1/2 each (binomial sd 22)
    assert abs(swapped - 975) < 90
