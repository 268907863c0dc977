"""CycleGAN's ResNet generator (Zhu et al. 2017, after Johnson et al. 2016), for image sides
divisible by 4.

c7s1-w, d2w, d4w, `blocks` residual blocks of 4w (two reflection-padded 3x3 convs, instance
norm, ReLU between), u2w, uw, c7s1-C, tanh: 7x7 convs with reflection padding 3 at the ends,
3x3 stride-2 convs down and transposed convs up, instance norm and ReLU after each but the
last (a conv before a norm has no bias, which the norm would cancel). CycleGAN uses 9 blocks at 256 px and 6 at 128 px.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_models.nets.conv_transpose import ConvTranspose


def _reflect(x: jax.Array, pad: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


def _norm_relu(x: jax.Array) -> jax.Array:
    return nn.relu(nn.InstanceNorm()(x))


class ResidualBlock(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = _norm_relu(
            nn.Conv(self.features, (3, 3), padding='VALID', use_bias=False)(_reflect(x, 1))
        )
        h = nn.InstanceNorm()(
            nn.Conv(self.features, (3, 3), padding='VALID', use_bias=False)(_reflect(h, 1))
        )
        return x + h


class ResNetGenerator(nn.Module):
    """Images (B, H, W, C) in [-1, 1] -> (B, H, W, channels) in [-1, 1]."""

    channels: int
    width: int = 64
    blocks: int = 9

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = _norm_relu(nn.Conv(self.width, (7, 7), padding='VALID', use_bias=False)(_reflect(x, 3)))
        for factor in (2, 4):
            h = _norm_relu(nn.Conv(factor * self.width, (3, 3), (2, 2), 'SAME', use_bias=False)(h))
        for _ in range(self.blocks):
            h = ResidualBlock(4 * self.width)(h)
        for factor in (2, 1):
            h = ConvTranspose(
                factor * self.width, (3, 3), strides=(2, 2), padding='SAME', use_bias=False
            )(h)
            h = _norm_relu(h)
        return jnp.tanh(nn.Conv(self.channels, (7, 7), padding='VALID')(_reflect(h, 3)))
