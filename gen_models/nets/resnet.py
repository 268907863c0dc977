"""SNGAN-style residual generator and discriminator (Miyato et al. 2018, appendix B.4: the
CIFAR-10 ResNets of Gulrajani et al. 2017), resolution-generic like the conv stacks.

G: z -> Dense -> (base, base, 4w) -> [up block]*stages -> BN -> ReLU -> conv 3x3 -> tanh;
an up block is BN -> ReLU -> 2x nearest upsampling -> conv 3x3 -> BN -> ReLU -> conv 3x3,
plus a 2x-upsampled 1x1-conv shortcut. D: an optimised first down block, down blocks to a
quarter of the first map's side, two blocks at that side (2w channels throughout), ReLU,
global sum pooling, Dense -> logit (plus the class projection when conditional). At 32 px:
G 4 -> 8 -> 16 -> 32 with 256 channels at w=64, D 32 -> 16 -> 8 -> 8 -> 8 with 128, as in
the paper and StudioGAN.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_models.nets.conditional import batch_norm, projection
from gen_models.nets.conv import num_stages
from gen_models.nets.layers import spectral


def _upsample(x: jax.Array) -> jax.Array:
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _downsample(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class ResNetGenerator(nn.Module):
    """Residual generator of `image_shape` images in [-1, 1]; class-conditional batch norm
    when `num_classes` > 0."""

    image_shape: Sequence[int]
    width: int = 64
    num_classes: int = 0
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool) -> jax.Array:
        stages = num_stages(self.image_shape)
        height, width, channels = self.image_shape
        features = 4 * self.width

        def norm_relu(h):
            return nn.relu(
                batch_norm(
                    h,
                    labels,
                    num_classes=self.num_classes,
                    train=train,
                    axis_name=self.axis_name,
                )
            )

        h = nn.Dense(height // 2**stages * (width // 2**stages) * features)(z)
        h = h.reshape(z.shape[0], height // 2**stages, width // 2**stages, features)
        for _ in range(stages):
            shortcut = nn.Conv(features, (1, 1))(_upsample(h))
            h = nn.Conv(features, (3, 3))(_upsample(norm_relu(h)))
            h = shortcut + nn.Conv(features, (3, 3))(norm_relu(h))
        return jnp.tanh(nn.Conv(channels, (3, 3))(norm_relu(h)))


class ResNetDiscriminator(nn.Module):
    """Residual discriminator -> (B, 1) logits, every layer spectrally normalised when
    `spectral_norm` (power iteration advanced when `update_stats`); a projection
    discriminator of (x, labels) when `num_classes` > 0. No dropout, no batch norm: examples
    are independent."""

    width: int = 64
    spectral_norm: bool = False
    num_classes: int = 0

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        labels: jax.Array | None = None,
        *,
        train: bool,
        update_stats: bool = False,
    ) -> jax.Array:
        del train  # The same function in training and evaluation.
        features = 2 * self.width

        def conv(h, kernel):
            return spectral(nn.Conv(features, kernel), h, self.spectral_norm, update_stats)

        # Optimised first block: no ReLU before its first conv, shortcut pooled first.
        h = _downsample(conv(nn.relu(conv(x, (3, 3))), (3, 3))) + conv(_downsample(x), (1, 1))
        down_blocks = max(num_stages(x.shape[1:]) - 2, 0)
        for block in range(down_blocks + 2):
            residual = conv(nn.relu(conv(nn.relu(h), (3, 3))), (3, 3))
            if block < down_blocks:
                h = _downsample(residual) + _downsample(conv(h, (1, 1)))
            else:
                h = residual + h
        h = jnp.sum(nn.relu(h), axis=(1, 2))
        out = spectral(nn.Dense(1), h, self.spectral_norm, update_stats)
        if self.num_classes:
            out += projection(h, labels, self.num_classes, self.spectral_norm, update_stats)
        return out
