"""conv_transpose.ConvTranspose is a drop-in for flax.linen.ConvTranspose: same parameters,
same outputs, same input and kernel gradients (to 1e-5 of their scale)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models import nets
from gen_models.nets import UpConvStack, conv_transpose

# (input shape, features, kernel, stride, padding): the UpConvStack layers of 28, 32 and
# 64 px images (first and last stage), a 28x20 Frey face, and other paddings and strides.
CASES = [
    ((3, 7, 7, 16), 8, 4, 2, 'SAME'),
    ((3, 14, 14, 8), 1, 4, 2, 'SAME'),
    ((3, 4, 4, 32), 16, 4, 2, 'SAME'),
    ((3, 16, 16, 8), 3, 4, 2, 'SAME'),
    ((2, 32, 32, 4), 3, 4, 2, 'SAME'),
    ((3, 14, 10, 8), 1, 4, 2, 'SAME'),
    ((2, 5, 6, 3), 4, 3, 2, 'SAME'),
    ((2, 5, 5, 3), 2, 3, 2, 'VALID'),
    ((2, 4, 4, 3), 2, 2, 3, 'VALID'),
    ((2, 6, 6, 2), 3, 5, 3, 'SAME'),
    ((2, 5, 6, 3), 2, 3, 1, 'SAME'),
    ((2, 4, 5, 3), 2, 3, 2, ((1, 2), (0, 1))),
]


def _layers(features, kernel, stride, padding, use_bias=True):
    kwargs = dict(
        features=features,
        kernel_size=(kernel, kernel),
        strides=(stride, stride),
        padding=padding,
        use_bias=use_bias,
    )
    return nn.ConvTranspose(**kwargs), conv_transpose.ConvTranspose(**kwargs)


def _assert_close(actual, expected):
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected)))
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize('shape, features, kernel, stride, padding', CASES)
def test_same_parameters_outputs_and_gradients(shape, features, kernel, stride, padding):
    plain, fast = _layers(features, kernel, stride, padding)
    x = jax.random.normal(jax.random.key(0), shape)
    variables = plain.init(jax.random.key(1), x)
    fast_variables = fast.init(jax.random.key(1), x)
    assert jax.tree.structure(fast_variables) == jax.tree.structure(variables)
    jax.tree.map(np.testing.assert_array_equal, fast_variables, variables)
    variables = jax.tree.map(  # a non-zero bias, so its gradient path is exercised too
        lambda v: v + 0.1, variables
    )

    def loss(layer):
        # A non-linear loss of every output, so each output gets its own cotangent.
        return jax.jit(
            jax.value_and_grad(
                lambda v, x: jnp.sum(jnp.sin(3.0 * layer.apply(v, x))), argnums=(0, 1)
            )
        )

    _assert_close(fast.apply(variables, x), plain.apply(variables, x))
    (fast_loss, fast_grads), (loss_value, grads) = (
        loss(fast)(variables, x),
        loss(plain)(variables, x),
    )
    np.testing.assert_allclose(fast_loss, loss_value, rtol=1e-5)
    (fast_param_grads, fast_input_grad), (param_grads, input_grad) = fast_grads, grads
    _assert_close(fast_input_grad, input_grad)
    _assert_close(fast_param_grads['params']['kernel'], param_grads['params']['kernel'])
    _assert_close(fast_param_grads['params']['bias'], param_grads['params']['bias'])


def test_second_order_gradients_match():
    """The custom VJP is itself differentiable (e.g. for gradient penalties)."""
    plain, fast = _layers(4, 4, 2, 'SAME', use_bias=False)
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 3))
    variables = plain.init(jax.random.key(1), x)

    def grad_norm(layer):
        def f(v):
            g = jax.grad(lambda x: jnp.sum(jnp.tanh(layer.apply(v, x))))(x)
            return jnp.sum(g**2)

        return jax.grad(f)(variables)['params']['kernel']

    _assert_close(grad_norm(fast), grad_norm(plain))


@pytest.mark.parametrize('image_shape', [(28, 28, 1), (32, 32, 3), (64, 64, 1), (28, 20, 1)])
def test_up_conv_stack_uses_fast_layers_under_flax_names(image_shape):
    """UpConvStack's transposed convolutions are conv_transpose.ConvTranspose, named and
    shaped as nn.ConvTranspose's were (ConvTranspose_i, kernel (4, 4, in, out)), so
    checkpoints restore."""
    net = UpConvStack(image_shape=image_shape, width=8)
    z = jnp.zeros((2, 5))
    variables = net.init(jax.random.key(0), z, train=False)
    called = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == '__call__':
            called.append((context.module.name, type(context.module)))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        out = net.apply(variables, z, train=False)
    assert out.shape == (2, *image_shape)
    transposed = [(name, kind) for name, kind in called if (name or '').startswith('ConvTranspose')]
    stages = nets.num_stages(image_shape)
    assert transposed == [
        (f'ConvTranspose_{i}', conv_transpose.ConvTranspose) for i in range(stages)
    ]
    channels = [8 * 2 ** (stages - 1 - i) for i in range(stages)] + [image_shape[2]]
    for i in range(stages):
        kernel = variables['params'][f'ConvTranspose_{i}']['kernel']
        assert kernel.shape == (4, 4, channels[i], channels[i + 1])


@pytest.mark.parametrize(
    'kwargs',
    [
        {'kernel_dilation': (2, 2)},
        {'transpose_kernel': True},
        {'padding': 'CIRCULAR'},
        {'mask': jnp.ones((4, 4, 3, 2))},
    ],
)
def test_unsupported_options_raise(kwargs):
    layer = conv_transpose.ConvTranspose(2, (4, 4), strides=(2, 2), **kwargs)
    with pytest.raises(NotImplementedError):
        layer.init(jax.random.key(0), jnp.zeros((1, 5, 5, 3)))
