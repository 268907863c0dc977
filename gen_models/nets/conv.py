"""Resolution-generic DCGAN-style convolutional stacks.

One up-sampling stack serves as the DCGAN generator and the conv VAE decoder; one
down-sampling stack serves as the DCGAN discriminator and the conv VAE encoder. Both
work for any image whose sides share enough factors of two (28, 32, 64 px, 28x20 Frey
faces; 1 or 3 channels): the number of stride-2 stages is derived from the shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_models.nets.conditional import batch_norm, projection
from gen_models.nets.conv_transpose import ConvTranspose
from gen_models.nets.dropout import dropout_masks
from gen_models.nets.layers import spectral

MIN_BASE_SIDE = 4


def num_stages(image_shape: Sequence[int]) -> int:
    """Number of stride-2 stages between a small base map and `image_shape` (H, W, C).

    The largest k such that H and W are divisible by 2**k with min(H, W) / 2**k >= 4.
    """
    height, width = image_shape[0], image_shape[1]
    stages = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= MIN_BASE_SIDE:
        height, width, stages = height // 2, width // 2, stages + 1
    return stages


def check_image_shape(image_shape: Sequence[int]) -> None:
    """Raises ValueError when no conv stack can produce `image_shape`."""
    if len(image_shape) != 3 or num_stages(image_shape) < 1:
        raise ValueError(
            f'image shape {tuple(image_shape)} needs sides divisible by 2 with at least '
            f'{2 * MIN_BASE_SIDE} px (e.g. 28, 32, 64)'
        )


class UpConvStack(nn.Module):
    """Dense -> reshape -> [ConvTranspose stride 2 -> norm -> ReLU]* -> ConvTranspose.

    Channels halve at every stage, from `width * 2**(stages-1)` down to `width`; the last
    transposed convolution maps to the image's channels. Transposed convolutions are
    `conv_transpose.ConvTranspose`: `nn.ConvTranspose`'s function and parameters, with a kernel
    gradient that XLA-CPU runs fast. `output_activation` is 'tanh'
    (GAN generator, images in [-1, 1]) or 'none' (decoder logits / means). With
    `num_classes` > 0 the batch norms are class-conditional on `labels`.
    """

    image_shape: Sequence[int]
    width: int = 64
    kernel_size: int = 4
    use_batch_norm: bool = True
    output_activation: str = 'tanh'
    axis_name: str | None = None
    num_classes: int = 0

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool) -> jax.Array:
        stages = num_stages(self.image_shape)
        height, width, channels = self.image_shape
        base_h, base_w = height // 2**stages, width // 2**stages
        features = self.width * 2 ** (stages - 1)
        kernel = (self.kernel_size, self.kernel_size)

        def normalize_and_activate(h):
            if self.use_batch_norm:
                h = batch_norm(
                    h,
                    labels,
                    num_classes=self.num_classes,
                    train=train,
                    axis_name=self.axis_name,
                )
            return nn.relu(h)

        h = nn.Dense(base_h * base_w * features, use_bias=not self.use_batch_norm)(z)
        h = normalize_and_activate(h).reshape(z.shape[0], base_h, base_w, features)
        for stage in range(stages - 1):
            features_out = self.width * 2 ** (stages - 2 - stage)
            h = ConvTranspose(
                features_out,
                kernel,
                strides=(2, 2),
                padding='SAME',
                use_bias=not self.use_batch_norm,
            )(h)
            h = normalize_and_activate(h)
        h = ConvTranspose(channels, kernel, strides=(2, 2), padding='SAME')(h)
        if self.output_activation == 'tanh':
            return jnp.tanh(h)
        return h


class DownConvStack(nn.Module):
    """[Conv stride 2 -> LeakyReLU(0.2) -> Dropout]* -> flatten -> Dense(outputs).

    Channels double at every stage from `width`. Serves as the DCGAN discriminator
    (outputs=1, a logit) and as the conv VAE encoder (outputs=2*latent). In training, each
    stage's output is dropped out (inverted dropout) with masks from
    `dropout.dropout_masks`, all drawn from one 'dropout' rng, or, given `dropout_keys`
    (one key per example), example i's masks from dropout_keys[i] alone (so that they do not
    depend on how a batch is split). `spectral_norm` normalises every layer (power iteration
    advanced when `update_stats`); with `num_classes` > 0 it is a projection discriminator
    of (x, labels).
    """

    outputs: int
    width: int = 64
    kernel_size: int = 4
    dropout_rate: float = 0.0
    spectral_norm: bool = False
    num_classes: int = 0

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        labels: jax.Array | None = None,
        *,
        train: bool,
        dropout_keys: jax.Array | None = None,
        update_stats: bool = False,
    ) -> jax.Array:
        stages = num_stages(x.shape[1:])
        features = [self.width * 2**stage for stage in range(stages)]
        keep_rate = 1.0 - self.dropout_rate
        masks = None
        if train and self.dropout_rate > 0:
            shapes = [
                (x.shape[0], x.shape[1] // 2 ** (s + 1), x.shape[2] // 2 ** (s + 1), features[s])
                for s in range(stages)
            ]
            if dropout_keys is None:
                masks = dropout_masks(self.make_rng('dropout'), shapes, keep_rate)
            else:
                masks = jax.vmap(
                    lambda key: dropout_masks(key, [s[1:] for s in shapes], keep_rate)
                )(dropout_keys)
        h = x
        for stage in range(stages):
            conv = nn.Conv(
                features[stage],
                (self.kernel_size, self.kernel_size),
                strides=(2, 2),
                padding='SAME',
            )
            h = spectral(conv, h, self.spectral_norm, update_stats)
            h = nn.leaky_relu(h, negative_slope=0.2)
            if masks is not None:
                h = jnp.where(masks[stage], h / keep_rate, jnp.zeros_like(h))
        h = h.reshape(h.shape[0], -1)
        out = spectral(nn.Dense(self.outputs), h, self.spectral_norm, update_stats)
        if self.num_classes:
            out += projection(h, labels, self.num_classes, self.spectral_norm, update_stats)
        return out
