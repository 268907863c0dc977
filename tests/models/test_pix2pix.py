"""pix2pix and its U-Net baseline: the error to the exact target falls over a short run on
the shapes, the baseline has no discriminator, and the L1 term is pix2pix's."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import logs, train
from tests.tiny import tiny


@pytest.mark.parametrize('variant', ['rotate45', 'rotate45_unet'])
def test_the_error_to_the_exact_target_falls(data_dir, tmp_path, variant):
    config = tiny('pix2pix_mnist', data_dir, num_steps=90, eval_every=30, log_every=10)
    config.dataset.update(name='shapes', shapes_resolution=32, image_size=0)
    config.model.width = 8
    config.train.update(batch_size=16, eval_batch_size=16, eval_examples=32)
    config.lr = 2e-3
    config = config.copy_and_resolve_references()
    if variant.endswith('unet'):
        config.model.update(use_adversarial=False, adversarial_weight=0.0)
    results = train.train_and_evaluate(config, tmp_path)
    records = logs.read_metrics(tmp_path)
    l1 = [r['train/l1'] for r in records if 'train/l1' in r]
    psnr = [r['eval/psnr'] for r in records if 'eval/psnr' in r]
    assert l1[-1] < l1[0]
    assert psnr[-1] > psnr[0], psnr
    metrics = results['metrics']
    assert ('train/d_loss' in results['train']) == (not variant.endswith('unet'))
    assert metrics['eval/psnr'] > metrics['eval/identity_psnr']
    assert (tmp_path / 'samples' / 'transformations_0000090.png').is_file()
    assert np.isfinite(metrics['eval/l1'])
