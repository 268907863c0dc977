"""Intra-FID against a hand computation, and what it refuses."""

from __future__ import annotations

import re

import numpy as np
import pytest

from experiments import runtime
from gen_models.config import ConfigError
from gen_models.metrics import fid, intra_fid
from tests.tiny import tiny


def _labelled(rng, num, classes, dim=6, shift=0.0):
    labels = rng.permutation(np.arange(num) % classes)
    return rng.normal(labels[:, None] + shift, 1.0, size=(num, dim)), labels


def test_intra_fid_is_the_mean_of_per_class_fids():
    rng = np.random.default_rng(0)
    generated, generated_labels = _labelled(rng, 90, 3, shift=0.3)
    reference, reference_labels = _labelled(rng, 150, 3)
    mean, per_class = intra_fid.intra_fid(
        generated, generated_labels, reference, reference_labels, 3
    )
    by_hand = [
        fid.fid(generated[generated_labels == c], reference[reference_labels == c])
        for c in range(3)
    ]
    assert per_class == by_hand
    assert mean == pytest.approx(np.mean(by_hand), rel=1e-15)


def test_samples_of_the_wrong_classes_score_badly_where_pooled_fid_cannot_tell():
    """The same images, each labelled with the next class: pooled FID is unchanged."""
    rng = np.random.default_rng(2)
    generated, labels = _labelled(rng, 90, 3)
    reference, reference_labels = _labelled(rng, 150, 3)
    right, _ = intra_fid.intra_fid(generated, labels, reference, reference_labels, 3)
    wrong, _ = intra_fid.intra_fid(generated, (labels + 1) % 3, reference, reference_labels, 3)
    assert wrong > 5 * right and wrong > 3.0  # class means one apart in each of 6 dimensions


def test_a_class_with_fewer_than_two_of_either_set_is_refused():
    rng = np.random.default_rng(1)
    generated, generated_labels = _labelled(rng, 30, 3)
    reference, reference_labels = _labelled(rng, 30, 3)
    reference_labels[reference_labels == 2] = 0
    with pytest.raises(ValueError, match='class 2 has 10 samples and 0 reference images'):
        intra_fid.intra_fid(generated, generated_labels, reference, reference_labels, 3)


def test_an_unconditional_model_is_refused_before_any_compile(data_dir, tmp_path):
    config = tiny('dcgan_mnist', data_dir)
    config.dataset.name = 'shapes'
    config.eval.update(metrics=('intra_fid',), feature_net='classifier')
    (tmp_path / 'config.json').write_text('{}')  # never read: refused first
    config.eval.classifier_workdir = str(tmp_path)
    needed = "'intra_fid' needs a class-conditional model"
    with pytest.raises(ConfigError, match=re.escape(needed)):
        runtime.prepare(config)
