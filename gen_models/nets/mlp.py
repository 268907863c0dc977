"""Multi-layer perceptrons over flattened images: the VAE nets of Kingma & Welling 2013 and
the GAN nets of Goodfellow et al. 2014 (a ReLU generator, a maxout discriminator)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_models.nets.dropout import keep_mask

ACTIVATIONS = {
    'tanh': nn.tanh,
    'relu': nn.relu,
    'softplus': nn.softplus,
    'leaky_relu': nn.leaky_relu,
}


class MLP(nn.Module):
    """Flatten -> [Dense -> activation]* -> Dense(outputs) -> optional reshape.

    `output_shape` (e.g. an image's (H, W, C)) reshapes the last layer; its size sets
    the number of outputs. Used as encoder (outputs = 2 * latent) and decoder. Weights start
    uniform in +-`init_range`, or LeCun normal when it is 0; biases at 0.
    """

    hidden: Sequence[int]
    output_shape: Sequence[int]
    activation: str = 'tanh'
    init_range: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # No train/eval difference; kept for a uniform net interface.
        h = x.reshape(x.shape[0], -1)
        dense = functools.partial(nn.Dense, kernel_init=kernel_init(self.init_range))
        for size in self.hidden:
            h = ACTIVATIONS[self.activation](dense(size)(h))
        h = dense(int(np.prod(self.output_shape)))(h)
        return h.reshape(x.shape[0], *self.output_shape)


def kernel_init(init_range: float) -> nn.initializers.Initializer:
    """Uniform in +-init_range (pylearn2's `irange`, Goodfellow et al.'s nets), or flax's
    LeCun normal when init_range is 0."""
    if not init_range:
        return nn.initializers.lecun_normal()

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -init_range, init_range)

    return init


class MLPGenerator(nn.Module):
    """z -> MLP -> 2 sigmoid(a) - 1: Goodfellow et al.'s sigmoid output on [0, 1] pixels,
    mapped to the [-1, 1] images the GAN trains on. The GAN generator interface;
    unconditional only."""

    hidden: Sequence[int]
    image_shape: Sequence[int]
    activation: str = 'relu'
    init_range: float = 0.0

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool) -> jax.Array:
        del labels  # Unconditional: config validation rejects model.conditional with mlp nets.
        mlp = MLP(self.hidden, self.image_shape, self.activation, self.init_range)
        return 2.0 * nn.sigmoid(mlp(z, train=train)) - 1.0


class MaxoutDiscriminator(nn.Module):
    """Flatten -> [Dropout -> Maxout(units, pieces)]* -> Dropout -> Dense(outputs).

    Goodfellow et al. 2014's MNIST discriminator: each maxout unit is the max of `pieces`
    linear pieces (Goodfellow et al. 2013). It reads the GAN's [-1, 1] images as the
    paper's [0, 1] pixels; weights start as in `MLP` (`init_range`). In training, the input
    of the first layer is dropped out at `input_dropout` and that of every later layer at
    `dropout_rate` (inverted dropout); given `dropout_keys` (one per example) example i's
    masks come from dropout_keys[i] alone, so they do not depend on how a batch is split
    over devices.
    """

    hidden: Sequence[int]
    pieces: int = 5
    outputs: int = 1
    input_dropout: float = 0.0
    dropout_rate: float = 0.0
    init_range: float = 0.0

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
        del labels, update_stats  # Unconditional, and no spectral norm or batch statistics.
        h = (x.reshape(x.shape[0], -1) + 1.0) / 2.0
        sizes = [h.shape[1], *self.hidden]
        rates = [self.input_dropout] + [self.dropout_rate] * len(self.hidden)
        masks = [None] * len(sizes)
        if train and any(rates):
            keys = (
                dropout_keys
                if dropout_keys is not None
                else jax.random.split(self.make_rng('dropout'), x.shape[0])
            )
            masks = jax.vmap(lambda key: self._masks(key, sizes, rates))(keys)
        dense = functools.partial(nn.Dense, kernel_init=kernel_init(self.init_range))
        for index, units in enumerate(self.hidden):
            h = dense(units * self.pieces)(_drop(h, masks[index], rates[index]))
            h = jnp.max(h.reshape(h.shape[0], units, self.pieces), axis=-1)
        return dense(self.outputs)(_drop(h, masks[-1], rates[-1]))

    @staticmethod
    def _masks(key: jax.Array, sizes: Sequence[int], rates: Sequence[float]) -> list:
        """One example's keep masks, one per layer input (None where its rate is 0)."""
        return [
            keep_mask(jax.random.fold_in(key, index), (size,), 1.0 - rate) if rate else None
            for index, (size, rate) in enumerate(zip(sizes, rates))
        ]


def _drop(h: jax.Array, mask: jax.Array | None, rate: float) -> jax.Array:
    """Inverted dropout of `h` with keep `mask` (identity without one)."""
    if mask is None:
        return h
    return jnp.where(mask, h / (1.0 - rate), jnp.zeros_like(h))
