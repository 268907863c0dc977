"""Data-parallel results that `tests/test_parallel.py` checks, computed on 8 forced CPU devices.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.parallel_worker OUT.pkl

Runs in its own process because the device count is fixed when JAX starts. Writes a pickle of
numpy trees: for the GAN, the conv VAE, the unpaired hybrid, FactorVAE (codes permuted
across the global batch), pix2pix and CycleGAN (image pools), the state after two train steps
on 1 device, on 8 with the shard_map backend and on 8 with pmap, from the same initial state and
batches (the GAN generator's batch norm is synced over devices); the same after a checkpoint
written on 1 device and resumed on 8, and the other way round; and the error message of a batch
that does not split over the devices.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import data, parallel, xla_settings
from gen_models.checkpoints import Checkpointer
from gen_models.models import build_model

NUM_DEVICES = 8
BATCH = 16
IMAGE_SHAPE = (16, 16, 1)
RUNS = ((1, 'shard_map'), (NUM_DEVICES, 'shard_map'), (NUM_DEVICES, 'pmap'))
CONFIGS = {'gan': 'dcgan_mnist', 'vae': 'vae_mnist'}
CONFIGS['hybrid'] = 'hybrid_shapes:unpaired'  # two domains per device, a discriminator each
CONFIGS['disentangled_vae'] = 'disentanglement:factor_vae'  # batch statistics over devices
CONFIGS['pix2pix'] = 'pix2pix_mnist'  # dropout masks per example, a PatchGAN
CONFIGS['cyclegan'] = 'cyclegan_mnist'  # image pools fed by the global batch
# CycleGAN's L1 terms (weight 10) give its instance norms' shifts gradients near 10: at lr 0.1
# the first step moves them by about 1 and the second step's gradient then amplifies rounding
# differences to percents, so its SGD steps are smaller.
LEARNING_RATES = {'cyclegan': 0.002}


def tiny_config(family: str):
    """A narrow net trained with plain SGD (Adam's g / |g| would hide a wrong gradient scale),
    GAN dropout on: its masks are drawn per example, so they must agree too."""
    name, _, variant = CONFIGS[family].partition(':')
    config = importlib.import_module(f'configs.{name}').get_config(variant or None)
    config.model.width = 8
    config.model.latent_dim = 4
    config.optim.name = 'sgd'
    config.lr = LEARNING_RATES.get(family, 0.1)
    return config


def train_results(family: str, checkpoint_dir: Path) -> dict:
    """As numpy trees: {'init': state, (devices, backend): (state, metrics) after 2 steps,
    ('resumed', n): the same after step 1 on the other device count, a checkpoint, and step 2
    on n devices}."""
    info = data.DatasetInfo(IMAGE_SHAPE, num_classes=1, num_train=BATCH, num_eval=BATCH)
    model = build_model(tiny_config(family), info)
    rng = np.random.default_rng(0)
    batches = [
        {
            'image': rng.integers(0, 256, (BATCH, *IMAGE_SHAPE), dtype=np.uint8),
            'label': np.zeros((BATCH,), np.int32),
        }
        for _ in range(2)
    ]
    key = jax.random.key(1)
    initial = jax.device_get(jax.jit(model.init)(jax.random.key(0), batches[0]))
    results = {'init': initial}
    steps = {}
    for devices, backend in RUNS:
        mesh = parallel.make_mesh(jax.devices()[:devices])
        steps[devices, backend] = mesh, parallel.train_step(model.train_step, mesh, backend)
        state = parallel.replicate(initial, mesh)
        for batch in batches:
            state, metrics = steps[devices, backend][1](
                state, parallel.shard_batch(batch, mesh), key
            )
        results[devices, backend] = jax.device_get((state, metrics))
    for saved_on, resumed_on in ((1, NUM_DEVICES), (NUM_DEVICES, 1)):
        mesh, step = steps[saved_on, 'shard_map']
        state, _ = step(
            parallel.replicate(initial, mesh), parallel.shard_batch(batches[0], mesh), key
        )
        mesh, step = steps[resumed_on, 'shard_map']
        with Checkpointer(checkpoint_dir / f'{family}_{saved_on}') as checkpointer:
            checkpointer.save(1, state)
            state, _ = checkpointer.restore(parallel.replicate(initial, mesh))
        results['resumed', resumed_on] = jax.device_get(
            step(state, parallel.shard_batch(batches[1], mesh), key)
        )
    return results


def uneven_batch_error() -> str:
    try:
        parallel.shard_batch({'image': jnp.zeros((12, 2))}, parallel.make_mesh())
    except ValueError as error:
        return str(error)
    return ''


def main(out_path: str) -> None:
    assert jax.device_count() == NUM_DEVICES, jax.devices()
    xla_settings.enable_compilation_cache()  # the session's cache, from the environment
    xla_settings.use_unrolled_threefry()  # as launch.py trains
    checkpoint_dir = Path(out_path).parent / 'checkpoints'
    results = {family: train_results(family, checkpoint_dir) for family in CONFIGS}
    results['uneven_batch_error'] = uneven_batch_error()
    with open(out_path, 'wb') as file:
        pickle.dump(results, file)


if __name__ == '__main__':
    main(sys.argv[1])
