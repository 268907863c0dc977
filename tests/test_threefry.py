"""The unrolled Threefry-2x32 hash and its CPU lowering: Random123's known answers and a numpy
Threefry's hashes, so every jax.random draw keeps its value."""

import jax
import numpy as np
from jax.extend.random import threefry2x32_p

from gen_models import threefry

KNOWN_ANSWERS = [  # Random123's kat_vectors for threefry2x32_20: (key, counter, output)
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF,) * 2, (0xFFFFFFFF,) * 2, (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


def _threefry_numpy(key1, key2, x1, x2):
    """Threefry-2x32-20 in numpy uint32 arithmetic (Salmon et al. 2011, Random123)."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    keys = (key1, key2, key1 ^ key2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for block in range(5):
        for r in rotations[block % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r)))
        x1 = x1 + keys[(block + 1) % 3]
        x2 = x2 + keys[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


def _check_hash(hash_) -> None:
    for key, count, expected in KNOWN_ANSWERS:
        args = [np.array([v], np.uint32) for v in (*key, *count)]
        assert [int(v[0]) for v in hash_(*args)] == list(expected)
    words = np.random.default_rng(0).integers(0, 2**32, (4, 3, 1001), dtype=np.uint32)
    for actual, expected in zip(hash_(*words), _threefry_numpy(*words)):
        np.testing.assert_array_equal(actual, expected)


def test_unrolled_threefry_computes_the_threefry_hash():
    _check_hash(jax.jit(threefry.threefry2x32))


def test_primitive_lowered_on_cpu_computes_the_threefry_hash():
    """The primitive as the test session lowers it (conftest calls use_unrolled_threefry)."""
    _check_hash(jax.jit(lambda *args: threefry2x32_p.bind(*args)))
