"""The disentangling VAEs: each penalty reduces to the plain ELBO where the papers say it
does, the FactorVAE critic starts at chance, and a short run on the shapes trains, draws
latent traversals and reports every disentanglement metric."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from configs import disentanglement
from experiments import logs, train
from gen_models import config as cfg
from gen_models import data, parallel, schema
from gen_models.models import build_model
from tests.tiny import tiny

INFO = data.DatasetInfo((16, 16, 1), num_classes=0, num_train=32, num_eval=32)
BATCH = {'image': np.random.default_rng(0).integers(0, 256, (32, 16, 16, 1), dtype=np.uint8)}


def one_step(method: str, **model):
    """(metrics, params) after one train step of `method` from a fixed initial state."""
    config = disentanglement.get_config(method)
    config.model.update(model)
    built = build_model(config, INFO)
    mesh = parallel.make_mesh(jax.devices()[:1])
    state = parallel.replicate(built.init(jax.random.key(0), BATCH), mesh)
    step = parallel.train_step(built.train_step, mesh)
    state, metrics = step(state, parallel.shard_batch(BATCH, mesh), jax.random.key(1))
    return jax.device_get(metrics), jax.device_get(state.params)


@pytest.fixture(scope='module')
def plain():
    """beta-VAE with beta 1: the ELBO."""
    return one_step('beta_vae', beta=1.0)


@pytest.mark.parametrize(
    'method, model',
    [
        ('beta_tcvae', {'beta': 1.0}),  # (beta - 1) TC vanishes
        ('dip_vae_i', {'lambda_od': 0.0, 'lambda_d': 0.0}),
        ('dip_vae_ii', {'lambda_od': 0.0, 'lambda_d': 0.0}),
        ('annealed_vae', {'capacity_weight': 1.0, 'c_max': 0.0}),  # |KL - 0| = KL
        ('factor_vae', {'gamma': 0.0}),
    ],
)
def test_each_penalty_at_its_neutral_weight_is_the_elbo(plain, method, model):
    metrics, params = one_step(method, **model)
    np.testing.assert_allclose(metrics['loss'], -plain[0]['elbo'], rtol=1e-6)
    for name in ('encoder', 'decoder'):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
            params[name],
            plain[1][name],
        )


def test_penalties_add_what_they_report(plain):
    metrics, _ = one_step('beta_tcvae', beta=6.0)
    np.testing.assert_allclose(metrics['loss'], -metrics['elbo'] + 5.0 * metrics['tc'], 1e-5)
    metrics, _ = one_step('dip_vae_ii', lambda_od=3.0, lambda_d=3.0)
    np.testing.assert_allclose(metrics['loss'], -metrics['elbo'] + metrics['dip'], rtol=1e-5)
    metrics, _ = one_step('beta_vae', beta=4.0)
    expected = -metrics['log_likelihood'] + 4.0 * metrics['kl']
    np.testing.assert_allclose(metrics['loss'], expected, rtol=1e-5)


def test_the_factor_vae_critic_starts_near_chance():
    metrics, params = one_step('factor_vae', gamma=10.0)
    assert abs(metrics['discriminator_loss'] - np.log(2)) < 0.05
    assert 'discriminator' in params


def test_a_short_run_trains_draws_traversals_and_reports_the_metrics(data_dir, tmp_path):
    config = tiny('disentanglement', data_dir, num_steps=40, eval_every=40, log_every=10)
    config.dataset.shapes_resolution = 32
    config.model.method = 'beta_tcvae'
    config.model.beta = 4.0
    config.lr = 1e-3
    config.train.update(batch_size=32, eval_batch_size=32, eval_examples=64)
    config.eval.update(
        every=40,
        disentanglement_train=300,
        disentanglement_test=200,
        batch_points_train=30,
        batch_points_test=20,
        disentanglement_batch=8,
        factor_vae_variance_points=200,
    )
    results = train.train_and_evaluate(config, tmp_path)
    losses = [r['train/loss'] for r in logs.read_metrics(tmp_path) if 'train/loss' in r]
    assert losses[-1] < losses[0]
    values = results['metrics']
    for name in ('beta_vae_score', 'factor_vae_score', 'mig', 'dci_disentanglement', 'sap'):
        assert 0.0 <= values[f'eval/{name}'] <= 1.0, name
    assert {'eval/modularity', 'eval/explicitness_test', 'eval/tc_sampled'} <= set(values)
    protocols = json.loads((tmp_path / 'results.json').read_text())['metric_protocols']
    assert protocols['mig']['train_points'] == 300
    traversal = tmp_path / 'samples' / 'traversals_0000040.png'
    assert traversal.is_file()


@pytest.mark.parametrize(
    'key, value, named',
    [('dataset.name', 'mnist', 'dataset.name'), ('dataset.image_size', 64, 'dataset.image_size')],
)
def test_factor_metrics_refuse_data_without_the_renderers_factors(key, value, named):
    config = disentanglement.get_config('beta_vae')
    config.update_from_flattened_dict({key: value})
    with pytest.raises(cfg.ConfigError, match=named):
        schema.validate(config)


def test_images_the_nets_cannot_halve_four_times_are_refused():
    config = disentanglement.get_config('beta_vae')
    with pytest.raises(cfg.ConfigError, match='multiples of 16'):
        schema.validate(config, 1, data.DatasetInfo((28, 28, 1), 0, 1, 1))
