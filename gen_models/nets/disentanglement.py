"""The networks of disentanglement_lib's study (Locatello et al. 2019), for any image side
divisible by 16.

- `ConvEncoder`: four 4x4 stride-2 convs of 32, 32, 64, 64 channels with ReLU, dense 256
  ReLU, dense 2 * latent (means, then log variances).
- `DeconvDecoder`: the mirror: dense 256, dense side/16 x side/16 x 64 (1024 at 64 px), both
  ReLU, then 4x4 stride-2 transposed convs of 64, 32, 32 channels with ReLU and a last one to
  the image's channels (logits).
- `CodeDiscriminator`: FactorVAE's total-correlation critic (Kim & Mnih 2018): 6 dense layers
  of 1000 with LeakyReLU(0.2), then 2 logits (a code from q(z), or one whose dimensions were
  permuted across the batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from gen_models.nets.conv_transpose import ConvTranspose

ENCODER_CHANNELS = (32, 32, 64, 64)
HIDDEN = 256
DOWNSAMPLING = 2 ** len(ENCODER_CHANNELS)
DISCRIMINATOR_LAYERS = 6
DISCRIMINATOR_WIDTH = 1000
DISCRIMINATOR_SLOPE = 0.2


class ConvEncoder(nn.Module):
    """Images (B, H, W, C) -> (B, outputs)."""

    outputs: int

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # No train/eval difference; kept for a uniform net interface.
        h = x
        for channels in ENCODER_CHANNELS:
            h = nn.relu(nn.Conv(channels, (4, 4), strides=(2, 2), padding='SAME')(h))
        h = nn.relu(nn.Dense(HIDDEN)(h.reshape(h.shape[0], -1)))
        return nn.Dense(self.outputs)(h)


class DeconvDecoder(nn.Module):
    """Codes (B, D) -> logits (B, H, W, C) of `image_shape`."""

    image_shape: Sequence[int]

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
        del train
        height, width, channels = self.image_shape
        base_h, base_w = height // DOWNSAMPLING, width // DOWNSAMPLING
        top = ENCODER_CHANNELS[-1]
        h = nn.relu(nn.Dense(HIDDEN)(z))
        h = nn.relu(nn.Dense(base_h * base_w * top)(h)).reshape(z.shape[0], base_h, base_w, top)
        for features in reversed(ENCODER_CHANNELS[:-1]):
            h = nn.relu(ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')(h))
        return ConvTranspose(channels, (4, 4), strides=(2, 2), padding='SAME')(h)


class CodeDiscriminator(nn.Module):
    """Codes (B, D) -> 2 logits: [from q(z), from the product of its marginals]."""

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = z
        for _ in range(DISCRIMINATOR_LAYERS):
            h = nn.leaky_relu(nn.Dense(DISCRIMINATOR_WIDTH)(h), DISCRIMINATOR_SLOPE)
        return nn.Dense(2)(h)
