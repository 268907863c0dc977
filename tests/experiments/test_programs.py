"""Traced hyperparameters: configs that differ only in loss weights share one structure and
one set of compiled programs, the traced value is the one used, and a vectorised group over
a loss weight matches its trials run alone, keep_best and all."""

from __future__ import annotations

import importlib
import json
import math

import jax
import numpy as np
import pytest

from experiments import logs, programs, train
from gen_models import config as cfg
from gen_models import data, parallel
from gen_models.models import build_model
from tests.tiny import tiny

CASES = [
    ('dcgan_mnist:wgan_gp', 'model.gradient_penalty', (1.0, 10.0)),
    ('dcgan_mnist', 'model.r1_gamma', (0.1, 1.0)),
    ('goodfellow_parzen:dcgan', 'model.ema_decay', (0.9, 0.999)),
    ('vaegan_mnist', 'model.vaegan_gamma', (0.5, 2.0)),
    ('hybrid_shapes:unpaired', 'model.cycle_weight', (1.0, 3.0)),
    ('hybrid_shapes:unpaired', 'model.adversarial_weight', (10.0, 30.0)),
    ('vae_mnist', 'model.beta', (1.0, 4.0)),
]
IMAGE_SHAPE = (16, 16, 1)


def _config(name: str, **overrides):
    module, _, variant = name.partition(':')
    config = importlib.import_module(f'configs.{module}').get_config(variant or None)
    config.model.update({k: v for k, v in (('width', 8), ('latent_dim', 4)) if k in config.model})
    return cfg.apply_overrides(config, overrides)


@pytest.mark.parametrize('name,key,values', CASES)
def test_configs_differing_in_a_loss_weight_share_their_programs(name, key, values):
    a, b = (_config(name, **{key: value}) for value in values)
    assert programs.structure(a) == programs.structure(b)
    assert key in programs.hyperparameters(a)
    info = data.DatasetInfo(IMAGE_SHAPE, 0, num_train=100, num_eval=100)
    mesh = parallel.make_mesh()
    assert programs.programs(a, info, mesh) is programs.programs(b, info, mesh)


def test_a_toggle_puts_a_zero_weight_in_the_structure_of_the_others():
    on = _config('dcgan_mnist:wgan_gp', **{'model.use_gradient_penalty': True})
    zero, ten = (cfg.apply_overrides(on, {'model.gradient_penalty': w}) for w in (0.0, 10.0))
    assert programs.structure(zero) == programs.structure(ten)
    auto_zero = _config('dcgan_mnist:wgan_gp', **{'model.gradient_penalty': 0.0})
    assert programs.structure(auto_zero) != programs.structure(ten)  # None: off at 0


def _batch(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        'image': rng.integers(0, 256, (size, *IMAGE_SHAPE), dtype=np.uint8),
        'label': np.zeros((size,), np.int32),
    }


@pytest.mark.parametrize('name,key,values', [CASES[0], CASES[3], CASES[5]])
def test_the_traced_value_is_the_one_the_step_uses(name, key, values):
    """One step of the shared program fed the second value equals the step of a model
    built with that value as a plain number."""
    first, second = (_config(name, **{key: value}) for value in values)
    info = data.DatasetInfo(IMAGE_SHAPE, 0, num_train=100, num_eval=100)
    mesh = parallel.make_mesh()
    shared = programs.programs(first, info, mesh)
    hparams = programs.hyperparameters(second)
    batch = parallel.shard_batch(_batch(second.train.batch_size // 8), mesh)
    rng = jax.random.key(1)

    def fresh_state():
        example = {k: v[:1] for k, v in _batch(1).items()}
        return parallel.replicate(shared.init(jax.random.key(0), example, hparams), mesh)

    _, traced = shared.train_step(fresh_state(), batch, rng, hparams)
    plain_step = build_model(second, info).train_step
    _, plain = jax.jit(parallel.train_step(plain_step, mesh, 'shard_map'))(
        fresh_state(), batch, rng
    )
    traced, plain = jax.device_get((traced, plain))
    assert traced.keys() == plain.keys()
    for metric in traced:
        np.testing.assert_allclose(traced[metric], plain[metric], rtol=1e-5, atol=1e-6)


def _group_config(data_dir, weight):
    config = tiny('dcgan_mnist', data_dir, num_steps=4, eval_every=4, checkpoint_every=2)
    config.dataset.name = 'shapes'
    config.model.update(gan_loss='wasserstein', n_critic=2, d_dropout=0.0, gradient_penalty=weight)
    config.eval.update(
        metrics=('parzen',),
        every=2,
        keep_best='parzen_validation',
        num_samples=8,
        parzen_validation_split='train[-32:]',
    )
    return config


def test_a_vectorised_group_over_a_loss_weight_matches_its_trials_alone(data_dir, tmp_path):
    configs = [_group_config(data_dir, weight) for weight in (1.0, 10.0)]
    together = train.train_trials(configs, [tmp_path / 'together' / str(i) for i in range(2)])
    for index, config in enumerate(configs):
        alone = train.train_and_evaluate(config, tmp_path / 'alone' / str(index))
        assert together[index]['vectorized_trials'] == 2
        for name, value in alone['metrics'].items():
            assert math.isclose(value, together[index]['metrics'][name], rel_tol=1e-4, abs_tol=1e-5)
        records = [
            json.loads((tmp_path / kind / str(index) / 'best_checkpoint.json').read_text())
            for kind in ('together', 'alone')
        ]
        assert records[0]['step'] == records[1]['step']
        assert math.isclose(records[0]['value'], records[1]['value'], rel_tol=1e-4)
        steps = [r['step'] for r in logs.read_metrics(tmp_path / 'together' / str(index))]
        assert 2 in steps and 4 in steps
    assert together[0]['metrics'] != together[1]['metrics']  # the weight reached each trial
