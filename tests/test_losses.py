"""Losses against values computed another way (numpy formulas, Monte Carlo)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

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


def test_least_squares_losses_are_the_mean_squared_errors_to_their_targets(logits):
    real, fake = logits
    expected = 0.5 * (np.square(real - 1) + np.square(fake - 0))  # D: real -> 1, fake -> 0
    np.testing.assert_allclose(
        losses.discriminator_loss(real, fake, 'least_squares'), expected, rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.generator_loss(fake, 'least_squares'), np.square(fake - 1), rtol=1e-6
    )


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
    # Every objective pushes D(G(z)) up: its gradient w.r.t. the logit is negative; least
    # squares pulls it to its target 1 (from above too).
    fake = jnp.asarray(logits[1])
    for kind in losses.GAN_LOSSES:
        grads = jax.grad(lambda logit, kind=kind: jnp.sum(losses.generator_loss(logit, kind)))(fake)
        expected = fake < 1 if kind == 'least_squares' else np.ones(fake.shape, bool)
        np.testing.assert_array_equal(np.asarray(grads) < 0, expected)


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


def _logistic_pixels():
    rng = np.random.default_rng(4)
    mean = rng.uniform(-0.1, 1.1, size=(2, 3, 3, 2)).astype(np.float32)
    log_scale = np.log(np.array([0.02, 0.3], np.float32))  # one scale per channel
    pixels = rng.integers(0, 256, size=mean.shape)
    pixels[0, 0, 0] = (0, 255)  # both edge bins
    return mean, log_scale, pixels


def test_discretized_logistic_matches_scipy_cdf_differences():
    mean, log_scale, pixels = _logistic_pixels()
    dist = scipy.stats.logistic(loc=mean.astype(np.float64), scale=np.exp(log_scale))
    upper = np.where(pixels == 255, np.inf, (pixels + 0.5) / 255)
    lower = np.where(pixels == 0, -np.inf, (pixels - 0.5) / 255)
    # F(upper) - F(lower), as survival-function differences above the mean (no cancellation).
    above = pixels / 255 > mean
    mass = np.where(above, dist.sf(lower) - dist.sf(upper), dist.cdf(upper) - dist.cdf(lower))
    expected = np.log(mass).reshape(2, -1).sum(-1)
    actual = losses.discretized_logistic_log_likelihood(mean, log_scale, pixels / 255.0)
    np.testing.assert_allclose(actual, expected, rtol=1e-5)


def test_discretized_logistic_bins_of_a_pixel_sum_to_one():
    values = np.arange(256, dtype=np.float32)[:, None] / 255  # every value as its own "image"
    for mean, scale in ((0.3, 0.05), (0.0, 0.001), (1.2, 2.0), (0.37, 1e-4)):
        log_probs = losses.discretized_logistic_log_likelihood(
            np.float32(mean), np.log(np.float32(scale)), values
        )
        assert np.all(np.isfinite(log_probs))
        assert float(jax.nn.logsumexp(log_probs)) == pytest.approx(0.0, abs=1e-5)


def test_discretized_logistic_gradients_are_finite_for_sharp_scales():
    mean, _, pixels = _logistic_pixels()
    grads = jax.grad(
        lambda m, s: jnp.sum(losses.discretized_logistic_log_likelihood(m, s, pixels / 255.0)),
        argnums=(0, 1),
    )(jnp.asarray(mean), jnp.log(jnp.array([1e-4, 10.0])))
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_bits_per_dim_of_uniform_8_bit_pixels_is_eight():
    log_lik = np.float32(-3 * 32 * 32 * np.log(256))
    assert float(losses.bits_per_dim(log_lik, 3 * 32 * 32)) == pytest.approx(8.0)


@pytest.mark.parametrize('step,expected', [(0, 0.0), (25, 0.5), (50, 1.0), (99, 1.0), (1000, 1.0)])
def test_kl_warmup_weight_ramps_linearly_to_beta(step, expected):
    beta = 2.0
    weight = jax.jit(losses.kl_weight, static_argnums=2)(jnp.int32(step), beta, 50)
    assert float(weight) == pytest.approx(beta * expected)
    assert float(losses.kl_weight(jnp.int32(step), beta, 0)) == beta  # warm-up off
