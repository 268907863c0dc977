"""--mode export: the images evaluation scores, as .npz or PNG folders, with what each holds;
reconstructions of encoders, (input, target, output) triples of transformation models."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from PIL import Image

from experiments import export, runtime, train
from gen_models import data, images
from gen_models.config import ConfigError
from tests.models.test_hybrid import tiny as tiny_hybrid
from tests.tiny import tiny


def _trained(config, path):
    train.train_and_evaluate(config, path)
    run = runtime.prepare(config)
    state, _ = runtime.restore_latest(run, path)
    return run, state


def test_a_conditional_gan_exports_the_balanced_samples_evaluation_scores(data_dir, tmp_path):
    config = tiny('cgan_mnist', data_dir, num_steps=2, checkpoint_every=2)
    config.dataset.name = 'shapes'
    config.export.num_images = 10
    run, state = _trained(config, tmp_path)
    record = export.export(config, tmp_path)
    arrays = np.load(tmp_path / 'export' / '0000002' / 'arrays.npz')
    np.testing.assert_array_equal(arrays['labels'], np.arange(10) % 3)
    size = config.train.eval_batch_size
    generate = jax.jit(run.model.generate, static_argnums=2)
    first = generate(state, jax.random.fold_in(run.keys['sample'], 1), size, np.arange(size) % 3)
    expected = images.to_uint8(np.asarray(first), run.model.image_range)[:8]
    np.testing.assert_array_equal(arrays['images'][:8], expected)
    assert arrays['images'].dtype == np.uint8 and arrays['images'].shape == (10, 28, 28, 1)
    assert record['step'] == 2 and record['seed'] == config.seed
    written = json.loads((tmp_path / 'export' / '0000002' / 'export.json').read_text())
    assert written['arrays']['images'] == [10, 28, 28, 1]


def test_one_class_on_request_and_png_folders_hold_the_same_images(data_dir, tmp_path):
    config = tiny('cgan_mnist', data_dir, num_steps=2, checkpoint_every=2)
    config.dataset.name = 'shapes'
    config.export.update(num_images=5, label=2)
    _trained(config, tmp_path)
    export.export(config, tmp_path)
    as_npz = np.load(tmp_path / 'export' / '0000002' / 'arrays.npz')
    assert set(as_npz['labels']) == {2}
    config.export.update(format='png', dir=str(tmp_path / 'pngs'))
    export.export(config, tmp_path)
    pngs = sorted((tmp_path / 'pngs' / 'images').glob('*.png'))
    assert [p.name for p in pngs] == [f'{i:06d}.png' for i in range(5)]
    decoded = np.stack([np.asarray(Image.open(p))[..., None] for p in pngs])
    np.testing.assert_array_equal(decoded, as_npz['images'])
    assert (tmp_path / 'pngs' / 'labels.txt').read_text().split() == ['2'] * 5


def test_a_vae_exports_samples_and_reconstructions_of_the_eval_images(data_dir, tmp_path):
    config = tiny('quickstart', data_dir, num_steps=2, checkpoint_every=2)
    config.export.num_images = 6
    _trained(config, tmp_path)
    export.export(config, tmp_path)
    arrays = np.load(tmp_path / 'export' / '0000002' / 'arrays.npz')
    originals = data.load_split_array(config.dataset, 'test', 6)['image']
    np.testing.assert_array_equal(arrays['originals'], originals)
    assert arrays['reconstructions'].shape == originals.shape == arrays['images'].shape


def test_the_hybrid_exports_exact_targets_beside_its_outputs(data_dir, tmp_path):
    config = tiny_hybrid(data_dir, 'rotate90')
    config.export.num_images = 5
    _trained(config, tmp_path)
    export.export(config, tmp_path)
    arrays = np.load(tmp_path / 'export' / '0000004' / 'arrays.npz')
    originals = data.load_split_array(config.dataset, 'test', 5)['image']
    np.testing.assert_array_equal(arrays['inputs'], originals)
    np.testing.assert_array_equal(arrays['targets'], np.rot90(originals, 1, axes=(1, 2)))
    assert arrays['outputs'].shape == originals.shape and arrays['outputs'].dtype == np.uint8


def test_a_model_with_no_images_to_export_is_refused(data_dir, shared_data, tmp_path):
    config = tiny('classifier', data_dir, str(shared_data), num_steps=2, checkpoint_every=2)
    train.train_and_evaluate(config, tmp_path)
    with pytest.raises(ConfigError, match='generates or reconstructs'):
        export.export(config, tmp_path)


def test_export_of_an_untrained_workdir_says_so_and_creates_nothing(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        export.export(tiny('quickstart', data_dir), tmp_path / 'none')
    assert not (tmp_path / 'none').exists()
