"""`train.compute_dtype = 'bfloat16'` trains a GAN and a VAE as float32 does, within bfloat16's
rounding, and without a non-finite loss (WGAN-GP's gradient penalty included)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from experiments import logs, train

STEPS = 20
# Largest |bfloat16 - float32| of a train loss over the run, as a fraction of the largest
# |float32| value of that loss. Measured at 20 steps on the shapes: WGAN-GP d_loss 0.7%,
# g_loss 1.0%; VAE loss 0.01%.
TOLERANCE = 0.05


def _config(name: str, data_dir: str, compute_dtype: str):
    module, _, variant = name.partition(':')
    config = importlib.import_module(f'configs.{module}').get_config(variant or None)
    config.dataset.update(name='shapes', data_dir=data_dir, shapes_resolution=28)
    config.model.update(width=8, latent_dim=4)
    config.train.update(
        num_steps=STEPS,
        batch_size=20,  # splits into WGAN-GP's 5 critic sub-batches
        log_every=1,
        eval_every=STEPS,
        checkpoint_every=STEPS,
        sample_every=STEPS,
        eval_batch_size=8,
        eval_examples=16,
        num_samples=4,
        progress_bar=False,
        compute_dtype=compute_dtype,
    )
    return config


def _losses(workdir) -> dict[str, np.ndarray]:
    records = [r for r in logs.read_metrics(workdir) if any(k.startswith('train/') for k in r)]
    keys = [k for k in records[0] if k.startswith('train/') and k.endswith('loss')]
    return {k: np.array([r[k] for r in records]) for k in keys}


@pytest.mark.parametrize('name', ['dcgan_mnist:wgan_gp', 'vae_mnist'])
def test_bfloat16_trains_as_float32_does(name, data_dir, tmp_path):
    results = {}
    for dtype in ('float32', 'bfloat16'):
        results[dtype] = train.train_and_evaluate(_config(name, data_dir, dtype), tmp_path / dtype)
    full, half = _losses(tmp_path / 'float32'), _losses(tmp_path / 'bfloat16')
    assert full.keys() == half.keys() and full
    for key, reference in full.items():
        assert len(half[key]) == STEPS and np.isfinite(half[key]).all(), key
        error = np.max(np.abs(half[key] - reference)) / np.max(np.abs(reference))
        assert 0 < error < TOLERANCE, (key, error)  # 0 would mean no bfloat16 ran
    evaluated = results['float32']['metrics']
    for key in (k for k in evaluated if k.endswith(('loss', 'elbo'))):
        np.testing.assert_allclose(results['bfloat16']['metrics'][key], evaluated[key], rtol=0.02)
