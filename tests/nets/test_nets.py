"""Shapes of every net at every supported resolution and channel count."""

import jax
import jax.numpy as jnp
import pytest

from gen_models import nets

SHAPES = [(28, 28, 1), (32, 32, 3), (64, 64, 1), (64, 64, 3), (28, 20, 1)]


@pytest.mark.parametrize(
    'shape,stages', [((28, 28, 1), 2), ((32, 32, 3), 3), ((64, 64, 3), 4), ((28, 20, 1), 2)]
)
def test_num_stages(shape, stages):
    assert nets.num_stages(shape) == stages


@pytest.mark.parametrize('shape', [(7, 7, 1), (6, 6, 1), (31, 32, 1), (32, 32)])
def test_check_image_shape_rejects_unusable_shapes(shape):
    with pytest.raises(ValueError, match='divisible by 2'):
        nets.check_image_shape(shape)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('batch_norm', [True, False])
def test_up_conv_stack_produces_images(shape, batch_norm):
    net = nets.UpConvStack(image_shape=shape, width=8, use_batch_norm=batch_norm)
    z = jnp.ones((3, 10))
    variables = net.init(jax.random.key(0), z, train=False)
    out, _ = net.apply(variables, z, train=True, mutable=['batch_stats'])
    assert out.shape == (3, *shape)
    assert jnp.all(jnp.abs(out) <= 1.0)
    assert ('batch_stats' in variables) == batch_norm


@pytest.mark.parametrize('shape', SHAPES)
def test_down_conv_stack_outputs(shape):
    net = nets.DownConvStack(outputs=5, width=8, dropout_rate=0.3)
    x = jnp.ones((2, *shape))
    variables = net.init(jax.random.key(0), x, train=False)
    out = net.apply(variables, x, train=True, rngs={'dropout': jax.random.key(1)})
    assert out.shape == (2, 5)


def test_dropout_only_in_training():
    net = nets.DownConvStack(outputs=1, width=8, dropout_rate=0.5)
    x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
    variables = net.init(jax.random.key(0), x, train=False)
    assert jnp.array_equal(
        net.apply(variables, x, train=False), net.apply(variables, x, train=False)
    )
    train_a = net.apply(variables, x, train=True, rngs={'dropout': jax.random.key(1)})
    train_b = net.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)})
    assert not jnp.array_equal(train_a, train_b)


@pytest.mark.parametrize('shape', SHAPES)
def test_mlp_reshapes_to_output(shape):
    net = nets.MLP(hidden=(16, 8), output_shape=shape, activation='tanh')
    z = jnp.ones((4, 3))
    out = net.apply(net.init(jax.random.key(0), z, train=False), z, train=False)
    assert out.shape == (4, *shape)
