"""The FID feature network: InceptionV3 "inception-2015-12-05", pool3 features (2048-d).

A Flax port of the network that FID (Heusel et al. 2017), KID, pytorch-fid and clean-fid use,
in its FID variant (pytorch-fid's `FIDInceptionA/C/E`): average pools that do not count
padding, and a max pool in the last block's pool branch. Every conv is followed by batch norm
without scale (beta, running mean and variance, epsilon 1e-3) and ReLU. Weights come from an
`.npz` file of PyTorch-layout arrays (see `load_params`); where to get it: `INCEPTION_ENV` and
docs/evaluation.md.

Input: (N, 299, 299, 3) floats scaled `(uint8 - 128) / 128`; `preprocess` makes them from
uint8 images of any size (legacy TF bilinear resize, as the original TF graph does).
`feature_fn` is the whole jitted map from uint8 images to features.

Written for speed on CPU, computing the same function (figures: docs/benchmarks.md, "The FID
Inception on CPU"): batch norm folded into the convs when loading, the 1x1 convs
that open a block's branches run as one, pools as fused strided slices, and XLA:CPU's Eigen
convolutions instead of YNNPACK's (`compiler_options`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
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
# '' switches off XLA:CPU's YNNPACK fusions (see `compiler_options`).
CPU_COMPILER_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': ''}


def inception_path(configured: str = '') -> Path:
    """The weights file: `configured`, else $GEN_MODELS_INCEPTION, else
    `<repository>/../shared/models/fid_inception/fid_inception_v3_2015_12_05.npz`."""
    return Path(configured or os.environ.get(INCEPTION_ENV) or DEFAULT_INCEPTION_PATH)


Weights = tuple[jax.Array, jax.Array]  # a conv's (HWIO kernel, bias)


class Conv(nn.Module):
    """One conv's weights: HWIO kernel and bias, its batch norm folded in (see `load_params`).

    It returns them rather than convolving, so that a block can run several 1x1 convs that
    read the same input as one (`Block.heads`).
    """

    features: int
    kernel_size: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, in_features: int) -> Weights:
        kernel = self.param(
            'kernel',
            nn.initializers.lecun_normal(),
            (*self.kernel_size, in_features, self.features),
        )
        return kernel, self.param('bias', nn.initializers.zeros, (self.features,))


def _convolve(x: jax.Array, kernel: jax.Array, stride: int, padding: tuple[int, int]) -> jax.Array:
    """NHWC x HWIO convolution, `padding` (rows, cols) on both sides."""
    pad_h, pad_w = padding
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding=((pad_h, pad_h), (pad_w, pad_w)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
    )


def _window_3x3(x: jax.Array, op: Callable, stride: int) -> jax.Array:
    """`op` over every (valid, `stride`) 3x3 window, rows then columns, as strided slices:
    XLA fuses them with their neighbours, and they run 2.5-6x faster than `reduce_window`."""
    for axis in (1, 2):
        size = (x.shape[axis] - 3) // stride + 1
        first, second, third = (
            jax.lax.slice_in_dim(x, i, i + stride * (size - 1) + 1, stride, axis) for i in range(3)
        )
        x = op(op(first, second), third)
    return x


def max_pool_3x3(x: jax.Array, stride: int = 2, padding: int = 0) -> jax.Array:
    """3x3 max pool, `padding` on every side (padding never wins the max)."""
    if padding:
        pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
        x = jnp.pad(x, pads, constant_values=-jnp.inf)
    return _window_3x3(x, jnp.maximum, stride)


def avg_pool_3x3(x: jax.Array) -> jax.Array:
    """3x3 stride-1 average pool with padding 1 that does not count the padding (FID variant)."""
    sums = _window_3x3(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), jnp.add, 1)
    rows, cols = (np.convolve(np.ones(n), np.ones(3), 'same') for n in x.shape[1:3])
    return sums * (1.0 / np.outer(rows, cols)).astype(np.float32)[:, :, None]


class Block(nn.Module):
    """Conv helpers of the network's modules; each conv is `name`d as in the weights file."""

    def weights(
        self, name: str, features: int, in_features: int, kernel_size: tuple[int, int] = (1, 1)
    ) -> Weights:
        """The weights of conv `name` (`Conv`)."""
        return Conv(features, kernel_size, name=name)(in_features)

    def conv(
        self,
        x: jax.Array,
        name: str,
        features: int,
        kernel_size: tuple[int, int],
        stride: int = 1,
        padding: tuple[int, int] | None = None,
    ) -> jax.Array:
        """ReLU(conv + bias); `padding` (rows, cols) on both sides, None: half the kernel."""
        kernel, bias = self.weights(name, features, x.shape[-1], kernel_size)
        padding = padding or (kernel_size[0] // 2, kernel_size[1] // 2)
        return nn.relu(_convolve(x, kernel, stride, padding) + bias)

    def heads(
        self, x: jax.Array, convs: Sequence[tuple[str, int]], avg_pool_last: bool = False
    ) -> list[jax.Array]:
        """The 1x1 convs (name, features) that open a block's branches, all on `x`, as one
        conv (one large matmul instead of several small ones), each then ReLU(. + bias).

        `avg_pool_last`: the last is the pool branch's conv, whose input is average pooled.
        The pool and the 1x1 conv are both linear and the pool's weights sum to 1, so the conv
        runs first and the pool averages its few output channels instead of the block's input.
        """
        weights = [self.weights(name, features, x.shape[-1]) for name, features in convs]
        kernel = jnp.concatenate([kernel for kernel, _ in weights], axis=-1)
        splits = np.cumsum([features for _, features in convs])[:-1]
        outputs = jnp.split(_convolve(x, kernel, 1, (0, 0)), splits, axis=-1)
        if avg_pool_last:
            outputs[-1] = avg_pool_3x3(outputs[-1])
        return [nn.relu(y + bias) for y, (_, bias) in zip(outputs, weights)]


class BlockA(Block):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    pool_features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1, b5, b3, bp = self.heads(
            x,
            [
                ('conv', 64),
                ('tower.conv', 48),
                ('tower_1.conv', 64),
                ('tower_2.conv', self.pool_features),
            ],
            avg_pool_last=True,
        )
        b5 = self.conv(b5, 'tower.conv_1', 64, (5, 5))
        b3 = self.conv(b3, 'tower_1.conv_1', 96, (3, 3))
        b3 = self.conv(b3, 'tower_1.conv_2', 96, (3, 3))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class BlockB(Block):
    """35x35 -> 17x17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.conv(x, 'conv', 384, (3, 3), stride=2, padding=(0, 0))
        bd = self.conv(x, 'tower.conv', 64, (1, 1))
        bd = self.conv(bd, 'tower.conv_1', 96, (3, 3))
        bd = self.conv(bd, 'tower.conv_2', 96, (3, 3), stride=2, padding=(0, 0))
        return jnp.concatenate([b3, bd, max_pool_3x3(x)], axis=-1)


class BlockC(Block):
    """17x17 block with factorised 7x7 convs: 1x1 | 1x7-7x1 | 7x1-1x7-7x1-1x7 | avgpool-1x1."""

    channels_7x7: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c7 = self.channels_7x7
        b1, b7, bd, bp = self.heads(
            x,
            [('conv', 192), ('tower.conv', c7), ('tower_1.conv', c7), ('tower_2.conv', 192)],
            avg_pool_last=True,
        )
        b7 = self.conv(b7, 'tower.conv_1', c7, (1, 7))
        b7 = self.conv(b7, 'tower.conv_2', 192, (7, 1))
        bd = self.conv(bd, 'tower_1.conv_1', c7, (7, 1))
        bd = self.conv(bd, 'tower_1.conv_2', c7, (1, 7))
        bd = self.conv(bd, 'tower_1.conv_3', c7, (7, 1))
        bd = self.conv(bd, 'tower_1.conv_4', 192, (1, 7))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class BlockD(Block):
    """17x17 -> 8x8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3, b7 = self.heads(x, [('tower.conv', 192), ('tower_1.conv', 192)])
        b3 = self.conv(b3, 'tower.conv_1', 320, (3, 3), stride=2, padding=(0, 0))
        b7 = self.conv(b7, 'tower_1.conv_1', 192, (1, 7))
        b7 = self.conv(b7, 'tower_1.conv_2', 192, (7, 1))
        b7 = self.conv(b7, 'tower_1.conv_3', 192, (3, 3), stride=2, padding=(0, 0))
        return jnp.concatenate([b3, b7, max_pool_3x3(x)], axis=-1)


class BlockE(Block):
    """8x8 block with split 1x3/3x1 branches; the pool branch averages (or, in the last
    block of the FID network, takes the max)."""

    max_pool: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        heads = [('conv', 320), ('tower_conv', 384), ('tower_1_conv', 448)]
        if self.max_pool:
            b1, b3, bd = self.heads(x, heads)
            bp = self.conv(max_pool_3x3(x, stride=1, padding=1), 'tower_2_conv', 192, (1, 1))
        else:
            b1, b3, bd, bp = self.heads(x, [*heads, ('tower_2_conv', 192)], avg_pool_last=True)
        b3 = [
            self.conv(b3, 'tower_mixed_conv', 384, (1, 3)),
            self.conv(b3, 'tower_mixed_conv_1', 384, (3, 1)),
        ]
        bd = self.conv(bd, 'tower_1_conv_1', 384, (3, 3))
        bd = [
            self.conv(bd, 'tower_1_mixed_conv', 384, (1, 3)),
            self.conv(bd, 'tower_1_mixed_conv_1', 384, (3, 1)),
        ]
        return jnp.concatenate([b1, *b3, *bd, bp], axis=-1)


class FIDInception(Block):
    """(N, 299, 299, 3) inputs in [-1, 1] -> (N, 2048) pool3 features."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x, 'conv', 32, (3, 3), stride=2, padding=(0, 0))
        x = self.conv(x, 'conv_1', 32, (3, 3), padding=(0, 0))
        x = max_pool_3x3(self.conv(x, 'conv_2', 64, (3, 3)))
        x = self.conv(x, 'conv_3', 80, (1, 1))
        x = max_pool_3x3(self.conv(x, 'conv_4', 192, (3, 3), padding=(0, 0)))
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


def read_convs(path: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """The weights file's convs by name ('mixed_9.tower_conv'), each {weight, beta, mean,
    var} in float64: keys `net.layers.<block>[.<tower>].<conv>.<leaf>`, `weight` of shape
    (out, in, kh, kw); its batch norm has no scale."""
    with np.load(path) as arrays:
        convs = sorted({key.removeprefix(_KEY_PREFIX).rsplit('.', 1)[0] for key in arrays.files})
        return {
            conv: {
                leaf: arrays[f'{_KEY_PREFIX}{conv}.{leaf}'].astype(np.float64)
                for leaf in ('weight', 'beta', 'mean', 'var')
            }
            for conv in convs
        }


def fold_batch_norm(leaves: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (out, in, kh, kw) * s, bias beta - mean * s), s = 1 / sqrt(var + 1e-3): the
    same function as conv -> batch norm, in float64, without a normalisation pass."""
    scale = 1.0 / np.sqrt(leaves['var'] + _BN_EPS)
    return leaves['weight'] * scale[:, None, None, None], leaves['beta'] - leaves['mean'] * scale


def load_params(path: str | os.PathLike[str]) -> dict:
    """The `FIDInception` params from the weights file (`read_convs`), each conv's batch
    norm folded into its kernel and bias (`fold_batch_norm`) and rounded once to float32:
    `params[<block>][<tower>.<conv>]` = {HWIO `kernel`, `bias`}."""
    params: dict = {}
    for conv, leaves in read_convs(path).items():
        kernel, bias = fold_batch_norm(leaves)
        scope, name = params, conv
        if '.' in conv:
            block, name = conv.split('.', 1)
            scope = params.setdefault(block, {})
        scope[name] = {
            'kernel': jnp.asarray(kernel.transpose(2, 3, 1, 0), jnp.float32),
            'bias': jnp.asarray(bias, jnp.float32),
        }
    return params


def compiler_options(backend: str | None = None) -> dict[str, str]:
    """XLA options to compile the network with on `backend` (None: JAX's default backend).

    On CPU, XLA hands convolutions and matmuls to YNNPACK by default; its kernels run this
    network's convs 1.2-4x slower than XLA's own Eigen ones (whole network about 2x; see
    docs/benchmarks.md), so the YNNPACK fusions are switched off for this program alone.
    """
    return dict(CPU_COMPILER_OPTIONS) if (backend or jax.default_backend()) == 'cpu' else {}


def feature_fn() -> Callable[[dict, jax.Array], jax.Array]:
    """Jitted (params, uint8 (N, H, W, C) images) -> (N, 2048) features: `preprocess`, then
    the network, compiled with `compiler_options()`. The params are arguments rather than
    constants closed over, which XLA would fold into the program: 0.1 s to compile instead of
    1.7 s, at the same speed within noise (docs/benchmarks.md)."""
    model = FIDInception()
    return jax.jit(
        lambda params, images: model.apply({'params': params}, preprocess(images)),
        compiler_options=compiler_options(),
    )


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
