"""Multi-layer perceptrons over flattened images (Kingma & Welling 2013 style)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import numpy as np

ACTIVATIONS = {
    'tanh': nn.tanh,
    'relu': nn.relu,
    'softplus': nn.softplus,
    'leaky_relu': nn.leaky_relu,
}


class MLP(nn.Module):
    """Flatten -> [Dense -> activation]* -> Dense(outputs) -> optional reshape.

    `output_shape` (e.g. an image's (H, W, C)) reshapes the last layer; its size sets
    the number of outputs. Used as encoder (outputs = 2 * latent) and decoder.
    """

    hidden: Sequence[int]
    output_shape: Sequence[int]
    activation: str = 'tanh'

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # No train/eval difference; kept for a uniform net interface.
        h = x.reshape(x.shape[0], -1)
        for size in self.hidden:
            h = ACTIVATIONS[self.activation](nn.Dense(size)(h))
        h = nn.Dense(int(np.prod(self.output_shape)))(h)
        return h.reshape(x.shape[0], *self.output_shape)
