"""GAN variants train: each loss, regulariser and net (DCGAN, ResNet, maxout MLP) stays finite on
shapes, n_critic D updates per G update, the EMA generator follows its recurrence, a
conditional G follows its labels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cgan_mnist, dcgan_cifar10, dcgan_mnist, goodfellow_parzen, sngan_cifar10
from experiments import runtime
from gen_models import parallel, schema
from gen_models.config import ConfigError

STEPS = 3
VARIANTS = {
    'hinge_sn_ncritic_ema': {
        'model.gan_loss': 'hinge',
        'model.spectral_norm': True,
        'model.n_critic': 2,
        'model.ema_decay': 0.9,
    },
    'wasserstein_gp': {
        'model.gan_loss': 'wasserstein',
        'model.gradient_penalty': 10.0,
        'model.d_dropout': 0.0,
        'optim.schedule': 'linear',
    },
    'minimax_r1_conditional': {
        'model.gan_loss': 'minimax',
        'model.r1_gamma': 1.0,
        'model.conditional': True,
    },
    'mlp_maxout_sgd': {  # Goodfellow et al.'s nets and optimiser (configs/goodfellow_parzen.py)
        'model.net': 'mlp',
        'model.hidden': (8,),
        'model.d_hidden': (6,),
        'model.maxout_pieces': 3,
        'model.d_input_dropout': 0.2,
        'model.d_dropout': 0.5,
        'model.g_init_range': 0.05,
        'model.d_init_range': 0.005,
        'optim.name': 'sgd',
        'optim.b1': 0.5,
        'optim.final_momentum': 0.7,
        'optim.momentum_ramp_steps': 2,
        'optim.schedule': 'exponential',
        'optim.decay_rate': 0.9,
        'model.ema_decay': 0.9,  # an EMA of a generator without batch statistics
    },
    'resnet_conditional_sn': {
        'model.net': 'resnet',
        'model.d_dropout': 0.0,
        'model.spectral_norm': True,
        'model.conditional': True,
    },
}


def tiny(data_dir: str, overrides: dict):
    """A GAN on 16 px shapes with 4-channel nets and batch 8."""
    config = dcgan_mnist.get_config()
    config.update_from_flattened_dict(
        {
            'dataset.name': 'shapes',
            'dataset.data_dir': data_dir,
            'dataset.shapes_resolution': 16,
            'model.width': 4,
            'model.latent_dim': 3,
            'train.batch_size': 8,
            'train.num_steps': 10,
            **overrides,
        }
    )
    return config


@pytest.fixture(scope='module')
def runs(data_dir):
    """Per variant: its run and the host copies of the state after steps 0 .. STEPS, metrics
    of each step, and one eval batch's sums."""
    results = {}
    rng = np.random.default_rng(0)
    for name, overrides in VARIANTS.items():
        run = runtime.prepare(tiny(data_dir, overrides))
        state = runtime.initial_state(run)
        states, metrics = [jax.device_get(state)], []
        step = runtime.train_step(run)
        for _ in range(STEPS):
            batch = {
                'image': rng.integers(0, 256, (8, 16, 16, 1), dtype=np.uint8),
                'label': rng.integers(0, run.info.num_classes, (8,), dtype=np.int32),
            }
            state, step_metrics = step(
                state, parallel.shard_batch(batch, run.mesh), run.keys['train']
            )
            states.append(jax.device_get(state))
            metrics.append(jax.device_get(step_metrics))
        results[name] = run, states, metrics
    return results


@pytest.mark.parametrize('name', VARIANTS)
def test_variant_trains_and_stays_finite(runs, name):
    run, states, metrics = runs[name]
    for step_metrics in metrics:
        assert all(np.isfinite(v) for v in step_metrics.values()), step_metrics
    for leaf in jax.tree.leaves(states[-1].params):
        assert np.all(np.isfinite(leaf))
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), states[-1].params, states[0].params)
    assert all(m > 0 for m in jax.tree.leaves(moved['generator']))
    # (Not every D leaf: the hinge loss's gradient for D's output bias is 0 while every output
    # is inside the margin.)
    assert any(m > 0 for m in jax.tree.leaves(moved['discriminator']))
    penalty = {'wasserstein_gp': 'gradient_penalty', 'minimax_r1_conditional': 'r1_penalty'}
    if name in penalty:
        assert all(m[penalty[name]] > 0 for m in metrics)
    images = jax.jit(run.model.generate, static_argnums=2)(states[-1], jax.random.key(0), 4)
    assert images.shape == (4, 16, 16, 1) and np.all(np.abs(images) <= 1)


def test_n_critic_updates_d_n_times_per_g_update(runs):
    _, states, _ = runs['hinge_sn_ncritic_ema']
    for step, state in enumerate(states):
        assert int(state.step) == step
        assert int(state.opt_state['generator'].count) == step
        assert int(state.opt_state['discriminator'].count) == 2 * step
    # Spectral norm's power-iteration vectors live in the state and advance with D.
    before, after = (s.batch_stats['discriminator'] for s in (states[0], states[-1]))
    assert any(
        not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after))
    )


@pytest.mark.parametrize('simultaneous', [True, False])
def test_simultaneous_update_steps_g_against_d_before_its_step(data_dir, simultaneous):
    """With simultaneous updates G's first step does not depend on D's learning rate (G sees D
    before D's step); with alternating ones it does (G sees the updated D)."""
    batch = {'image': np.random.default_rng(1).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)}
    g_params = []
    for d_lr_multiplier in (1.0, 50.0):
        overrides = {
            **VARIANTS['mlp_maxout_sgd'],
            'model.simultaneous_update': simultaneous,
            'optim.d_lr_multiplier': d_lr_multiplier,
        }
        run = runtime.prepare(tiny(data_dir, overrides))
        state, _ = runtime.train_step(run)(
            runtime.initial_state(run), parallel.shard_batch(batch, run.mesh), run.keys['train']
        )
        g_params.append(jax.device_get(state.params['generator']))
    same = jax.tree.leaves(jax.tree.map(np.array_equal, *g_params))
    assert all(same) if simultaneous else not all(same)


def test_ema_follows_its_recurrence(runs):
    _, states, _ = runs['hinge_sn_ncritic_ema']
    expected = {
        'params': states[0].params['generator'],
        'batch_stats': states[0].batch_stats['generator'],
    }
    for t in range(STEPS):
        decay = min(0.9, (1 + t) / (10 + t))
        current = {
            'params': states[t + 1].params['generator'],
            'batch_stats': states[t + 1].batch_stats['generator'],
        }
        expected = jax.tree.map(lambda e, c: decay * e + (1 - decay) * c, expected, current)
        got = {
            'params': states[t + 1].params['generator_ema'],
            'batch_stats': states[t + 1].batch_stats['generator_ema'],
        }
        for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('name', ['minimax_r1_conditional', 'resnet_conditional_sn'])
def test_conditional_generator_follows_labels(runs, name):
    run, states, _ = runs[name]
    model, state = run.model, states[-1]
    assert model.num_classes == run.info.num_classes > 1
    z = jnp.tile(jax.random.normal(jax.random.key(0), (1, model.latent_dim)), (4, 1))
    labels = jnp.array([0, 1, 0, 1])
    images = jax.jit(model.decode)(state, z, labels)
    assert images.shape == (4, 16, 16, 1)
    np.testing.assert_allclose(images[0], images[2], atol=1e-6)  # same z, same label
    assert np.abs(images[0] - images[1]).max() > 1e-4  # same z, another label
    # generate honours the labels it is given: its images are decode(z, those labels).
    generated = jax.jit(model.generate, static_argnums=2)(state, jax.random.key(1), 4, labels)
    other = jax.jit(model.generate, static_argnums=2)(state, jax.random.key(1), 4, labels[::-1])
    assert generated.shape == (4, 16, 16, 1) and not np.allclose(generated, other)


def test_eval_step_of_conditional_spectral_norm_gan(runs):
    run, states, _ = runs['resnet_conditional_sn']
    run.config.train.eval_examples = 8
    run.config.train.eval_batch_size = 8
    values = runtime.evaluate_state(run, parallel.replicate(states[-1], run.mesh))
    assert set(values) == {'d_loss', 'g_loss', 'd_accuracy_real', 'd_accuracy_fake'}
    assert all(np.isfinite(v) for v in values.values())


@pytest.mark.parametrize(
    'module,arg',
    [
        (dcgan_mnist, 'hinge'),
        (dcgan_mnist, 'wgan_gp'),
        (cgan_mnist, 'paper'),
        (sngan_cifar10, 'paper'),
        (dcgan_cifar10, 'paper'),
        (goodfellow_parzen, 'dcgan'),
    ],
)
def test_config_variants_are_valid(module, arg):
    schema.validate(module.get_config(arg), num_devices=8)


@pytest.mark.parametrize(
    'overrides,key',
    [
        ({'model.n_critic': 3}, 'train.batch_size'),  # 64 images do not split in 3 x 8
        ({'model.net': 'resnet'}, 'model.d_dropout'),  # the ResNet D has no dropout
        ({'model.net': 'mlp', 'model.conditional': True}, 'model.conditional'),
        ({'optim.momentum_ramp_steps': 10}, 'optim.momentum_ramp_steps'),  # Adam, not SGD
        (
            {'optim.schedule_boundaries': (10, 20), 'optim.schedule_scales': (0.1,)},
            'optim.schedule_scales',
        ),
        (
            {'optim.schedule_boundaries': (20, 10), 'optim.schedule_scales': (0.1, 0.1)},
            'optim.schedule_boundaries',
        ),
    ],
)
def test_inconsistent_gan_settings_are_config_errors(overrides, key):
    config = dcgan_mnist.get_config()
    config.update_from_flattened_dict(overrides)
    with pytest.raises(ConfigError) as error:
        schema.validate(config, num_devices=8)
    assert error.value.key == key
