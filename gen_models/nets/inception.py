"""The FID feature network: InceptionV3 "inception-2015-12-05", pool3 features (2048-d).

A Flax port of the network that FID (Heusel et al. 2017), KID, pytorch-fid and clean-fid use,
in its FID variant (pytorch-fid's `FIDInceptionA/C/E`): average pools that do not count
padding, and a max pool in the last block's pool branch. Every conv is followed by batch norm
without scale (beta, running mean and variance, epsilon 1e-3) and ReLU. Weights come from an
`.npz` file of PyTorch-layout arrays (see `load_params`); where to get it: `INCEPTION_ENV` and
docs/evaluation.md.

Input: (N, 299, 299, 3) floats scaled `(uint8 - 128) / 128`; `preprocess` makes them from
uint8 images of any size (legacy TF bilinear resize, as the original TF graph does).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INCEPTION_ENV = 'GEN_MODELS_INCEPTION'
DEFAULT_INCEPTION_PATH = (
    Path(__file__).resolve().parents[3]
    / 'shared'
    / 'models'
    / 'fid_inception'
    / 'fid_inception_v3_2015_12_05.npz'
)
INPUT_SIZE = 299
FEATURE_DIM = 2048
_BN_EPS = 1e-3
_KEY_PREFIX = 'net.layers.'


def inception_path(configured: str = '') -> Path:
    """The weights file: `configured`, else $GEN_MODELS_INCEPTION, else
    `<repository>/../shared/models/fid_inception/fid_inception_v3_2015_12_05.npz`."""
    return Path(configured or os.environ.get(INCEPTION_ENV) or DEFAULT_INCEPTION_PATH)


class ConvBN(nn.Module):
    """Conv (no bias) -> batch norm with beta only (inference statistics) -> ReLU.

    `padding` is (rows, cols) on both sides; None pads by half the kernel (a 'same' conv).
    """

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            'kernel', nn.initializers.lecun_normal(), (*self.kernel, x.shape[-1], self.features)
        )
        beta = self.param('beta', nn.initializers.zeros, (self.features,))
        mean = self.param('mean', nn.initializers.zeros, (self.features,))
        var = self.param('var', nn.initializers.ones, (self.features,))
        pad_h, pad_w = self.padding or (self.kernel[0] // 2, self.kernel[1] // 2)
        y = jax.lax.conv_general_dilated(
            x,
            kernel,
            window_strides=(self.stride, self.stride),
            padding=((pad_h, pad_h), (pad_w, pad_w)),
            dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
        )
        return nn.relu((y - mean) * jax.lax.rsqrt(var + _BN_EPS) + beta)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), (2, 2))


class BlockA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    pool_features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = ConvBN(64, (1, 1), name='conv')(x)
        b5 = ConvBN(48, (1, 1), name='tower.conv')(x)
        b5 = ConvBN(64, (5, 5), name='tower.conv_1')(b5)
        b3 = ConvBN(64, (1, 1), name='tower_1.conv')(x)
        b3 = ConvBN(96, (3, 3), name='tower_1.conv_1')(b3)
        b3 = ConvBN(96, (3, 3), name='tower_1.conv_2')(b3)
        bp = ConvBN(self.pool_features, (1, 1), name='tower_2.conv')(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class BlockB(nn.Module):
    """35x35 -> 17x17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = ConvBN(384, (3, 3), stride=2, padding=(0, 0), name='conv')(x)
        bd = ConvBN(64, (1, 1), name='tower.conv')(x)
        bd = ConvBN(96, (3, 3), name='tower.conv_1')(bd)
        bd = ConvBN(96, (3, 3), stride=2, padding=(0, 0), name='tower.conv_2')(bd)
        return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convs: 1x1 | 1x7-7x1 | 7x1-1x7-7x1-1x7 | avgpool-1x1."""

    channels_7x7: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c7 = self.channels_7x7
        b1 = ConvBN(192, (1, 1), name='conv')(x)
        b7 = ConvBN(c7, (1, 1), name='tower.conv')(x)
        b7 = ConvBN(c7, (1, 7), name='tower.conv_1')(b7)
        b7 = ConvBN(192, (7, 1), name='tower.conv_2')(b7)
        bd = ConvBN(c7, (1, 1), name='tower_1.conv')(x)
        bd = ConvBN(c7, (7, 1), name='tower_1.conv_1')(bd)
        bd = ConvBN(c7, (1, 7), name='tower_1.conv_2')(bd)
        bd = ConvBN(c7, (7, 1), name='tower_1.conv_3')(bd)
        bd = ConvBN(192, (1, 7), name='tower_1.conv_4')(bd)
        bp = ConvBN(192, (1, 1), name='tower_2.conv')(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class BlockD(nn.Module):
    """17x17 -> 8x8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = ConvBN(192, (1, 1), name='tower.conv')(x)
        b3 = ConvBN(320, (3, 3), stride=2, padding=(0, 0), name='tower.conv_1')(b3)
        b7 = ConvBN(192, (1, 1), name='tower_1.conv')(x)
        b7 = ConvBN(192, (1, 7), name='tower_1.conv_1')(b7)
        b7 = ConvBN(192, (7, 1), name='tower_1.conv_2')(b7)
        b7 = ConvBN(192, (3, 3), stride=2, padding=(0, 0), name='tower_1.conv_3')(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class BlockE(nn.Module):
    """8x8 block with split 1x3/3x1 branches; the pool branch averages (or, in the last
    block of the FID network, takes the max)."""

    max_pool: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = ConvBN(320, (1, 1), name='conv')(x)
        b3 = ConvBN(384, (1, 1), name='tower_conv')(x)
        b3 = jnp.concatenate(
            [
                ConvBN(384, (1, 3), name='tower_mixed_conv')(b3),
                ConvBN(384, (3, 1), name='tower_mixed_conv_1')(b3),
            ],
            axis=-1,
        )
        bd = ConvBN(448, (1, 1), name='tower_1_conv')(x)
        bd = ConvBN(384, (3, 3), name='tower_1_conv_1')(bd)
        bd = jnp.concatenate(
            [
                ConvBN(384, (1, 3), name='tower_1_mixed_conv')(bd),
                ConvBN(384, (3, 1), name='tower_1_mixed_conv_1')(bd),
            ],
            axis=-1,
        )
        if self.max_pool:
            pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
        else:
            pooled = _avg_pool_3x3(x)
        bp = ConvBN(192, (1, 1), name='tower_2_conv')(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInception(nn.Module):
    """(N, 299, 299, 3) inputs in [-1, 1] -> (N, 2048) pool3 features."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = ConvBN(32, (3, 3), stride=2, padding=(0, 0), name='conv')(x)
        x = ConvBN(32, (3, 3), padding=(0, 0), name='conv_1')(x)
        x = ConvBN(64, (3, 3), name='conv_2')(x)
        x = _max_pool_3x3_s2(x)
        x = ConvBN(80, (1, 1), name='conv_3')(x)
        x = ConvBN(192, (3, 3), padding=(0, 0), name='conv_4')(x)
        x = _max_pool_3x3_s2(x)
        x = BlockA(32, name='mixed')(x)
        x = BlockA(64, name='mixed_1')(x)
        x = BlockA(64, name='mixed_2')(x)
        x = BlockB(name='mixed_3')(x)
        for index, channels in zip(range(4, 8), (128, 160, 160, 192)):
            x = BlockC(channels, name=f'mixed_{index}')(x)
        x = BlockD(name='mixed_8')(x)
        x = BlockE(max_pool=False, name='mixed_9')(x)
        x = BlockE(max_pool=True, name='mixed_10')(x)
        return jnp.mean(x, axis=(1, 2))


def load_params(path: str | os.PathLike[str]) -> dict:
    """The `FIDInception` params from an `.npz` of PyTorch-layout arrays.

    Keys are `net.layers.<block>[.<tower>].<conv>.{weight,beta,mean,var}`, `weight` of shape
    (out, in, kh, kw); they map to `params[<block>][<tower>.<conv>]` with HWIO kernels.
    """
    params: dict = {}
    with np.load(path) as arrays:
        for key in arrays.files:
            module_path, name = key.removeprefix(_KEY_PREFIX).rsplit('.', 1)
            value = arrays[key]
            if name == 'weight':
                name, value = 'kernel', value.transpose(2, 3, 1, 0)
            scope = params
            if '.' in module_path:
                block, module_path = module_path.split('.', 1)
                scope = params.setdefault(block, {})
            scope.setdefault(module_path, {})[name] = jnp.asarray(value, jnp.float32)
    return params


def file_checksum(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (hex): names the exact weights in caches and results."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def legacy_bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of TF1's `resize_bilinear` (align_corners=False, no half-pixel
    centres): output i samples input coordinate i * in / out, the upper neighbour clamped."""
    source = np.arange(out_size) * (in_size / out_size)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = source - low
    matrix = np.zeros((out_size, in_size), np.float64)
    np.add.at(matrix, (np.arange(out_size), low), 1.0 - frac)
    np.add.at(matrix, (np.arange(out_size), high), frac)
    return matrix.astype(np.float32)


def preprocess(images: jax.Array, size: Sequence[int] = (INPUT_SIZE, INPUT_SIZE)) -> jax.Array:
    """uint8 (N, H, W, C in {1, 3}) images -> the network's (N, 299, 299, 3) inputs.

    Resizes like the TF graph of the original FID code (legacy bilinear), scales to
    `(x - 128) / 128`, and repeats grey images to three channels.
    """
    x = images.astype(jnp.float32)
    height, width = x.shape[1:3]
    if (height, width) != tuple(size):
        rows = jnp.asarray(legacy_bilinear_matrix(height, size[0]))
        cols = jnp.asarray(legacy_bilinear_matrix(width, size[1]))
        x = jnp.einsum('ih,nhwc,jw->nijc', rows, x, cols, precision=jax.lax.Precision.HIGHEST)
    x = (x - 128.0) / 128.0
    return jnp.broadcast_to(x, (*x.shape[:3], 3)) if x.shape[-1] == 1 else x
