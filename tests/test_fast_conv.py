"""fast_conv.ConvTranspose is a drop-in for flax.linen.ConvTranspose: same parameters,
same outputs, same input and kernel gradients (to 1e-5 of their scale)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models import nets
from gen_models.nets import UpConvStack, fast_conv

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
    return nn.ConvTranspose(**kwargs), fast_conv.ConvTranspose(**kwargs)


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
    """UpConvStack's transposed convolutions are fast_conv.ConvTranspose, named and shaped as
    nn.ConvTranspose's were (ConvTranspose_i, kernel (4, 4, in, out)), so checkpoints restore."""
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
    assert transposed == [(f'ConvTranspose_{i}', fast_conv.ConvTranspose) for i in range(stages)]
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
    layer = fast_conv.ConvTranspose(2, (4, 4), strides=(2, 2), **kwargs)
    with pytest.raises(NotImplementedError):
        layer.init(jax.random.key(0), jnp.zeros((1, 5, 5, 3)))


def test_keep_mask_rate_and_independence():
    """Keep rates match Bernoulli(p) (binomial 5-sigma bounds); halves of a word agree
    no more often than independent draws would."""
    n = 200_000
    for keep_rate in (0.7, 0.5, 0.05):
        mask = np.asarray(fast_conv.keep_mask(jax.random.key(3), (n,), keep_rate))
        assert abs(mask.mean() - keep_rate) < 5 * np.sqrt(keep_rate * (1 - keep_rate) / n)
        pairs = mask.reshape(-1, 2)
        both = np.mean(pairs[:, 0] & pairs[:, 1])
        assert abs(both - keep_rate**2) < 5 * np.sqrt(keep_rate**2 / (n / 2))
    odd = fast_conv.keep_mask(jax.random.key(3), (3, 5, 7), 0.7)
    assert odd.shape == (3, 5, 7) and odd.dtype == jnp.bool_


def test_dropout_masks_per_layer():
    shapes = [(4, 8, 8, 16), (4, 4, 4, 32), (3,)]
    masks = fast_conv.dropout_masks(jax.random.key(0), shapes, 0.7)
    assert [m.shape for m in masks] == shapes and all(m.dtype == jnp.bool_ for m in masks)
    again = fast_conv.dropout_masks(jax.random.key(0), shapes, 0.7)
    other = fast_conv.dropout_masks(jax.random.key(1), shapes, 0.7)
    for mask, same, different in zip(masks[:2], again, other):
        np.testing.assert_array_equal(mask, same)
        assert not np.array_equal(mask, different)
        assert abs(float(mask.mean()) - 0.7) < 5 * np.sqrt(0.21 / mask.size)
    assert not np.array_equal(masks[0][:, :4, :4, :].reshape(-1)[:512], masks[1].reshape(-1)[:512])


def test_down_conv_stack_drops_out_with_dropout_masks():
    """DownConvStack in training == the same layers computed by hand, each stage's
    activations times its mask from dropout_masks (one draw from the 'dropout' rng) / keep."""
    net = nets.DownConvStack(outputs=2, width=4, dropout_rate=0.25)
    x = jax.random.normal(jax.random.key(0), (2, 16, 16, 1))
    variables = net.init(jax.random.key(1), x, train=False)
    rngs = {'dropout': jax.random.key(2)}
    key = net.bind(variables, rngs=rngs).make_rng('dropout')
    masks = fast_conv.dropout_masks(key, [(2, 8, 8, 4), (2, 4, 4, 8)], 0.75)
    params = variables['params']
    h = x
    for stage, mask in enumerate(masks):
        conv = nn.Conv(4 * 2**stage, (4, 4), strides=(2, 2), padding='SAME')
        h = nn.leaky_relu(conv.apply({'params': params[f'Conv_{stage}']}, h), 0.2)
        h = jnp.where(mask, h / 0.75, 0.0)
    expected = nn.Dense(2).apply({'params': params['Dense_0']}, h.reshape(2, -1))
    np.testing.assert_allclose(
        net.apply(variables, x, train=True, rngs=rngs), expected, rtol=1e-5, atol=1e-6
    )


def _threefry_numpy(key1, key2, x1, x2):
    """Threefry-2x32-20 in numpy uint32 arithmetic (Salmon et al. 2011, Random123)."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    keys = (key1, key2, key1 ^ key2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for block in range(5):
        for r in rotations[block % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r)))
        x1 = x1 + keys[(block + 1) % 3]
        x2 = x2 + keys[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


def test_threefry_lowering_computes_the_threefry_hash():
    """JAX's threefry primitive, lowered on CPU by fast_conv, gives the Random123 known
    answers and a numpy Threefry's hashes, so every jax.random draw keeps its value."""
    from jax.extend.random import threefry2x32_p

    hash_ = jax.jit(lambda *args: threefry2x32_p.bind(*args))
    known = [
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF,) * 2, (0xFFFFFFFF,) * 2, (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ]
    for key, count, expected in known:
        args = [np.array([v], np.uint32) for v in (*key, *count)]
        assert [int(v[0]) for v in hash_(*args)] == list(expected)
    words = np.random.default_rng(0).integers(0, 2**32, (4, 3, 1001), dtype=np.uint32)
    got = hash_(*words)
    for actual, expected in zip(got, _threefry_numpy(*words)):
        np.testing.assert_array_equal(actual, expected)
