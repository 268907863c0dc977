"""GAN objectives, likelihoods and the KL term of the ELBO.

Everything works on logits for numerical stability: log D = -softplus(-l) and
log(1 - D) = -softplus(l) for D = sigmoid(l). GAN losses are elementwise and likelihood terms are
summed over pixels (nats per image); callers take means over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

GENERATOR_LOSSES = ('minimax', 'non_saturating')
LIKELIHOODS = ('bernoulli', 'gaussian')
_LOG_2PI = float(np.log(2 * np.pi))


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """-(log D(x) + log(1 - D(G(z)))) elementwise: D maximises the min-max value.

    Real and fake logits pair up elementwise; the batch mean is D's loss.
    """
    return jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)


def generator_loss(fake_logits: jax.Array, kind: str) -> jax.Array:
    """The generator's loss elementwise on D's logits for generated images.

    'minimax': minimise log(1 - D(G(z))), the literal min-max objective.
    'non_saturating': minimise -log D(G(z)), same fixed point, stronger early gradients.
    """
    if kind == 'minimax':
        return -jax.nn.softplus(fake_logits)
    if kind == 'non_saturating':
        return jax.nn.softplus(-fake_logits)
    raise ValueError(f'generator loss {kind!r}: allowed {GENERATOR_LOSSES}')


def _sum_per_example(values: jax.Array) -> jax.Array:
    return values.reshape(values.shape[0], -1).sum(axis=-1)


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x | logits) per example, for x in [0, 1] (binary or the continuous relaxation)."""
    return -_sum_per_example(jax.nn.softplus(logits) - x * logits)


def gaussian_log_likelihood(mean: jax.Array, log_std: jax.Array, x: jax.Array) -> jax.Array:
    """log N(x; mean, exp(log_std)^2) per example; log_std broadcasts against x."""
    log_std = jnp.broadcast_to(log_std, x.shape)
    z = (x - mean) * jnp.exp(-log_std)
    return _sum_per_example(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI)


def kl_to_standard_normal(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, in closed form."""
    return 0.5 * _sum_per_example(jnp.exp(log_var) + mean**2 - 1.0 - log_var)
