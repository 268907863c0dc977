"""The autoencoder, the worked example of adding a family: found by the registry, trained by
the one loop, its eval scores equal to a numpy computation of its reconstructions."""

from __future__ import annotations

import numpy as np

from experiments import logs, runtime, train
from gen_models import data, models
from tests.tiny import tiny


def test_the_registry_finds_the_family_from_its_module_alone():
    family = models.family('autoencoder')
    assert family.defaults().loss == 'bernoulli'


def test_it_trains_and_its_eval_mse_is_the_reconstructions_error(data_dir, tmp_path):
    config = tiny('autoencoder_mnist', data_dir, num_steps=30, eval_every=30, log_every=10)
    config.dataset.name = 'shapes'
    config.lr = 3e-3
    results = train.train_and_evaluate(config, tmp_path)
    losses = [r['train/loss'] for r in logs.read_metrics(tmp_path) if 'train/loss' in r]
    assert losses[-1] < losses[0]
    assert (tmp_path / 'samples' / 'reconstructions_0000030.png').is_file()
    run = runtime.prepare(config)
    state, _ = runtime.restore_latest(run, tmp_path)
    images = data.load_split_array(config.dataset, 'test', 16)['image']
    recon = np.asarray(run.model.reconstruct(state, images, None), np.float64)
    mse = np.mean((recon - images / 255.0) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(results['metrics']['eval/mse'], mse.mean(), rtol=1e-4)
    np.testing.assert_allclose(
        results['metrics']['eval/psnr'], np.mean(10 * np.log10(1 / mse)), rtol=1e-4
    )
