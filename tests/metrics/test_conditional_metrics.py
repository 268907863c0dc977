"""End to end: a tiny class-conditional GAN on 'shapes', evaluated with 'intra_fid' and
'density_coverage' in the features of a tiny classifier; results.json holds the values and
protocols, and they are what the metrics' functions give on the same samples by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import evaluate, runtime, train
from gen_models import data, metrics
from gen_models.metrics import classifier_net, density_coverage, features, fid
from tests.tiny import tiny

CLASSES = 3  # square, ellipse, heart


def _tiny_shapes_classifier(data_dir, workdir):
    """60 steps: features of a barely trained net (about 45% accurate), enough to check the
    metrics against a hand computation in the same features."""
    config = tiny('classifier', data_dir, num_steps=60, batch_size=32)
    config.dataset.name = 'shapes'
    config.train.update(eval_every=60, checkpoint_every=60, sample_every=60, eval_examples=200)
    return train.train_and_evaluate(config, workdir)


def _cgan_config(data_dir, tmp_path):
    config = tiny('cgan_mnist', data_dir, num_steps=8, eval_every=8, checkpoint_every=8)
    config.dataset.name = 'shapes'
    config.eval.update(
        metrics=('intra_fid', 'density_coverage'),
        num_samples=30,  # 10 per class
        reference_split='test',
        reference_examples=60,
        stats_dir=str(tmp_path / 'stats'),
        feature_net='classifier',
        classifier_workdir=str(tmp_path / 'classifier'),
        feature_batch_size=8,
    )
    return config


def _by_hand(config, workdir, net):
    """Generated and reference features and reference labels, outside the registry."""
    run = runtime.prepare(config)
    state, _ = runtime.restore_latest(run, workdir)
    context = metrics.EvalContext(
        config=run.config,
        info=run.info,
        model=run.model,
        state=state,
        sample_rng=run.keys['sample'],
        evaluate=lambda step: {},
        load_feature_net=lambda kind: net,
        protocol={},
        run_cache={},
    )
    generated = features.extract_features(net, context.uint8_samples())
    reference = data.load_split_array(config.dataset, 'test', 60)
    return generated, features.extract_features(net, reference['image']), reference['label']


def test_intra_fid_and_density_coverage_of_a_conditional_gan(data_dir, tmp_path):
    _tiny_shapes_classifier(data_dir, tmp_path / 'classifier')
    config = _cgan_config(data_dir, tmp_path)
    train.train_and_evaluate(config, tmp_path / 'cgan')
    results = evaluate.evaluate(config, tmp_path / 'cgan')
    written = json.loads((tmp_path / 'cgan' / 'results.json').read_text())
    values, protocols = written['metrics'], written['metric_protocols']
    assert (values, protocols) == (results['metrics'], results['metric_protocols'])
    assert set(protocols) == {'intra_fid', 'density_coverage'}

    net, _ = classifier_net.load(tmp_path / 'classifier', 8, (28, 28, 1))
    generated, reference, labels = _by_hand(config, tmp_path / 'cgan', net)
    requested = np.arange(30) % CLASSES
    per_class = [fid.fid(generated[requested == c], reference[labels == c]) for c in range(CLASSES)]
    for c in range(CLASSES):
        assert values[f'eval/intra_fid_class_{c}'] == pytest.approx(per_class[c], rel=1e-6)
    assert values['eval/intra_fid'] == pytest.approx(np.mean(per_class), rel=1e-6)
    assert values['eval/intra_fid'] > 0
    density, coverage = density_coverage.density_coverage(reference, generated, 5)
    assert values['eval/density'] == pytest.approx(density, rel=1e-6)
    assert values['eval/coverage'] == pytest.approx(coverage, rel=1e-6)
    assert values['eval/density'] >= 0 and 0 <= values['eval/coverage'] <= 1

    intra = protocols['intra_fid']
    assert intra['num_classes'] == CLASSES
    assert intra['samples_per_class'] == [10, 10, 10]
    assert intra['reference_per_class'] == np.bincount(labels, minlength=CLASSES).tolist()
    assert sum(intra['reference_per_class']) == intra['reference_examples'] == 60
    assert protocols['density_coverage']['neighbours'] == 5
    for protocol in protocols.values():
        assert protocol['feature_net_sha256'] == net.checksum
        assert protocol['feature_net'] == 'classifier(shapes, step 60)/features'
        assert (protocol['num_samples'], protocol['reference_split']) == (30, 'test')
        assert protocol['seed'] == config.seed
