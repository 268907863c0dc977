"""GAN objectives and gradient penalties, likelihoods and the KL term of the ELBO.

Everything works on logits for numerical stability: log D = -softplus(-l) and
log(1 - D) = -softplus(l) for D = sigmoid(l). GAN losses are elementwise and likelihood terms are
summed over pixels (nats per image); callers take means over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The generator losses of the cross-entropy game, whose discriminator loss they share.
GENERATOR_LOSSES = ('minimax', 'non_saturating')
# Every `model.gan_loss`: both players' losses.
GAN_LOSSES = (*GENERATOR_LOSSES, 'hinge', 'wasserstein', 'least_squares')
LIKELIHOODS = ('bernoulli', 'gaussian', 'logistic')
_LOG_2PI = float(np.log(2 * np.pi))


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array, kind: str) -> jax.Array:
    """D's loss elementwise; real and fake outputs pair up, the batch mean is D's loss.

    'minimax', 'non_saturating': -(log D(x) + log(1 - D(G(z)))), D maximises the min-max value.
    'hinge': relu(1 - D(x)) + relu(1 + D(G(z))) on raw outputs (Lim & Ye 2017, SNGAN).
    'wasserstein': D(G(z)) - D(x), the critic's negated Wasserstein estimate (Arjovsky et al.).
    'least_squares': ((D(x) - 1)^2 + D(G(z))^2) / 2 on raw outputs (LSGAN, Mao et al. 2017;
    CycleGAN's D loss).
    """
    if kind in GENERATOR_LOSSES:
        return jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)
    if kind == 'hinge':
        return jax.nn.relu(1.0 - real_logits) + jax.nn.relu(1.0 + fake_logits)
    if kind == 'wasserstein':
        return fake_logits - real_logits
    if kind == 'least_squares':
        return 0.5 * ((real_logits - 1.0) ** 2 + fake_logits**2)
    raise ValueError(f'GAN loss {kind!r}: allowed {GAN_LOSSES}')


def generator_loss(fake_logits: jax.Array, kind: str) -> jax.Array:
    """The generator's loss elementwise on D's outputs for generated images.

    'minimax': minimise log(1 - D(G(z))), the literal min-max objective.
    'non_saturating': minimise -log D(G(z)), same fixed point, stronger early gradients.
    'hinge', 'wasserstein': minimise -D(G(z)) (raw outputs).
    'least_squares': minimise (D(G(z)) - 1)^2.
    """
    if kind == 'minimax':
        return -jax.nn.softplus(fake_logits)
    if kind == 'non_saturating':
        return jax.nn.softplus(-fake_logits)
    if kind in ('hinge', 'wasserstein'):
        return -fake_logits
    if kind == 'least_squares':
        return (fake_logits - 1.0) ** 2
    raise ValueError(f'GAN loss {kind!r}: allowed {GAN_LOSSES}')


def gradient_penalty(input_grads: jax.Array) -> jax.Array:
    """(||grad_x D(x)||_2 - 1)^2 per example (WGAN-GP, Gulrajani et al. 2017), given the
    gradients of D's outputs at random interpolates of real and generated images."""
    # The 1e-12 keeps the norm's gradient finite where D's gradient vanishes.
    return (jnp.sqrt(squared_gradient_norm(input_grads) + 1e-12) - 1.0) ** 2


def squared_gradient_norm(input_grads: jax.Array) -> jax.Array:
    """||grad_x D(x)||_2^2 per example; on real data, gamma / 2 times it is the R1 penalty
    (Mescheder et al. 2018)."""
    return _sum_per_example(input_grads**2)


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


def discretized_logistic_log_likelihood(
    mean: jax.Array, log_scale: jax.Array, x: jax.Array, bins: int = 256
) -> jax.Array:
    """log P(x) per example for 8-bit pixels x = k / (bins - 1) in [0, 1] under a logistic of
    `mean` and scale exp(log_scale) (broadcast against x) discretised into `bins` bins
    (Kingma et al. 2016; Salimans et al. 2017): P(k) = F(x + h) - F(x - h), h half a bin, with
    the edge bins stretched to -inf and +inf so that the probabilities of a pixel sum to one.

    With F = sigmoid, a = (x + h - mean) / s and b = (x - h - mean) / s,
    log(F(a) - F(b)) = log F(a) + log(1 - F(b)) + log(1 - exp(b - a)), which is exact and
    finite for every a > b (no switch to the density at small bin mass is needed).
    """
    half = 0.5 / (bins - 1)
    inv_scale = jnp.exp(-jnp.broadcast_to(log_scale, x.shape))
    upper = (x - mean + half) * inv_scale
    lower = (x - mean - half) * inv_scale
    log_cdf_upper = -jax.nn.softplus(-upper)  # log F(a): the whole mass below x + h
    log_sf_lower = -jax.nn.softplus(lower)  # log (1 - F(b)): the whole mass above x - h
    log_bin = log_cdf_upper + log_sf_lower + jnp.log(-jnp.expm1(-2 * half * inv_scale))
    log_prob = jnp.where(x < half, log_cdf_upper, jnp.where(x > 1 - half, log_sf_lower, log_bin))
    return _sum_per_example(log_prob)


def bits_per_dim(log_likelihood: jax.Array, num_dims: int) -> jax.Array:
    """-log2 P(x) / D: a discrete likelihood in nats per image as bits per pixel channel."""
    return -log_likelihood / (num_dims * np.log(2.0))


def kl_weight(step: jax.Array, beta: jax.Array | float, warmup_steps: int) -> jax.Array:
    """The KL term's weight at `step`: beta * min(step / warmup_steps, 1), rising linearly
    from 0 (KL warm-up); beta throughout when warmup_steps is 0. Arithmetic on the step, so
    it is jittable and a resumed run continues the ramp exactly."""
    if warmup_steps <= 0:
        return jnp.asarray(beta, jnp.float32)
    return beta * jnp.minimum(jnp.asarray(step, jnp.float32) / warmup_steps, 1.0)


def kl_to_standard_normal(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, in closed form."""
    return 0.5 * _sum_per_example(jnp.exp(log_var) + mean**2 - 1.0 - log_var)
