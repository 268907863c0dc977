"""Likelihood evaluation: the IWAE bound on log p(x) and Parzen-window estimates.

IWAE (Burda et al. 2016): log p(x) >= E[log (1/k) sum_s w_s], w_s = p(x, z_s) / q(z_s | x),
z_s ~ q(z | x); k = 1 is the ELBO and the bound tightens as k grows. The k weights of an
example are made `chunk` at a time inside one compiled loop with a running log-sum-exp, so
memory does not grow with k (k = 5000 as in the paper).

Parzen window (Goodfellow et al. 2014): a Gaussian kernel density on generated samples, its
width chosen by the mean log-likelihood of a validation split, reported on the test split with
the standard error of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import losses
from gen_models.metrics.distances import squared_distances
from gen_models.models import base


def latent_log_ratio(
    mean: jax.Array, log_var: jax.Array, eps: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(z_s, log p(z_s) - log q(z_s | x)) for one example, p(z) = N(0, I).

    z_s = mean + exp(log_var / 2) * eps_s for eps (S, latent) standard normal draws of a
    Gaussian q(z | x) = N(mean, diag(exp(log_var))). log q is computed from eps itself, which
    avoids a round trip through z.
    """
    z = mean + jnp.exp(0.5 * log_var) * eps
    zeros = jnp.zeros(())
    log_prior = losses.gaussian_log_likelihood(zeros, zeros, z)
    log_q = losses.gaussian_log_likelihood(zeros, zeros, eps) - 0.5 * jnp.sum(log_var)
    return z, log_prior - log_q


def importance_log_weights(
    log_likelihood: Callable[[jax.Array], jax.Array],
    mean: jax.Array,
    log_var: jax.Array,
    eps: jax.Array,
) -> jax.Array:
    """log p(x | z_s) + log p(z_s) - log q(z_s | x) for one example (`latent_log_ratio`);
    `log_likelihood` maps (S, latent) z to (S,) log p(x | z)."""
    z, log_ratio = latent_log_ratio(mean, log_var, eps)
    return log_likelihood(z) + log_ratio


def iwae_bound(
    log_weights: Callable[[jax.Array, int], jax.Array], num_samples: int, chunk: int
) -> jax.Array:
    """log((1/k) sum_s w_s) per example, from `log_weights(offset, chunk) -> (B, chunk)`, the
    log-weights of samples offset .. offset + chunk - 1; samples >= k (in a last partial
    chunk) are left out. Sample s must depend on s alone, not on the chunk it falls in."""
    num_chunks = -(-num_samples // chunk)

    def chunk_values(index):
        offset = index * chunk
        values = log_weights(offset, chunk)
        return jnp.where(offset + jnp.arange(chunk) < num_samples, values, -jnp.inf)

    def body(index, carry):
        top, total = carry
        values = chunk_values(index)
        new_top = jnp.maximum(top, values.max(axis=-1))
        total = total * jnp.exp(top - new_top) + jnp.exp(values - new_top[:, None]).sum(axis=-1)
        return new_top, total

    first = chunk_values(0)  # Starts the running log-sum-exp (and fixes the carry's type).
    top = first.max(axis=-1)
    total = jnp.exp(first - top[:, None]).sum(axis=-1)
    top, total = jax.lax.fori_loop(1, num_chunks, body, (top, total))
    return top + jnp.log(total) - math.log(num_samples)


def iwae_eval_step(log_weights: Callable[..., jax.Array], num_samples: int, chunk: int):
    """A per-device eval step (state, batch, rng) -> {'iwae': sum, 'count'} (psum'd) for a
    model's `log_weights(state, batch, rng, offset, num) -> (B, num)`."""

    def step(state, batch, rng):
        bound = iwae_bound(
            lambda offset, num: log_weights(state, batch, rng, offset, num), num_samples, chunk
        )
        return base.masked_sums({'iwae': bound}, batch['mask'])

    return step


def parzen_log_likelihoods(
    centres: np.ndarray, x: np.ndarray, sigmas: Sequence[float], chunk: int = 500
) -> np.ndarray:
    """(len(sigmas), N) log-densities of rows of x under the mixture of N(centre, sigma^2 I)
    with equal weights, in float64; distances are computed once for every sigma."""
    centres = np.asarray(centres, np.float64).reshape(len(centres), -1)
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    sigmas = np.asarray(sigmas, np.float64)
    dim = x.shape[1]
    out = np.empty((len(sigmas), len(x)))
    for start in range(0, len(x), chunk):
        distances = squared_distances(x[start : start + chunk], centres)
        for index, sigma in enumerate(sigmas):
            exponents = -distances / (2 * sigma**2)
            top = exponents.max(axis=1)
            out[index, start : start + chunk] = top + np.log(
                np.exp(exponents - top[:, None]).sum(axis=1)
            )
    normaliser = np.log(len(centres)) + 0.5 * dim * np.log(2 * np.pi * sigmas**2)
    return out - normaliser[:, None]


def parzen_window(
    samples: np.ndarray,
    validation: np.ndarray,
    test: np.ndarray,
    sigmas: Sequence[float],
    test_labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """Goodfellow et al. (2014): the sigma of `sigmas` with the best mean validation
    log-likelihood; the mean test log-likelihood under it and its standard error
    (std / sqrt(N), as their code computes it), and that best validation mean (a score to
    choose checkpoints by without looking at the test split). With `test_labels`, also
    'class_log_likelihoods': {label: mean test log-likelihood of that label's images},
    which shows the classes (modes) the samples cover worst."""
    validation_means = parzen_log_likelihoods(samples, validation, sigmas).mean(axis=1)
    best = int(np.argmax(validation_means))
    sigma = float(sigmas[best])
    test_values = parzen_log_likelihoods(samples, test, [sigma])[0]
    result: dict[str, Any] = {
        'log_likelihood': float(test_values.mean()),
        'stderr': float(test_values.std() / np.sqrt(len(test_values))),
        'sigma': sigma,
        'validation_log_likelihood': float(validation_means[best]),
    }
    if test_labels is not None:
        result['class_log_likelihoods'] = {
            int(label): float(test_values[test_labels == label].mean())
            for label in np.unique(test_labels)
        }
    return result
