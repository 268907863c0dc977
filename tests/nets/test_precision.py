"""Mixed precision: nets compute in bfloat16, their variables and outputs stay float32."""

from __future__ import annotations

import collections
import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from jax.extend import core as jax_core

from gen_models import data, parallel
from gen_models.models import build_model
from gen_models.nets import precision


class DenseNorm(nn.Module):
    """Dense -> batch norm: a matmul to check against numpy and statistics to keep f32."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return nn.BatchNorm(use_running_average=not train, momentum=0.5)(nn.Dense(3)(x))


def _bf16(x) -> np.ndarray:
    """numpy float32 of x rounded to bfloat16."""
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def _setup():
    module = DenseNorm()
    x = jax.random.normal(jax.random.key(0), (6, 5))
    variables = module.init(jax.random.key(1), x, train=False)
    return module, x, variables


def test_float32_is_the_module_itself():
    module = DenseNorm()
    assert precision.with_compute_dtype(module, 'float32') is module
    assert isinstance(precision.with_compute_dtype(module, 'bfloat16'), precision.MixedPrecision)


def test_cast_floating_leaves_labels_keys_and_flags_alone():
    tree = (jnp.ones(2), np.zeros(2, np.float64), jnp.arange(3), jax.random.key(0), True, 0.5)
    cast = precision.cast_floating(tree, jnp.bfloat16)
    assert [getattr(x, 'dtype', None) for x in cast[:3]] == [jnp.bfloat16] * 2 + [jnp.int32]
    assert cast[3] is tree[3] and cast[4] is True and cast[5] == 0.5


def test_apply_computes_in_bfloat16_and_returns_float32():
    module, x, variables = _setup()
    mixed = precision.MixedPrecision(module, jnp.bfloat16)
    assert jax.tree.map(jnp.shape, mixed.init(jax.random.key(1), x, train=False)) == jax.tree.map(
        jnp.shape, variables
    )
    out, updates = mixed.apply(variables, x, train=True, mutable=['batch_stats'])
    assert out.dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}

    # numpy: the matmul of bfloat16-rounded inputs and weights, batch statistics of its
    # (bfloat16-rounded) output, the normalised result rounded to bfloat16.
    dense, norm = variables['params']['Dense_0'], variables['params']['BatchNorm_0']
    h = _bf16(_bf16(_bf16(x) @ _bf16(dense['kernel'])) + _bf16(dense['bias']))
    mean, var = h.mean(0), h.var(0)
    expected = (h - mean) / np.sqrt(var + 1e-5) * _bf16(norm['scale']) + _bf16(norm['bias'])
    np.testing.assert_allclose(out, expected, rtol=2e-2, atol=2e-2)
    stats = variables['batch_stats']['BatchNorm_0']
    np.testing.assert_allclose(
        updates['batch_stats']['BatchNorm_0']['mean'], 0.5 * stats['mean'] + 0.5 * mean, atol=1e-2
    )
    assert np.max(np.abs(out - module.apply(variables, x, train=True, mutable=True)[0])) > 0


def test_gradients_reach_the_float32_parameters_as_float32():
    module, x, variables = _setup()
    mixed = precision.MixedPrecision(module, jnp.bfloat16)

    def loss(params, net):
        out = net.apply({**variables, 'params': params}, x, train=False)
        return jnp.sum(out**2)

    grads = jax.grad(loss)(variables['params'], mixed)
    reference = jax.grad(loss)(variables['params'], module)
    assert {leaf.dtype for leaf in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(got, want, rtol=5e-2, atol=5e-2 * np.abs(want).max())


# One config per family (and the nets with their own layers: spectral norm, projection D,
# gradient penalty, MLPs, the unpaired hybrid, FactorVAE's discriminator).
CONFIGS = (
    'dcgan_mnist',
    'dcgan_mnist:wgan_gp',
    'cgan_mnist',
    'sngan_cifar10',
    'vae_mnist',
    'vae_mlp_mnist',
    'autoencoder_mnist',
    'classifier:mnist',
    'vaegan_mnist',
    'hybrid_shapes',
    'hybrid_shapes:unpaired',
    'disentanglement:factor_vae',
    'pix2pix_mnist',
    'cyclegan_mnist',
)


def _products(jaxpr, found: collections.Counter) -> None:
    """Counts (primitive, operand dtypes) of the convolutions and matrix products in a
    jaxpr and every jaxpr nested in it; matrix-vector products (spectral norm's power
    iteration, in its float32 statistics) are left out."""
    for eqn in jaxpr.eqns:
        shapes = [v.aval.shape for v in eqn.invars]
        vector = any(1 in shape for shape in shapes)
        if eqn.primitive.name == 'conv_general_dilated' or (
            eqn.primitive.name == 'dot_general' and not vector
        ):
            found[eqn.primitive.name, tuple(str(v.aval.dtype) for v in eqn.invars)] += 1
        for param in eqn.params.values():
            for inner in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(inner, jax_core.ClosedJaxpr):
                    _products(inner.jaxpr, found)
                elif isinstance(inner, jax_core.Jaxpr):
                    _products(inner, found)


def _step_and_inputs(name: str, compute_dtype: str):
    module, _, variant = name.partition(':')
    config = importlib.import_module(f'configs.{module}').get_config(variant or None)
    for key, value in (('width', 8), ('latent_dim', 4)):
        if key in config.model:
            config.model[key] = value
    config.train.compute_dtype = compute_dtype
    side, channels = (64, 1) if module == 'disentanglement' else (32, 3 if 'cifar' in module else 1)
    shape = (side, side, channels)
    info = data.DatasetInfo(shape, num_classes=10, num_train=20, num_eval=20)
    model = build_model(config, info)
    batch = {'image': np.zeros((20, *shape), np.uint8), 'label': np.zeros((20,), np.int32)}
    state = jax.eval_shape(model.init, jax.random.key(0), batch)
    mesh = parallel.make_mesh(jax.devices()[:1])
    step = parallel.train_step(model.train_step, mesh, 'shard_map')
    return step, (state, parallel.shard_batch(batch, mesh), jax.random.key(1))


@pytest.mark.parametrize('name', CONFIGS)
def test_every_family_trains_in_bfloat16_with_float32_state(name):
    step, inputs = _step_and_inputs(name, 'bfloat16')
    found = collections.Counter()
    _products(jax.make_jaxpr(step)(*inputs).jaxpr, found)
    assert found and all(dtypes == ('bfloat16', 'bfloat16') for _, dtypes in found), found
    state, metrics = jax.eval_shape(step, *inputs)
    assert jax.tree.map(lambda x: x.dtype, state) == jax.tree.map(lambda x: x.dtype, inputs[0])
    assert {x.dtype for x in jax.tree.leaves(metrics)} == {jnp.dtype(jnp.float32)}
