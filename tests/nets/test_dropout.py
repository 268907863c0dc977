"""Dropout masks: Bernoulli keep rates, independent halves of a random word, one draw per net."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_models import nets
from gen_models.nets import dropout


def test_keep_mask_rate_and_independence():
    """Keep rates match Bernoulli(p) (binomial 5-sigma bounds); halves of a word agree
    no more often than independent draws would."""
    n = 200_000
    for keep_rate in (0.7, 0.5, 0.05):
        mask = np.asarray(dropout.keep_mask(jax.random.key(3), (n,), keep_rate))
        assert abs(mask.mean() - keep_rate) < 5 * np.sqrt(keep_rate * (1 - keep_rate) / n)
        pairs = mask.reshape(-1, 2)
        both = np.mean(pairs[:, 0] & pairs[:, 1])
        assert abs(both - keep_rate**2) < 5 * np.sqrt(keep_rate**2 / (n / 2))
    odd = dropout.keep_mask(jax.random.key(3), (3, 5, 7), 0.7)
    assert odd.shape == (3, 5, 7) and odd.dtype == jnp.bool_


def test_dropout_masks_per_layer():
    shapes = [(4, 8, 8, 16), (4, 4, 4, 32), (3,)]
    masks = dropout.dropout_masks(jax.random.key(0), shapes, 0.7)
    assert [m.shape for m in masks] == shapes and all(m.dtype == jnp.bool_ for m in masks)
    again = dropout.dropout_masks(jax.random.key(0), shapes, 0.7)
    other = dropout.dropout_masks(jax.random.key(1), shapes, 0.7)
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
    masks = dropout.dropout_masks(key, [(2, 8, 8, 4), (2, 4, 4, 8)], 0.75)
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
