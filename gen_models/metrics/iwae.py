"""The IWAE bound on log p(x) (Burda et al. 2016), and the 'iwae' metric.

log p(x) >= E[log (1/k) sum_s w_s], w_s = p(x, z_s) / q(z_s | x), z_s ~ q(z | x); k = 1 is
the ELBO and the bound tightens as k grows. The k weights of an example are made `chunk` at a
time inside one compiled loop with a running log-sum-exp, so memory does not grow with k
(k = 5000 as in the paper).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from gen_models import config as cfg
from gen_models import losses
from gen_models.metrics.registry import EvalContext, Metric, Protocols, Values
from gen_models.models import base


def eval_defaults() -> ml_collections.ConfigDict:
    evaluation = ml_collections.ConfigDict()
    evaluation.iwae_samples = 5000  # iwae: importance samples k per image (Burda et al.)
    evaluation.iwae_chunk = 100  # iwae: samples decoded per image at once (memory)
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {
    'eval.iwae_samples': cfg.at_least(1),
    'eval.iwae_chunk': cfg.at_least(1),
}


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


def _compute(context: EvalContext) -> tuple[Values, Protocols]:
    config = context.config.eval
    step = iwae_eval_step(context.model.log_weights, config.iwae_samples, config.iwae_chunk)
    protocol = {
        'metric': 'IWAE bound on log p(x) (Burda et al. 2016), nats per image',
        'importance_samples': config.iwae_samples,
        **context.protocol,
    }
    return {'iwae': context.evaluate(step)['iwae']}, {'iwae': protocol}


METRICS = (
    Metric(
        name='iwae',
        outputs=('iwae',),
        description='IWAE bound on log p(x), k importance samples (Burda et al. 2016), on the '
        'eval split',
        compute=_compute,
        requires=('log_weights',),
        keys=('iwae_samples', 'iwae_chunk'),
    ),
)
