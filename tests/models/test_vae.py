"""VAE switches against independent computations: the IWAE objective in numpy, KL warm-up in
the train step, the discretised-logistic VAE's bits/dim, and conditional sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from configs import default
from gen_models import data, parallel, schema
from gen_models.config import ConfigError
from gen_models.models import vae

IMAGE_SHAPE = (6, 6, 1)
LATENT = 3


def _config(**model):
    config = default.get_config()
    config.model.update({'net': 'mlp', 'hidden': (16,), 'activation': 'tanh', 'latent_dim': LATENT})
    config.model.update(model)
    return config


def _info(num_classes: int = 0) -> data.DatasetInfo:
    return data.DatasetInfo(IMAGE_SHAPE, num_classes, num_train=100, num_eval=100)


def _batch(num: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        'image': rng.integers(0, 256, size=(num, *IMAGE_SHAPE), dtype=np.uint8),
        'label': rng.integers(0, 3, size=num).astype(np.int32),
        'mask': np.ones(num, np.float32),
    }


def _mlp(params, inputs):
    """The tanh MLP in float64 numpy: Dense_0 -> tanh -> Dense_1."""
    weights = {k: {n: np.asarray(v, np.float64) for n, v in p.items()} for k, p in params.items()}
    hidden = np.tanh(inputs @ weights['Dense_0']['kernel'] + weights['Dense_0']['bias'])
    return hidden @ weights['Dense_1']['kernel'] + weights['Dense_1']['bias']


def _numpy_log_weights(params, images, rng, num_samples):
    """(B, k) log p(x|z_s) + log p(z_s) - log q(z_s|x) of a Bernoulli MLP VAE, from the
    parameters alone; noise eps_s of example i from fold_in(fold_in(z_rng, i), s)."""
    _, z_rng = jax.random.split(rng)
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    mean, log_var = np.split(_mlp(params['encoder'], x), 2, axis=-1)
    fold = jax.vmap(jax.random.fold_in, in_axes=(None, 0))
    keys = jax.vmap(fold, in_axes=(0, None))(
        fold(z_rng, jnp.arange(len(x))), jnp.arange(num_samples)
    )
    eps = np.asarray(
        jax.vmap(jax.vmap(lambda k: jax.random.normal(k, (LATENT,))))(keys), np.float64
    )
    z = mean[:, None] + np.exp(0.5 * log_var[:, None]) * eps
    logits = _mlp(params['decoder']['net'], z)
    log_lik = (x[:, None] * logits - np.logaddexp(0, logits)).sum(-1)
    log_normal = -0.5 * np.log(2 * np.pi)
    log_prior = (-0.5 * z**2 + log_normal).sum(-1)
    log_q = (-0.5 * eps**2 + log_normal - 0.5 * log_var[:, None]).sum(-1)
    return log_lik + log_prior - log_q


def test_iwae_objective_equals_numpy_logsumexp_and_bounds_the_elbo():
    k = 5
    model = vae.build(_config(num_importance_samples=k), _info())
    mesh = parallel.make_mesh()
    batch = _batch()
    state = model.init(jax.random.key(0), batch)
    rng = jax.random.key(7)
    log_w = _numpy_log_weights(state.params, batch['image'], rng, k)
    expected = scipy.special.logsumexp(log_w, axis=1) - np.log(k)

    sums = parallel.eval_step(model.eval_step, mesh)(state, parallel.shard_batch(batch, mesh), rng)
    assert float(sums['iwae_k']) == pytest.approx(expected.sum(), rel=1e-5)
    # The train step (key fold_in(base, step 0)) optimises the same bound: loss = -its mean.
    base_rng = jax.random.key(11)
    train_log_w = _numpy_log_weights(
        state.params, batch['image'], jax.random.fold_in(base_rng, 0), k
    )
    _, metrics = parallel.train_step(model.train_step, mesh)(
        state, parallel.shard_batch(batch, mesh), base_rng
    )
    train_bound = scipy.special.logsumexp(train_log_w, axis=1) - np.log(k)
    assert float(metrics['loss']) == pytest.approx(-train_bound.mean(), rel=1e-5)
    assert float(metrics['iwae_k']) == pytest.approx(train_bound.mean(), rel=1e-5)
    # Jensen: the k-sample bound is >= the ELBO estimate from the same samples.
    assert np.all(expected >= log_w.mean(axis=1))
    assert float(metrics['iwae_k']) >= float(metrics['elbo'])
    assert float(metrics['elbo']) == pytest.approx(train_log_w.mean(), rel=1e-5)


def test_log_weights_of_the_eval_match_numpy():
    model = vae.build(_config(), _info())
    mesh = parallel.make_mesh()
    batch = _batch(seed=1)
    state = model.init(jax.random.key(1), batch)
    rng = jax.random.key(3)
    log_weights = jax.jit(
        jax.shard_map(
            lambda s, b, r: model.log_weights(s, b, r, 2, 3),
            mesh=mesh,
            in_specs=(parallel.REPLICATED, parallel.SPLIT, parallel.REPLICATED),
            out_specs=parallel.SPLIT,
        )
    )(state, parallel.shard_batch(batch, mesh), rng)
    expected = _numpy_log_weights(state.params, batch['image'], rng, 5)[:, 2:]
    np.testing.assert_allclose(log_weights, expected, rtol=1e-5)


def test_kl_warmup_weights_the_kl_by_the_step():
    warmup = 4
    model = vae.build(_config(kl_warmup_steps=warmup, beta=2.0), _info())
    mesh = parallel.make_mesh()
    batch = parallel.shard_batch(_batch(), mesh)
    state = model.init(jax.random.key(0), _batch())
    step = parallel.train_step(model.train_step, mesh)
    weights = []
    for _ in range(6):
        state, metrics = step(state, batch, jax.random.key(1))
        weights.append(float(metrics['kl_weight']))
        # The loss is -(log-likelihood - weight * KL) at the weight of this step.
        expected_loss = -(metrics['log_likelihood'] - metrics['kl_weight'] * metrics['kl'])
        assert float(metrics['loss']) == pytest.approx(float(expected_loss), rel=1e-5)
    np.testing.assert_allclose(weights, [0.0, 0.5, 1.0, 1.5, 2.0, 2.0])


def test_logistic_vae_reports_bits_per_dim_of_its_elbo():
    config = _config(likelihood='logistic', learn_decoder_std=True)
    model = vae.build(config, _info())
    mesh = parallel.make_mesh()
    batch = _batch()
    state = model.init(jax.random.key(0), batch)
    assert state.params['decoder']['log_std'].shape == (IMAGE_SHAPE[-1],)
    sums = parallel.eval_step(model.eval_step, mesh)(
        state, parallel.shard_batch(batch, mesh), jax.random.key(2)
    )
    dims = np.prod(IMAGE_SHAPE)
    assert float(sums['bits_per_dim']) == pytest.approx(
        -float(sums['elbo']) / (dims * np.log(2)), rel=1e-5
    )
    # Unlike a density, a probability mass is at most 1: the ELBO is <= 0 nats.
    assert float(sums['log_likelihood']) < 0
    step = parallel.train_step(model.train_step, mesh)
    new_state, metrics = step(state, parallel.shard_batch(batch, mesh), jax.random.key(1))
    assert np.isfinite(float(metrics['loss']))
    assert not np.allclose(new_state.params['decoder']['log_std'], np.log(0.1))


def test_conditional_conv_vae_shapes_and_label_dependence():
    num_classes = 3
    config = _config(conditional=True, net='conv', width=4)
    shape = (8, 8, 1)
    model = vae.build(config, data.DatasetInfo(shape, num_classes, 100, 100))
    assert model.num_classes == num_classes
    batch = _batch(seed=2)
    batch['image'] = np.zeros((4, *shape), np.uint8)
    state = model.init(jax.random.key(0), batch)
    rng = jax.random.key(5)
    generate = jax.jit(model.generate, static_argnums=2)
    labels = jnp.array([0, 1, 2, 0, 1], jnp.int32)
    images = generate(state, rng, 5, labels)
    assert images.shape == (5, *shape)
    # Image i decodes the noise of index i: with its label kept it is the same image, with
    # another label another one.
    other = generate(state, rng, 5, jnp.array([0, 2, 2, 1, 1], jnp.int32))
    same = np.asarray(labels == jnp.array([0, 2, 2, 1, 1]))
    np.testing.assert_allclose(other[same], images[same], atol=1e-6)
    assert not np.any(np.all(np.isclose(other[~same], images[~same]), axis=(1, 2, 3)))
    assert generate(state, rng, 5, None).shape == (5, *shape)  # labels drawn from the key
    z = jnp.zeros((3, LATENT))
    assert jax.jit(model.decode)(state, z, jnp.arange(3)).shape == (3, *shape)
    recon = jax.jit(model.reconstruct)(state, batch['image'], rng, batch['label'])
    assert recon.shape == batch['image'].shape
    with pytest.raises(ValueError, match='labels'):
        model.reconstruct(state, batch['image'], rng)


@pytest.mark.parametrize(
    'key,value,allowed',
    [
        ('model.likelihood', 'poisson', "'logistic'"),
        ('model.kl_warmup_steps', -1, '>= 0'),
        ('model.num_importance_samples', 0, '>= 1'),
        ('model.num_importance_samples', 2.0, 'type int'),
    ],
)
def test_bad_vae_keys_are_config_errors(key, value, allowed):
    config = default.get_config()
    parent, leaf = key.split('.')
    with config[parent].ignore_type():
        config[parent][leaf] = value
    with pytest.raises(ConfigError, match=f'config.{key}=.*{allowed}'):
        schema.validate(config)


def test_per_pixel_decoder_std_comes_from_the_decoder_net():
    config = _config(likelihood='gaussian', decoder_std_per_pixel=True)
    schema.validate(config)
    model = vae.build(config, _info())
    batch = _batch()
    state = model.init(jax.random.key(0), batch)
    decoder = state.params['decoder']
    assert 'log_std' not in decoder  # no shared parameter: one scale per pixel
    z = np.random.default_rng(0).normal(size=(2, LATENT))
    raw = _mlp(decoder['net'], z).reshape(2, *IMAGE_SHAPE[:-1], 2)
    mean_logits, log_std = raw[..., :1], raw[..., 1:] + np.log(config.model.decoder_std)
    x = batch['image'][:2].astype(np.float64) / 255
    expected = scipy.stats.norm.logpdf(x, scipy.special.expit(mean_logits), np.exp(log_std))
    decoded = vae.Decoder(
        net=vae.make_nets(config.model, IMAGE_SHAPE)[1],
        initial_log_std=float(np.log(config.model.decoder_std)),
        learn_log_std=False,
        per_pixel_log_std=True,
    ).apply({'params': decoder}, jnp.asarray(z, jnp.float32), train=False)
    np.testing.assert_allclose(decoded[0], mean_logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(decoded[1], log_std, rtol=1e-4, atol=1e-5)
    log_lik = vae.losses.gaussian_log_likelihood(
        jax.nn.sigmoid(decoded[0]), decoded[1], jnp.asarray(x, jnp.float32)
    )
    np.testing.assert_allclose(log_lik, expected.reshape(2, -1).sum(-1), rtol=1e-4)
    with pytest.raises(ConfigError, match='decoder_std_per_pixel'):
        schema.validate(_config(decoder_std_per_pixel=True))  # Bernoulli has no scale
