"""The penalties disentangling VAEs add to the ELBO, on one batch of codes, as
disentanglement_lib computes them (Locatello et al. 2019).

All take the batch's posterior means and log variances (B, D) and/or codes z (B, D) drawn
from them; batch statistics (covariances, the minibatch estimate of total correlation) are
over the rows given, so callers pass the whole (gathered) batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_LOG_2PI = float(np.log(2 * np.pi))


def capacity(step: jax.Array, c_max: jax.Array | float, steps: int) -> jax.Array:
    """AnnealedVAE's target KL C (Burgess et al. 2018): rising linearly from 0 to `c_max`
    over `steps` train steps, then constant."""
    progress = jnp.minimum(jnp.asarray(step, jnp.float32) / max(steps, 1), 1.0)
    return c_max * progress


def gaussian_log_density(samples: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """log N(samples; mean, exp(log_var)) per coordinate (broadcasting)."""
    centred = samples - mean
    return -0.5 * (centred * centred * jnp.exp(-log_var) + log_var + _LOG_2PI)


def total_correlation(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """beta-TCVAE's minibatch estimate of TC(z) = KL(q(z) || prod_d q(z_d)) (Chen et al.
    2018): q(z_i) and q(z_id) are the mixtures of the batch's posteriors evaluated at code i,
    without the constant log(N M) terms, which cancel between the two in expectation only
    (disentanglement_lib's estimator, kept for comparability)."""
    log_q = gaussian_log_density(z[:, None, :], mean[None, :, :], log_var[None, :, :])
    log_q_product = jnp.sum(jax.nn.logsumexp(log_q, axis=1), axis=1)
    log_q_joint = jax.nn.logsumexp(jnp.sum(log_q, axis=2), axis=1)
    return jnp.mean(log_q_joint - log_q_product)


def covariance(values: jax.Array) -> jax.Array:
    """The (D, D) covariance of rows (B, D), normalised by B: E[v v^T] - E[v] E[v]^T."""
    centre = jnp.mean(values, axis=0)
    return jnp.mean(values[:, :, None] * values[:, None, :], axis=0) - jnp.outer(centre, centre)


def dip_covariance(mean: jax.Array, log_var: jax.Array, kind: str) -> jax.Array:
    """DIP-VAE's matched covariance (Kumar et al. 2018): of the posterior means (kind 'i'), or
    of the aggregate posterior, Cov[mean] + E[diag(exp(log_var))] (kind 'ii')."""
    cov = covariance(mean)
    if kind == 'ii':
        cov = cov + jnp.diag(jnp.mean(jnp.exp(log_var), axis=0))
    return cov


def dip_penalty(cov: jax.Array, lambda_od: jax.Array | float, lambda_d: jax.Array | float):
    """lambda_od * sum of squared off-diagonal entries + lambda_d * sum (diagonal - 1)^2."""
    diagonal = jnp.diag(cov)
    off_diagonal = cov - jnp.diag(diagonal)
    return lambda_od * jnp.sum(off_diagonal**2) + lambda_d * jnp.sum((diagonal - 1.0) ** 2)


def permute_dimensions(z: jax.Array, rng: jax.Array) -> jax.Array:
    """Each column of z (B, D) permuted across the batch on its own: a sample of the product
    of the marginals prod_d q(z_d), as FactorVAE's discriminator sees it."""
    keys = jax.random.split(rng, z.shape[1])
    return jax.vmap(lambda key, column: jax.random.permutation(key, column), in_axes=(0, 1))(
        keys, z
    ).T
