"""Class conditioning: batch norm with per-class scale and offset (generators) and the
class projection of a projection discriminator."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_models.nets.layers import spectral


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and offset are looked up per example's class (de Vries et al.
    2017; the conditional generators of Miyato & Koyama 2018): gamma_y * x_hat + beta_y, with
    gamma initialised to 1 and beta to 0, so it starts as plain batch norm."""

    num_classes: int
    momentum: float = 0.9
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array, *, train: bool) -> jax.Array:
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=self.momentum,
            use_scale=False,
            use_bias=False,
            axis_name=self.axis_name,
        )(x)
        channels = x.shape[-1]
        gamma = nn.Embed(self.num_classes, channels, embedding_init=nn.initializers.ones)(labels)
        beta = nn.Embed(self.num_classes, channels, embedding_init=nn.initializers.zeros)(labels)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (channels,)
        return x * gamma.reshape(shape) + beta.reshape(shape)


def batch_norm(
    x: jax.Array,
    labels: jax.Array | None,
    *,
    num_classes: int,
    train: bool,
    axis_name: str | None,
    momentum: float = 0.9,
) -> jax.Array:
    """Batch norm of `x` inside a compact module: class-conditional when num_classes > 0
    (then `labels` are the classes), else `nn.BatchNorm` with a learnt scale and offset."""
    if num_classes:
        return ConditionalBatchNorm(num_classes, momentum, axis_name)(x, labels, train=train)
    return nn.BatchNorm(use_running_average=not train, momentum=momentum, axis_name=axis_name)(x)


def projection(
    features: jax.Array,
    labels: jax.Array,
    num_classes: int,
    spectral_norm: bool,
    update_stats: bool,
) -> jax.Array:
    """<embed(y), phi(x)> per example (B, 1): the class term of a projection discriminator
    (Miyato & Koyama 2018), D(x, y) = psi(phi(x)) + this. The embedding is a bias-free Dense
    layer on one-hot labels, so spectral normalisation applies to it as to every D layer."""
    # Initialised at the scale of a Dense(1) head on the features (variance 1 / their size),
    # so that the class term does not dominate the initial outputs.
    embed = nn.Dense(
        features.shape[-1],
        use_bias=False,
        kernel_init=nn.initializers.variance_scaling(1.0, 'fan_out', 'truncated_normal'),
        name='class_embedding',
    )
    embedded = spectral(
        embed,
        jax.nn.one_hot(labels, num_classes, dtype=features.dtype),
        spectral_norm,
        update_stats,
    )
    return jnp.sum(embedded * features, axis=-1, keepdims=True)
