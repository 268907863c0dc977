"""The hybrid: learns transformations scored against exact targets, unpaired cycles, runs."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from configs import default, hybrid_shapes
from experiments import runtime, sample, train
from gen_models import data, parallel, schema
from gen_models.config import ConfigError


def tiny(data_dir: str, variant: str = 'rotate90', lr: float = 3e-3, **train_overrides):
    """hybrid_shapes at 16 px with narrow nets and a small eval."""
    config = hybrid_shapes.get_config(variant)
    config.lr = lr
    config.dataset.data_dir = data_dir
    config.dataset.shapes_resolution = 16
    config.model.update(width=8, latent_dim=8, code_dim=32)
    config.train.update(
        dict(
            num_steps=4,
            batch_size=16,
            log_every=2,
            eval_every=4,
            checkpoint_every=4,
            sample_every=4,
            eval_batch_size=32,
            eval_examples=64,
            num_samples=6,
            progress_bar=False,
        )
    )
    config.train.update(train_overrides)
    return config


def _train(run: runtime.Run, num_steps: int):
    """State and per-step train metrics after `num_steps` steps from the initial state."""
    state = runtime.initial_state(run)
    step_fn = runtime.train_step(run)
    batches = data.make_train_iterator(
        run.config.dataset, batch_size=run.config.train.batch_size, seed=run.config.seed
    )
    history = []
    for _ in range(num_steps):
        state, metrics = step_fn(
            state, parallel.shard_batch(next(batches), run.mesh), run.keys['train']
        )
        history.append(metrics)
    return state, jax.device_get(history)


def test_paired_rotation_error_to_the_exact_target_falls(data_dir):
    run = runtime.prepare(tiny(data_dir))
    before = runtime.evaluate_state(run, runtime.initial_state(run))
    state, _ = _train(run, 200)
    after = runtime.evaluate_state(run, state)
    assert after['mse'] < 0.5 * before['mse']
    assert after['psnr'] > before['psnr'] + 3.0
    assert after['ssim'] > before['ssim']
    assert after['elbo'] > before['elbo']
    # The eval's error is the output's against np.rot90 of the eval images, computed here.
    images = next(iter(data.make_eval_iterator(run.config.dataset, batch_size=64)))['image']
    x = images.astype(np.float32) / 255.0
    output = np.asarray(jax.jit(run.model.transform)(state, x, run.keys['sample']))
    expected_mse = np.mean((output - np.rot90(x, axes=(1, 2))) ** 2)
    assert after['mse'] == pytest.approx(expected_mse, rel=1e-4)
    assert after['identity_psnr'] == pytest.approx(
        np.mean(-10 * np.log10(np.mean((x - np.rot90(x, axes=(1, 2))) ** 2, axis=(1, 2, 3)))),
        rel=1e-4,
    )


@pytest.mark.parametrize('generator_input, channels', [('input', 1), ('both', 2)])
def test_generator_input_switch_feeds_g_the_input_image(data_dir, generator_input, channels):
    config = tiny(data_dir)
    config.model.generator_input = generator_input
    run = runtime.prepare(config)
    state = runtime.initial_state(run)
    first_conv = jax.tree.leaves(state.params['generator'])
    assert {leaf.shape[2] for leaf in first_conv if leaf.ndim == 4} >= {channels}
    images = next(iter(data.make_eval_iterator(run.config.dataset, batch_size=8)))['image']
    x = images.astype(np.float32) / 255.0
    transform = jax.jit(run.model.transform)
    noisy_decoder = jax.tree.map(lambda p: p + 0.5, state.params['decoder'])
    moved = state.replace(params={**state.params, 'decoder': noisy_decoder})
    difference = np.abs(transform(state, x, None) - transform(moved, x, None)).max()
    # G reads the decoder's output only when it sees the decoded image.
    assert (difference > 1e-3) == (generator_input == 'both')
    before = runtime.evaluate_state(run, state)
    state, _ = _train(run, 100)
    assert runtime.evaluate_state(run, state)['psnr'] > before['psnr'] + 3.0


def test_unpaired_cycle_loss_falls(data_dir):
    run = runtime.prepare(tiny(data_dir, 'unpaired'))
    _, history = _train(run, 100)
    cycle = [float(m['cycle_loss']) for m in history]
    assert np.mean(cycle[-10:]) < 0.5 * np.mean(cycle[:10])
    assert {'d_loss', 'g_loss', 'elbo', 'elbo_b'} <= history[-1].keys()
    assert all(np.isfinite(float(m['loss'])) for m in history)


@pytest.mark.parametrize('variant', ['rotate90', 'unpaired'])
def test_train_and_sample_write_results_and_transformation_grids(data_dir, tmp_path, variant):
    config = tiny(data_dir, variant)
    results = train.train_and_evaluate(config, tmp_path)
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert {'eval/mse', 'eval/psnr', 'eval/ssim', 'eval/identity_psnr', 'eval/elbo'} <= set(
        saved['metrics']
    )
    assert saved['metrics'] == results['metrics']
    assert saved['protocol']['transform'] == config.transform.to_dict()
    assert 'SSIM'.lower() in saved['protocol']['metric_units']
    assert (tmp_path / 'samples' / 'transformations_0000004.png').is_file()
    paths = sample.sample(config, tmp_path)
    assert tmp_path / 'samples' / 'transformations_final_0000004.png' in paths


def test_transformation_grid_holds_input_target_output(data_dir):
    run = runtime.prepare(tiny(data_dir, 'inpaint'))
    state = runtime.initial_state(run)
    grids = run.model.sample_grids(
        state,
        run.keys['sample'],
        6,
        lambda n: next(iter(data.make_eval_iterator(run.config.dataset, batch_size=n))),
    )
    assert grids['transformations'].ncol == 6
    grid = grids['transformations'].images.reshape(2, 3, 16, 16, 1)
    source, target, output = grid[:, 0], grid[:, 1], grid[:, 2]
    images = next(iter(data.make_eval_iterator(run.config.dataset, batch_size=2)))['image']
    np.testing.assert_allclose(target, images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(source[:, :8, :8], 0.0)
    np.testing.assert_array_equal(source[:, 8:], target[:, 8:])
    np.testing.assert_allclose(output, run.model.transform(state, source, None), atol=1e-6)


def _with(**flat):
    config = hybrid_shapes.get_config()
    config.update_from_flattened_dict(flat)
    return config


@pytest.mark.parametrize(
    'config, key, allowed',
    [
        (_with(**{'transform.name': 'shear'}), 'transform.name', "'rotate' | 'flip'"),
        (_with(**{'transform.mask': 'half'}), 'transform.mask', "'quarter' | 'centre'"),
        (_with(**{'transform.flip_axis': 'x'}), 'transform.flip_axis', "'vertical'"),
        (_with(**{'transform.scale': 0.0}), 'transform.scale', '> 0'),
        (_with(**{'transform.angle': float('nan')}), 'transform.angle', 'finite'),
        (_with(**{'transform.noise_std': -0.1}), 'transform.noise_std', '>= 0'),
        (_with(**{'transform.pairing': 'both'}), 'transform.pairing', "'paired' | 'unpaired'"),
        (_with(**{'model.adversarial_weight': -1.0}), 'model.adversarial_weight', '>= 0'),
        (_with(**{'model.likelihood': 'logistic'}), 'model.likelihood', "'bernoulli' | 'gaussian'"),
        (_with(**{'model.generator_input': 'z'}), 'model.generator_input', "'decoded' | 'input'"),
        (
            _with(**{'model.generator_input': 'input', 'transform.pairing': 'unpaired'}),
            'model.generator_input',
            "'decoded' with unpaired transforms",
        ),
        (
            _with(**{'model.use_adversarial': False, 'model.adversarial_weight': 1.0}),
            'model.adversarial_weight',
            '0 when config.model.use_adversarial=False',
        ),
    ],
)
def test_bad_transform_settings_are_config_errors(config, key, allowed):
    with pytest.raises(ConfigError) as error:
        schema.validate(config)
    assert error.value.key == key and allowed in str(error.value)


def test_unpaired_batches_split_into_two_domains_per_device():
    config = hybrid_shapes.get_config('unpaired')
    config.train.batch_size = 24
    schema.validate(config, num_devices=4)
    with pytest.raises(
        ConfigError, match=r'batch_size=24 .*multiple of 2 x the device count \(16\)'
    ):
        schema.validate(config, num_devices=8)


def test_images_smaller_than_the_ssim_window_are_refused():
    config = hybrid_shapes.get_config()
    config.dataset.shapes_resolution = 8
    with pytest.raises(ConfigError, match='at least 11 px per side'):
        schema.validate(config, info=data.DatasetInfo((8, 8, 1), 0, 10, 10))
    schema.validate(config, info=data.DatasetInfo((16, 16, 1), 0, 10, 10))


def test_transforms_are_refused_for_families_that_make_no_pairs():
    config = default.base('vae')
    config.transform.name = 'rotate'
    with pytest.raises(ConfigError, match="model family 'vae' does not read it"):
        schema.validate(config)


def test_inpainting_scores_the_completed_image_with_known_pixels_kept(data_dir):
    run = runtime.prepare(tiny(data_dir, 'inpaint'))
    state = runtime.initial_state(run)
    metrics = runtime.evaluate_state(run, state)
    assert metrics['completed_mse'] <= metrics['mse'] + 1e-7
    assert metrics['completed_psnr'] >= metrics['psnr'] - 1e-4
    # Independently: the quadrant mask is fixed, so the completed image's error is the raw
    # output's error inside the masked top-left quadrant, averaged over the whole image.
    images = data.load_split_array(run.config.dataset, 'test', 64)['image'] / 255.0
    source = images.copy()
    source[:, :8, :8] = 0.0
    output = np.asarray(run.model.transform(state, source.astype(np.float32), None))
    inside = np.sum((output[:, :8, :8] - images[:, :8, :8]) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(metrics['completed_mse'], np.mean(inside / (16 * 16)), rtol=1e-4)
