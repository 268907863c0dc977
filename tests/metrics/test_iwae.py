"""The IWAE bound against exact log-marginals of a linear-Gaussian model, and on a trained VAE."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from experiments import runtime, train
from gen_models import losses
from gen_models.metrics import iwae
from tests.tiny import tiny

LATENT, DIM, NOISE_STD = 3, 5, 0.5


def _linear_gaussian(seed: int = 0):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I) with orthogonal columns of W, so that the
    exact posterior is a diagonal Gaussian; returns W, b, data x and the posterior moments."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(DIM, LATENT)))
    weights = basis * np.array([2.0, 1.0, 0.5])
    bias = rng.normal(size=DIM)
    x = rng.normal(size=(6, DIM)) * 2.0
    post_var = 1.0 / (1.0 + (weights**2).sum(0) / NOISE_STD**2)
    post_mean = (x - bias) @ weights / NOISE_STD**2 * post_var
    return weights, bias, x, post_mean, np.log(np.broadcast_to(post_var, post_mean.shape))


def _bound(weights, bias, x, mean, log_var, num_samples, chunk):
    """IWAE bounds of rows of x; example i draws its samples from key i."""

    def log_weights(offset, num):
        def per_example(index, x_one, mean_one, log_var_one):
            keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(index), s))(
                offset + jnp.arange(num)
            )
            eps = jax.vmap(lambda k: jax.random.normal(k, (LATENT,)))(keys)
            return iwae.importance_log_weights(
                lambda z: losses.gaussian_log_likelihood(
                    z @ weights.T + bias, jnp.log(NOISE_STD), x_one[None]
                ),
                mean_one,
                log_var_one,
                eps,
            )

        return jax.vmap(per_example)(jnp.arange(len(x)), x, mean, log_var)

    arrays = [jnp.asarray(a, jnp.float32) for a in (weights, bias, x, mean, log_var)]
    weights, bias, x, mean, log_var = arrays
    return np.asarray(jax.jit(lambda: iwae.iwae_bound(log_weights, num_samples, chunk))())


def _exact_log_marginal(weights, bias, x):
    covariance = weights @ weights.T + NOISE_STD**2 * np.eye(DIM)
    return scipy.stats.multivariate_normal(bias, covariance).logpdf(x)


def test_iwae_equals_log_marginal_with_the_exact_posterior():
    weights, bias, x, mean, log_var = _linear_gaussian()
    exact = _exact_log_marginal(weights, bias, x)
    for num_samples, chunk in ((1, 1), (7, 3)):  # every weight equals p(x)
        np.testing.assert_allclose(
            _bound(weights, bias, x, mean, log_var, num_samples, chunk), exact, atol=2e-4
        )


def test_iwae_with_a_wrong_posterior_is_a_bound_that_tightens_with_k():
    weights, bias, x, mean, log_var = _linear_gaussian(1)
    exact = _exact_log_marginal(weights, bias, x)
    repeats = 100  # each example 100 times with other draws: expectations to within ~0.1

    def expected_bound(k):
        inputs = [np.repeat(a, repeats, axis=0) for a in (x, mean + 0.3, log_var + 0.5)]
        return _bound(weights, bias, *inputs, k, 64).reshape(len(x), repeats).mean(axis=1)

    bounds = [expected_bound(k) for k in (1, 4, 1024)]
    assert np.all(bounds[0] < exact - 0.5)  # the ELBO: below by KL(q || posterior)
    assert np.all(bounds[0] < bounds[1]) and np.all(bounds[1] < bounds[2])
    np.testing.assert_allclose(bounds[2], exact, atol=0.02)


def test_chunking_does_not_change_the_bound():
    weights, bias, x, mean, log_var = _linear_gaussian(2)
    whole = _bound(weights, bias, x, mean + 0.3, log_var, 10, 10)
    np.testing.assert_allclose(
        _bound(weights, bias, x, mean + 0.3, log_var, 10, 4), whole, rtol=1e-6
    )


@pytest.fixture(scope='module')
def trained_vae(data_dir, tmp_path_factory):
    config = tiny('quickstart', data_dir, num_steps=300, batch_size=32, eval_examples=64)
    config.train.update(log_every=300, eval_every=300, checkpoint_every=300, sample_every=300)
    config.lr = 3e-3
    workdir = tmp_path_factory.mktemp('vae')
    train.train_and_evaluate(config, workdir)
    run = runtime.prepare(config)
    return run, runtime.restore_latest(run, workdir)[0]


def test_iwae_on_a_trained_vae_is_above_the_elbo_and_grows_with_k(trained_vae):
    run, state = trained_vae
    elbo = runtime.evaluate_state(run, state)['elbo']
    bounds = [
        runtime.evaluate_state(run, state, iwae.iwae_eval_step(run.model.log_weights, k, 50))[
            'iwae'
        ]
        for k in (1, 10, 100)
    ]
    assert bounds[0] == pytest.approx(elbo, abs=0.02 * abs(elbo))  # k = 1: the ELBO itself
    assert elbo < bounds[1] < bounds[2]
