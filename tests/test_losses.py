"""Losses against values computed another way (numpy formulas, Monte Carlo)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models import losses


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(0, 3, size=(2, 32)).astype(np.float32)


def test_discriminator_loss_is_negative_minmax_value(logits):
    real, fake = logits
    expected = -(np.log(_sigmoid(real)) + np.log(1 - _sigmoid(fake)))
    for kind in losses.GENERATOR_LOSSES:
        np.testing.assert_allclose(losses.discriminator_loss(real, fake, kind), expected, rtol=1e-5)


def test_hinge_and_wasserstein_losses(logits):
    real, fake = logits
    np.testing.assert_allclose(
        losses.discriminator_loss(real, fake, 'hinge'),
        np.maximum(0, 1 - real) + np.maximum(0, 1 + fake),
        rtol=1e-6,
    )
    np.testing.assert_allclose(losses.discriminator_loss(real, fake, 'wasserstein'), fake - real)
    for kind in ('hinge', 'wasserstein'):
        np.testing.assert_allclose(losses.generator_loss(fake, kind), -fake)
    with pytest.raises(ValueError, match='wasserstein'):
        losses.discriminator_loss(real, fake, 'lsgan')


def test_generator_losses(logits):
    fake = logits[1]
    np.testing.assert_allclose(
        losses.generator_loss(fake, 'minimax'), np.log(1 - _sigmoid(fake)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        losses.generator_loss(fake, 'non_saturating'), -np.log(_sigmoid(fake)), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match='minimax'):
        losses.generator_loss(fake, 'lsgan')


def test_generator_losses_share_the_fixed_point_gradient_sign(logits):
    # Every objective pushes D(G(z)) up: its gradient w.r.t. the logit is negative.
    for kind in losses.GAN_LOSSES:
        grads = jax.grad(lambda logit, kind=kind: jnp.sum(losses.generator_loss(logit, kind)))(
            jnp.asarray(logits[1])
        )
        assert np.all(np.asarray(grads) < 0)


def _finite_difference_gradients(f, x, h=1e-3):
    """Central differences of a scalar numpy function of x, per coordinate (float64)."""
    grads = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grads[index] = (f(x + step) - f(x - step)) / (2 * h)
    return grads


def _critic(x, w):
    """A smooth per-example critic, sum(tanh(x w)), in numpy (float64)."""
    return np.tanh(x.reshape(len(x), -1) @ w).sum(-1)


def test_gradient_penalty_and_r1_match_finite_differences():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 2, 2, 1))
    w = rng.normal(size=(4, 5))
    numeric = np.stack(
        [
            _finite_difference_gradients(lambda xi, i=i: _critic(xi[None], w)[0], x[i])
            for i in range(len(x))
        ]
    )
    norms = np.sqrt((numeric.reshape(3, -1) ** 2).sum(-1))
    jax_grads = jax.grad(
        lambda v: jnp.sum(jnp.tanh(v.reshape(3, -1) @ jnp.asarray(w, jnp.float32)))
    )(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(losses.gradient_penalty(jax_grads), (norms - 1) ** 2, rtol=1e-4)
    np.testing.assert_allclose(losses.squared_gradient_norm(jax_grads), norms**2, rtol=1e-4)


def test_bernoulli_log_likelihood_matches_binary_cross_entropy():
    rng = np.random.default_rng(1)
    logit = rng.normal(0, 2, size=(3, 4, 4, 1)).astype(np.float32)
    x = rng.uniform(size=logit.shape).astype(np.float32)
    p = _sigmoid(logit.astype(np.float64))
    expected = (x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(3, -1).sum(-1)
    np.testing.assert_allclose(losses.bernoulli_log_likelihood(logit, x), expected, rtol=1e-5)


def test_gaussian_log_likelihood_matches_density():
    rng = np.random.default_rng(2)
    mean = rng.normal(size=(2, 5)).astype(np.float32)
    x = rng.normal(size=(2, 5)).astype(np.float32)
    std = 0.7
    density = np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(
        losses.gaussian_log_likelihood(mean, np.log(np.float32(std)), x),
        np.log(density).sum(-1),
        rtol=1e-5,
    )


def test_kl_matches_monte_carlo_estimate():
    mean = np.array([[0.5, -1.0, 2.0]], np.float32)
    log_var = np.array([[-1.0, 0.3, 0.0]], np.float32)
    std = np.exp(0.5 * log_var)
    z = mean + std * np.random.default_rng(3).normal(size=(400_000, 3))
    log_q = (-0.5 * ((z - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)
    log_p = (-0.5 * z**2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    monte_carlo = np.mean(log_q - log_p)
    analytic = float(losses.kl_to_standard_normal(mean, log_var)[0])
    assert analytic == pytest.approx(monte_carlo, abs=0.01)
    assert float(losses.kl_to_standard_normal(np.zeros((1, 3)), np.zeros((1, 3)))[0]) == 0.0
