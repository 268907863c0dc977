"""GAN nets: spectral norm against the SVD, per-example dropout keys, conditional batch norm
against its formula, the projection term, ResNet shapes at 28, 32 and 64 px, the maxout
discriminator and MLP generator against numpy."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models import nets
from gen_models.nets.conditional import ConditionalBatchNorm
from gen_models.nets.layers import spectral


class _SpectralConv(nn.Module):
    @nn.compact
    def __call__(self, x, update_stats):
        return spectral(nn.Conv(6, (3, 3), use_bias=False), x, True, update_stats)


def test_spectral_norm_estimate_converges_to_the_largest_singular_value():
    net = _SpectralConv()
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 4))
    variables = net.init(jax.random.key(1), x, False)

    @jax.jit
    def iterate(stats):
        _, updates = net.apply(
            {**variables, 'batch_stats': stats}, x, True, mutable=['batch_stats']
        )
        return updates['batch_stats']

    stats = variables['batch_stats']
    for _ in range(200):
        stats = iterate(stats)
    kernel = np.asarray(variables['params']['Conv_0']['kernel'], np.float64)
    matrix = kernel.reshape(-1, kernel.shape[-1])  # (3*3*4, 6): how nn.SpectralNorm flattens
    largest = np.linalg.svd(matrix, compute_uv=False)[0]
    (sigma,) = [v for k, v in jax.tree_util.tree_leaves_with_path(stats) if 'sigma' in str(k)]
    assert float(sigma) == pytest.approx(largest, rel=1e-4)
    # The layer computes the conv with the kernel divided by that value.
    out = net.apply({**variables, 'batch_stats': stats}, x, False)
    expected = nn.Conv(6, (3, 3), use_bias=False).apply({'params': {'kernel': kernel / largest}}, x)
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-5)


def test_dropout_masks_from_example_keys_do_not_depend_on_the_batch_split():
    net = nets.DownConvStack(outputs=1, width=4, dropout_rate=0.5)
    x = jax.random.normal(jax.random.key(0), (6, 16, 16, 1))
    variables = net.init(jax.random.key(0), x, train=False)
    keys = jax.random.split(jax.random.key(1), 6)

    @jax.jit
    def apply(images, example_keys):
        return net.apply(variables, images, train=True, dropout_keys=example_keys)

    whole = apply(x, keys)
    halves = jnp.concatenate([apply(x[:3], keys[:3]), apply(x[3:], keys[3:])])
    np.testing.assert_allclose(whole, halves, rtol=1e-6)
    assert not np.allclose(whole, apply(x, keys[::-1]))  # the masks do follow the keys


def test_conditional_batch_norm_matches_its_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(8, 3, 3, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    layer = ConditionalBatchNorm(num_classes=3)
    variables = layer.init(jax.random.key(0), x, labels, train=False)
    gamma = rng.normal(size=(3, 4)).astype(np.float32)
    beta = rng.normal(size=(3, 4)).astype(np.float32)
    params = {'Embed_0': {'embedding': gamma}, 'Embed_1': {'embedding': beta}}
    out, _ = layer.apply(
        {**variables, 'params': params}, x, labels, train=True, mutable=['batch_stats']
    )
    x64 = x.astype(np.float64)
    normalised = (x64 - x64.mean((0, 1, 2))) / np.sqrt(x64.var((0, 1, 2)) + 1e-5)
    expected = normalised * gamma[labels][:, None, None] + beta[labels][:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_projection_discriminator_adds_the_class_embedding_inner_product():
    net = nets.DownConvStack(outputs=1, width=4, num_classes=3)
    x = jax.random.normal(jax.random.key(0), (3, 16, 16, 1))
    variables = net.init(jax.random.key(0), x, jnp.zeros(3, jnp.int32), train=False)
    labels = jnp.array([0, 1, 2])
    out = net.apply(variables, x, labels, train=False)
    unconditional = nets.DownConvStack(outputs=1, width=4).apply(
        {'params': {k: v for k, v in variables['params'].items() if k != 'class_embedding'}},
        x,
        train=False,
    )
    embedding = np.asarray(variables['params']['class_embedding']['kernel'])
    # Features phi(x): the flattened last conv stage, recomputed from the same parameters.
    h = x
    for stage in range(2):
        conv = variables['params'][f'Conv_{stage}']
        h = nn.Conv(conv['bias'].shape[0], (4, 4), strides=2).apply({'params': conv}, h)
        h = nn.leaky_relu(h, 0.2)
    h = np.asarray(h).reshape(3, -1)
    np.testing.assert_allclose(
        np.asarray(out - unconditional)[:, 0],
        (h * embedding[np.asarray(labels)]).sum(-1),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize('shape', [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_resnet_pair_shapes(shape):
    """Shapes by abstract evaluation (no compute): G makes images, D one logit per image."""
    generator = nets.ResNetGenerator(image_shape=shape, width=4, num_classes=10)
    discriminator = nets.ResNetDiscriminator(width=4, spectral_norm=True, num_classes=10)
    z, labels = jnp.ones((2, 8)), jnp.arange(2)

    def forward(key):
        g_vars = generator.init(key, z, labels, train=False)
        images, _ = generator.apply(g_vars, z, labels, train=True, mutable=['batch_stats'])
        d_vars = discriminator.init(key, images, labels, train=False)
        return images, discriminator.apply(d_vars, images, labels, train=False)

    images, logits = jax.eval_shape(forward, jax.random.key(0))
    assert images.shape == (2, *shape) and logits.shape == (2, 1)


def test_maxout_discriminator_matches_numpy():
    """Pixels read as [0, 1], each unit the max over its pieces; weights in +-init_range."""
    net = nets.MaxoutDiscriminator(hidden=(6, 4), pieces=3, init_range=0.05)
    x = jax.random.uniform(jax.random.key(0), (5, 4, 4, 1), minval=-1.0, maxval=1.0)
    params = net.init(jax.random.key(1), x, train=False)['params']
    h = (np.asarray(x, np.float64).reshape(5, -1) + 1) / 2
    for index, units in enumerate((6, 4)):
        layer = params[f'Dense_{index}']
        assert np.abs(layer['kernel']).max() <= 0.05 and np.abs(layer['kernel']).max() > 0.04
        h = (h @ layer['kernel'] + layer['bias']).reshape(5, units, 3).max(axis=-1)
    expected = h @ params['Dense_2']['kernel'] + params['Dense_2']['bias']
    np.testing.assert_allclose(net.apply({'params': params}, x, train=False), expected, rtol=1e-5)


def test_maxout_dropout_rates_and_example_keys():
    """Input and hidden dropout drop their own fractions (inverted: kept values are scaled
    up), and example i's masks come from its key alone."""
    sizes, rates = (4000, 3000), (0.2, 0.5)
    masks = nets.MaxoutDiscriminator._masks(jax.random.key(0), sizes, rates)
    for mask, size, rate in zip(masks, sizes, rates):
        assert mask.shape == (size,)
        assert float(jnp.mean(mask)) == pytest.approx(1 - rate, abs=0.03)
    net = nets.MaxoutDiscriminator(hidden=(8,), pieces=2, input_dropout=0.2, dropout_rate=0.5)
    x = jax.random.normal(jax.random.key(0), (6, 4, 4, 1))
    variables = net.init(jax.random.key(0), x, train=False)
    keys = jax.random.split(jax.random.key(1), 6)

    def apply(images, example_keys):
        return net.apply(variables, images, train=True, dropout_keys=example_keys)

    whole = apply(x, keys)
    halves = jnp.concatenate([apply(x[:3], keys[:3]), apply(x[3:], keys[3:])])
    np.testing.assert_allclose(whole, halves, rtol=1e-6)
    assert not np.allclose(whole, apply(x, keys[::-1]))


def test_mlp_generator_is_the_sigmoid_output_on_symmetric_pixels():
    net = nets.MLPGenerator(hidden=(16,), image_shape=(4, 4, 1), init_range=0.05)
    z = jax.random.normal(jax.random.key(0), (3, 5))
    params = net.init(jax.random.key(1), z, train=False)['params']
    layers = params['MLP_0']
    hidden = np.maximum(z @ layers['Dense_0']['kernel'] + layers['Dense_0']['bias'], 0)
    logits = hidden @ layers['Dense_1']['kernel'] + layers['Dense_1']['bias']
    expected = (2 / (1 + np.exp(-logits)) - 1).reshape(3, 4, 4, 1)
    actual = net.apply({'params': params}, z, train=False)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
