"""pix2pix's networks (Isola et al. 2017) for any image side that is a power of two times
the U-Net's bottleneck: a U-Net generator and a PatchGAN discriminator.

U-Net (their `UnetGenerator`): `depth` 4x4 stride-2 convs down to the bottleneck, channels
width, 2 width, 4 width, then 8 width; LeakyReLU(0.2) before every conv but the first and a
norm after every one but the first and the innermost (a conv before a norm has no bias,
which the norm would cancel); the mirror up with ReLU before each
transposed conv, a norm after it and a skip connection (concatenation) from the encoder
layer of the same size; tanh out. Dropout 0.5 follows the `dropout_layers` up-convolutions
nearest the bottleneck (pix2pix: the three of its 8 width layers), in training and at test
time: pix2pix's only noise. Norms are instance norms (pix2pix trains at batch size 1, where
its batch norm is one), so no statistics are kept and devices need not sync.

PatchGAN (their `NLayerDiscriminator`): `layers` 4x4 stride-2 convs of width, 2 width, ..
(capped at 8 width), one stride-1 conv of twice the last width, then a stride-1 conv to one
logit per patch; LeakyReLU(0.2), instance norm but on the first. Its receptive field is
`receptive_field(layers)`: 70 px for 3 layers, pix2pix's 70x70 PatchGAN.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_models.nets.conv_transpose import ConvTranspose

PAPER_SIDE = 256  # pix2pix's image side, for which 3 PatchGAN layers see 70 x 70 patches
PAPER_LAYERS = 3


def receptive_field(layers: int) -> int:
    """Side of the input patch one PatchGAN logit sees: two stride-1 4x4 convs on top of
    `layers` stride-2 ones."""
    field = 1 + 3 + 3  # the two stride-1 convs
    for _ in range(layers):
        field = (field - 1) * 2 + 4
    return field


def scaled_patch_layers(side: int) -> int:
    """The number of PatchGAN layers whose patch covers the fraction of the image that
    pix2pix's 70 px patch covers of 256 px (ties to fewer layers)."""
    target = receptive_field(PAPER_LAYERS) / PAPER_SIDE
    candidates = range(int(math.log2(side)) + 1)
    return min(candidates, key=lambda n: abs(receptive_field(n) / side - target))


def _norm(x: jax.Array) -> jax.Array:
    return nn.InstanceNorm(use_bias=True, use_scale=True)(x)


class UNet(nn.Module):
    """Images (B, H, W, C) in [-1, 1] -> (B, H, W, channels) in [-1, 1]."""

    channels: int
    width: int = 64
    depth: int = 5
    dropout_layers: int = 3
    dropout_rate: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, dropout_keys: jax.Array | None = None) -> jax.Array:
        """`dropout_keys`: one key per example, from which its masks alone are drawn (so
        they do not depend on how a batch is split); None: no dropout."""
        widths = [min(self.width * 2**level, 8 * self.width) for level in range(self.depth)]
        skips = []
        h = x
        for level, features in enumerate(widths):
            if level:
                h = nn.leaky_relu(h, 0.2)
            normalized = 0 < level < self.depth - 1
            h = nn.Conv(features, (4, 4), strides=(2, 2), padding='SAME', use_bias=not normalized)(
                h
            )
            if normalized:
                h = _norm(h)
            skips.append(h)
        for level in reversed(range(1, self.depth)):
            h = ConvTranspose(
                widths[level - 1], (4, 4), strides=(2, 2), padding='SAME', use_bias=False
            )(nn.relu(h))
            h = _norm(h)
            if dropout_keys is not None and self.depth - 1 - level < self.dropout_layers:
                keep = 1.0 - self.dropout_rate
                masks = jax.vmap(
                    lambda key, shape=h.shape[1:]: jax.random.bernoulli(
                        jax.random.fold_in(key, level), keep, shape
                    )
                )(dropout_keys)
                h = jnp.where(masks, h / keep, 0.0)
            h = jnp.concatenate([h, skips[level - 1]], axis=-1)
        h = ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding='SAME')(nn.relu(h))
        return jnp.tanh(h)


class PatchGAN(nn.Module):
    """(input, output) image pairs (B, H, W, C_in + C_out) -> patch logits (B, h, w)."""

    width: int = 64
    layers: int = PAPER_LAYERS
    normalize: bool = True  # False: no instance norms (pix2pix's `--norm none`), whose
    # statistics reach beyond the patch

    @nn.compact
    def __call__(self, pair: jax.Array) -> jax.Array:
        def norm(h, index):
            return _norm(h) if self.normalize and index else h

        h = pair
        for layer in range(self.layers):
            features = min(self.width * 2**layer, 8 * self.width)
            biased = not (self.normalize and layer)
            h = nn.Conv(features, (4, 4), (2, 2), 'SAME', use_bias=biased)(h)
            h = nn.leaky_relu(norm(h, layer), 0.2)
        features = min(self.width * 2**self.layers, 8 * self.width)
        biased = not (self.normalize and self.layers)
        h = nn.Conv(features, (4, 4), padding='SAME', use_bias=biased)(h)
        h = nn.leaky_relu(norm(h, self.layers), 0.2)
        return nn.Conv(1, (4, 4), padding='SAME')(h)[..., 0]
