"""The disentangling penalties against independent numpy/scipy computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from scipy.special import logsumexp

from gen_models import latent_regularizers as reg

RNG = np.random.default_rng(0)
MEAN, LOG_VAR = RNG.normal(size=(6, 3)), RNG.normal(size=(6, 3)) * 0.3
Z = MEAN + np.exp(0.5 * LOG_VAR) * RNG.normal(size=(6, 3))


def test_minibatch_total_correlation_is_the_logsumexp_estimate():
    # (i, j, d): log q(z_i,d | x_j), the density of code i under posterior j
    log_q = scipy.stats.norm.logpdf(Z[:, None, :], MEAN[None], np.exp(0.5 * LOG_VAR)[None])
    expected = np.mean(logsumexp(log_q.sum(axis=2), axis=1) - logsumexp(log_q, axis=1).sum(1))
    ours = reg.total_correlation(jnp.asarray(Z), jnp.asarray(MEAN), jnp.asarray(LOG_VAR))
    np.testing.assert_allclose(float(ours), expected, rtol=1e-5)


@pytest.mark.parametrize('kind', ['i', 'ii'])
def test_dip_covariance_and_penalty(kind):
    expected = np.cov(MEAN, rowvar=False, bias=True)
    if kind == 'ii':
        expected += np.diag(np.exp(LOG_VAR).mean(axis=0))
    cov = np.asarray(reg.dip_covariance(jnp.asarray(MEAN), jnp.asarray(LOG_VAR), kind))
    np.testing.assert_allclose(cov, expected, rtol=1e-5, atol=1e-6)
    off = expected - np.diag(np.diag(expected))
    penalty = 2.0 * np.sum(off**2) + 5.0 * np.sum((np.diag(expected) - 1) ** 2)
    np.testing.assert_allclose(float(reg.dip_penalty(jnp.asarray(cov), 2.0, 5.0)), penalty, 1e-5)


def test_capacity_rises_linearly_then_stays():
    values = [float(reg.capacity(step, 25.0, 100)) for step in (0, 50, 100, 400)]
    assert values == pytest.approx([0.0, 12.5, 25.0, 25.0])


def test_permuting_dimensions_keeps_each_column_and_breaks_rows():
    z = jnp.arange(64.0 * 4).reshape(64, 4)
    permuted = np.asarray(reg.permute_dimensions(z, jax.random.key(0)))
    for d in range(4):
        assert sorted(permuted[:, d]) == sorted(np.asarray(z[:, d]))
    orders = [tuple(np.argsort(permuted[:, d])) for d in range(4)]
    assert len(set(orders)) == 4  # each dimension drew its own permutation
