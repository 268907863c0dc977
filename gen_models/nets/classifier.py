"""A small conv classifier whose penultimate layer is a dataset-specific feature space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class Classifier(nn.Module):
    """uint8 images -> (features, logits).

    [Conv3x3-ReLU, Conv3x3-ReLU, MaxPool2] per entry of `widths` -> Dense(feature_dim)-ReLU
    (the features) -> Dense(num_classes) (the logits). Inputs are scaled to [-1, 1] inside,
    so data and quantised samples enter the same way, as `dtype` (bfloat16 under mixed
    precision: the inputs carry the computation's dtype into every layer).
    """

    num_classes: int
    widths: Sequence[int] = (16, 32)
    feature_dim: int = 128
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = (images.astype(jnp.float32) / 127.5 - 1.0).astype(self.dtype)
        for width in self.widths:
            x = nn.relu(nn.Conv(width, (3, 3))(x))
            x = nn.relu(nn.Conv(width, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        features = nn.relu(nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1)))
        return features, nn.Dense(self.num_classes)(features)
