"""--mode eval and evaluation during training: metrics by name, protocols, repeatability."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from experiments import best_checkpoint, evaluate, logs, runtime, train
from gen_models import data, schema
from gen_models.checkpoints import Checkpointer
from gen_models.config import ConfigError
from gen_models.metrics import METRICS, classifier_net, parzen
from gen_models.nets import inception
from tests.conftest import REPO
from tests.tiny import tiny


def _eval_config(data_dir, tmp_path, metrics, config_name='quickstart'):
    config = tiny(config_name, data_dir, num_steps=20, eval_every=20, checkpoint_every=20)
    config.eval.update(
        metrics=metrics,
        num_samples=6,
        reference_split='test',
        reference_examples=6,
        stats_dir=str(tmp_path / 'stats'),
        feature_batch_size=6,
        kid_subsets=3,
        iwae_samples=8,
        iwae_chunk=3,
        parzen_validation_split='train[-32:]',
    )
    return config


def test_eval_writes_every_metric_with_its_protocol_and_repeats_exactly(data_dir, tmp_path):
    if not inception.inception_path().is_file():
        pytest.skip('FID Inception weights missing')
    config = _eval_config(data_dir, tmp_path, ('iwae', 'fid', 'kid', 'parzen'))
    train.train_and_evaluate(config, tmp_path / 'run')
    results = evaluate.evaluate(config, tmp_path / 'run')
    metrics, protocols = results['metrics'], results['metric_protocols']
    written = json.loads((tmp_path / 'run' / 'results.json').read_text())
    assert (written['metrics'], written['metric_protocols']) == (metrics, protocols)
    for name in (
        'elbo',
        'iwae',
        'fid',
        'kid',
        'kid_std',
        'parzen',
        'parzen_stderr',
        'parzen_validation',
    ):
        assert f'eval/{name}' in metrics
    assert metrics['eval/iwae'] > metrics['eval/elbo']
    assert metrics['eval/fid'] > 0
    assert set(protocols) == {'iwae', 'fid', 'kid', 'parzen'}
    assert all(protocol['seed'] == config.seed for protocol in protocols.values())
    assert protocols['iwae']['importance_samples'] == 8
    assert protocols['iwae']['num_examples'] == 16
    checksum = inception.file_checksum(inception.inception_path())
    for name in ('fid', 'kid'):
        assert protocols[name]['feature_net_sha256'] == checksum
        assert protocols[name]['num_samples'] == 6
        assert protocols[name]['reference_split'] == 'test'
        assert protocols[name]['reference_examples'] == 6
    assert protocols['parzen']['sigma'] in config.eval.parzen_sigmas
    assert evaluate.evaluate(config, tmp_path / 'run')['metrics'] == metrics


def test_metrics_are_logged_at_their_cadence_during_training(data_dir, tmp_path):
    config = _eval_config(data_dir, tmp_path, ('iwae', 'parzen'))
    config.eval.every = 10
    results = train.train_and_evaluate(config, tmp_path)
    steps = [r['step'] for r in logs.read_metrics(tmp_path) if 'eval/iwae' in r]
    assert steps == [10, 20]
    assert {'eval/iwae', 'eval/parzen'} <= set(results['metrics'])
    assert set(results['metric_protocols']) == {'iwae', 'parzen'}


def test_parzen_reference_scores_real_images_once_per_run_and_class_means_add_up(
    data_dir, tmp_path, monkeypatch
):
    config = _eval_config(data_dir, tmp_path, ('parzen', 'parzen_reference'))
    config.eval.every = 10
    calls = []
    original = parzen.parzen_window
    monkeypatch.setattr(
        parzen, 'parzen_window', lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    results = train.train_and_evaluate(config, tmp_path)
    metrics, protocols = results['metrics'], results['metric_protocols']
    assert len(calls) == 3  # 'parzen' at steps 10 and 20, the model-free reference once
    records = [r for r in logs.read_metrics(tmp_path) if 'eval/parzen_reference' in r]
    assert [r['step'] for r in records] == [10, 20]
    assert records[0]['eval/parzen_reference'] == metrics['eval/parzen_reference']

    # The reference is the Parzen estimate with the first num_samples training images.
    real = data.load_split_array(config.dataset, 'train', 6)['image'] / 255.0
    test = data.load_split_array(
        config.dataset, config.dataset.eval_split, config.train.eval_examples
    )
    sigma = protocols['parzen_reference']['sigma']
    direct = parzen.parzen_log_likelihoods(real, test['image'] / 255.0, [sigma])[0]
    assert metrics['eval/parzen_reference'] == pytest.approx(direct.mean())
    assert protocols['parzen_reference']['centres_split'] == 'train'
    labels = test['label']
    for name in ('parzen', 'parzen_reference'):
        weighted = sum(
            (labels == c).sum() * metrics[f'eval/{name}_class_{c}'] for c in np.unique(labels)
        )
        assert weighted / len(labels) == pytest.approx(metrics[f'eval/{name}'])


def test_keep_best_keeps_and_evaluates_the_checkpoint_of_the_best_validation_value(
    data_dir, tmp_path
):
    config = _eval_config(data_dir, tmp_path, ('iwae', 'parzen'))
    config.eval.update(every=5, keep_best='parzen_validation', keep_best_mode='max')
    train.train_and_evaluate(config, tmp_path)
    logged = {
        r['step']: r['eval/parzen_validation']
        for r in logs.read_metrics(tmp_path)
        if 'eval/parzen_validation' in r
    }
    assert sorted(logged) == [5, 10, 15, 20]
    best_step = max(logged, key=lambda step: (logged[step], -step))  # the first of the best
    record = best_checkpoint.read_record(tmp_path)
    assert (record['step'], record['value']) == (best_step, logged[best_step])
    config.eval.checkpoint = 'best'
    results = evaluate.evaluate(config, tmp_path)
    assert results['step'] == best_step and results['checkpoint'] == record
    assert results['metrics']['eval/parzen_validation'] == pytest.approx(logged[best_step])
    # Each metric reports exactly the values metrics.OUTPUTS names (what keep_best may use).
    reported = {name.removeprefix('eval/') for name in results['metrics']}
    assert reported >= {value for name in ('iwae', 'parzen') for value in METRICS[name].outputs}
    assert 'kid' not in reported and 'fid' not in reported


@pytest.mark.parametrize('mode,values,kept', [('max', [2, 5, 3], 2), ('min', [2, 5, 1], 3)])
def test_best_checkpoint_keeps_the_best_value_across_restarts(tmp_path, mode, values, kept):
    def state(step):
        return {'w': np.full((3,), float(step))}

    keeper = best_checkpoint.BestCheckpoint(tmp_path, 'fid', mode)
    for step, value in enumerate(values, start=1):
        keeper.offer(step, {'fid': value}, state(step))
    assert not keeper.offer(4, {'fid': float('nan')}, state(4))
    keeper.close()
    resumed = best_checkpoint.BestCheckpoint(tmp_path, 'fid', mode)
    assert not resumed.offer(5, {'fid': values[kept - 1]}, state(5))  # ties keep the first
    resumed.close()
    with Checkpointer(tmp_path / best_checkpoint.DIRECTORY) as manager:
        assert manager.all_steps() == [kept]
        restored, step = manager.restore(state(0))
    assert step == kept and np.array_equal(restored['w'], state(kept)['w'])
    assert best_checkpoint.read_record(tmp_path)['value'] == values[kept - 1]


@pytest.mark.parametrize(
    'overrides,key',
    [
        ({'eval.keep_best': 'fid', 'eval.every': 10}, 'eval.keep_best'),  # not measured
        ({'eval.keep_best': 'parzen_validation'}, 'eval.every'),  # never measured in training
        ({'eval.keep_best_mode': 'best'}, 'eval.keep_best_mode'),
    ],
)
def test_keep_best_settings_that_cannot_work_are_config_errors(overrides, key):
    config = tiny('quickstart', '')
    config.eval.metrics = ('parzen',)
    config.update_from_flattened_dict(overrides)
    with pytest.raises(ConfigError) as error:
        schema.validate(config)
    assert error.value.key == key


@pytest.mark.parametrize(
    'metrics,allowed',
    [
        (('fid', 'bleu'), "'iwae' | 'fid' | 'kid' | 'precision_recall' | 'parzen'"),
        (('fid', 'fid'), 'distinct names'),
    ],
)
def test_bad_metric_names_are_config_errors(metrics, allowed):
    config = tiny('quickstart', '')
    config.eval.metrics = metrics
    with pytest.raises(ConfigError, match='config.eval.metrics=') as error:
        schema.validate(config)
    assert allowed in str(error.value)


@pytest.mark.parametrize(
    'config_name,metrics,needed',
    [
        ('dcgan_mnist', ('iwae',), 'a model with importance log-weights (an encoder)'),
        ('classifier', ('parzen',), 'a generative model'),
        ('dcgan_mnist', ('class_accuracy',), 'a class-conditional model'),
    ],
)
def test_metrics_a_model_cannot_serve_are_refused_before_any_compile(
    data_dir, tmp_path, config_name, metrics, needed
):
    config = tiny(config_name, data_dir)
    config.dataset.name = 'shapes'
    config.eval.metrics = metrics
    (tmp_path / 'config.json').write_text('{}')  # a classifier run is never read: refused first
    config.eval.classifier_workdir = str(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(f'{metrics[0]!r} needs {needed}')):
        runtime.prepare(config)


@pytest.mark.parametrize(
    'metrics,key,split,reason',
    [
        ((), 'dataset.eval_split', 'tset', "Unknown split 'tset'"),
        (('parzen',), 'eval.parzen_validation_split', 'train[x:]', 'Error parsing split'),
        (('parzen_reference',), 'eval.parzen_reference_split', 'valid', "Unknown split 'valid'"),
        (('kid',), 'eval.reference_split', 'train[5:5]', 'no examples'),
    ],
)
def test_splits_the_run_would_read_are_checked_before_any_work(
    data_dir, metrics, key, split, reason
):
    config = tiny('quickstart', data_dir)
    config.eval.metrics = metrics
    config.update_from_flattened_dict({key: split})
    with pytest.raises(ConfigError, match=reason) as error:
        runtime.prepare(config)
    assert (error.value.key, error.value.value) == (key, split)
    config.eval.metrics = ()  # a split no metric reads is not opened
    if key.startswith('eval.'):
        runtime.prepare(config)


def test_missing_inception_weights_stop_eval_before_any_work(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            'launch.py',
            '--config=configs/quickstart.py',
            f'--workdir={tmp_path}',
            '--mode=eval',
            "--config.eval.metrics=('kid',)",
            f'--config.eval.inception_path={tmp_path / "none.npz"}',
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: config.eval.inception_path='")


def _tiny_classifier(data_dir, shared_data, workdir):
    config = tiny('classifier', data_dir, str(shared_data), num_steps=60, batch_size=32)
    config.train.update(eval_every=60, checkpoint_every=60, sample_every=60, eval_examples=200)
    return train.train_and_evaluate(config, workdir)


def test_classifier_trains_and_serves_as_feature_net(data_dir, shared_data, tmp_path):
    trained = _tiny_classifier(data_dir, shared_data, tmp_path / 'classifier')
    assert trained['metrics']['eval/accuracy'] > 0.5  # 10 classes: chance is 0.1
    names = ('fid', 'kid', 'classifier_score', 'precision_recall')
    config = _eval_config(data_dir, tmp_path, names, 'dcgan_mnist')
    config.dataset.update(name='mnist', source_dir=str(shared_data))
    config.eval.update(
        feature_net='classifier',
        classifier_workdir=str(tmp_path / 'classifier'),
        num_samples=40,
        reference_examples=40,
    )
    train.train_and_evaluate(config, tmp_path / 'gan')
    results = evaluate.evaluate(config, tmp_path / 'gan')
    metrics, protocols = results['metrics'], results['metric_protocols']
    assert 1.0 <= metrics['eval/classifier_score'] <= 10.0
    assert metrics['eval/fid'] > 0
    assert 0 <= metrics['eval/precision'] <= 1 and 0 <= metrics['eval/recall'] <= 1
    net, _ = classifier_net.load(tmp_path / 'classifier', 8, (28, 28, 1))
    for name in names:
        assert protocols[name]['feature_net_sha256'] == net.checksum
    assert protocols['fid']['feature_net'] == 'classifier(mnist, step 60)/features'


def test_classifier_for_other_images_is_a_config_error(data_dir, shared_data, tmp_path):
    _tiny_classifier(data_dir, shared_data, tmp_path)
    with pytest.raises(ConfigError, match='config.eval.classifier_workdir=.*shape'):
        classifier_net.load(tmp_path, 8, (32, 32, 3))


def test_saved_configs_of_older_runs_load_on_todays_defaults(tmp_path):
    written = tiny('classifier', 'somewhere').to_dict()
    del written['eval']  # a run from before the eval block existed
    (tmp_path / 'config.json').write_text(json.dumps(written))
    config = schema.from_saved(json.loads((tmp_path / 'config.json').read_text()))
    schema.validate(config)
    assert config.model.name == 'classifier' and config.model.hidden == (32,)
    assert config.dataset.data_dir == 'somewhere' and config.eval.metrics == ()
