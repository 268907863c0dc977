"""CycleGAN: its cycle and identity terms against numpy on the nets' own outputs, and a
short unpaired run on the shapes whose cycle error falls."""

from __future__ import annotations

import jax
import numpy as np

from configs import cyclegan_mnist
from experiments import logs, train
from gen_models import data, parallel
from gen_models.models import build_model
from tests.tiny import tiny

INFO = data.DatasetInfo((16, 16, 1), num_classes=0, num_train=8, num_eval=8)


def test_cycle_and_identity_terms_are_the_l1_errors_of_the_nets_outputs():
    config = cyclegan_mnist.get_config()
    config.model.update(width=4, blocks=1)
    model = build_model(config, INFO)
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
    state = jax.device_get(model.init(jax.random.key(0), {'image': images}))
    mesh = parallel.make_mesh(jax.devices()[:1])
    step = parallel.train_step(model.train_step, mesh)
    rng = jax.random.key(3)
    _, metrics = step(
        parallel.replicate(state, mesh), parallel.shard_batch({'image': images}, mesh), rng
    )
    # The same pairs, then numpy on the generators' outputs.
    pair_rng = jax.random.split(jax.random.fold_in(rng, 0))[0]
    keys = jax.vmap(lambda i: jax.random.fold_in(pair_rng, i))(np.arange(8))
    source, target = model.pairs(images, keys)
    a, b = 2 * np.asarray(source)[0::2] - 1, 2 * np.asarray(target)[1::2] - 1
    g = lambda x: np.asarray(model.transform(state, (x + 1) / 2, None)) * 2 - 1  # A -> B

    def f(x):  # B -> A, through the other generator's parameters
        swapped = state.replace(
            params={**state.params, 'generator_ab': state.params['generator_ba']}
        )
        return np.asarray(model.transform(swapped, (x + 1) / 2, None)) * 2 - 1

    cycle = np.mean(np.abs(f(g(a)) - a)) + np.mean(np.abs(g(f(b)) - b))
    identity = np.mean(np.abs(g(b) - b)) + np.mean(np.abs(f(a) - a))
    np.testing.assert_allclose(metrics['cycle_loss'], cycle, rtol=1e-4)
    np.testing.assert_allclose(metrics['identity_loss'], identity, rtol=1e-4)


def test_a_short_unpaired_run_lowers_its_cycle_error(data_dir, tmp_path):
    config = tiny('cyclegan_mnist', data_dir, num_steps=60, eval_every=30, log_every=10)
    config.dataset.update(name='shapes', shapes_resolution=32, image_size=0)
    config.model.update(width=8, blocks=2)
    config.train.update(batch_size=16, eval_batch_size=16, eval_examples=32)
    config.lr = 2e-3
    results = train.train_and_evaluate(config, tmp_path)
    records = logs.read_metrics(tmp_path)
    cycle = [r['train/cycle_loss'] for r in records if 'train/cycle_loss' in r]
    assert cycle[-1] < cycle[0]
    assert np.isfinite(results['metrics']['eval/psnr'])
    assert (tmp_path / 'samples' / 'transformations_0000060.png').is_file()
