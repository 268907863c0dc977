"""The classifier score against its definition, and params checksums."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from gen_models.metrics import features, scores


def test_classifier_score_bounds_and_direct_kl():
    assert scores.classifier_score(np.full((8, 10), 0.1)) == pytest.approx(1.0)
    assert scores.classifier_score(np.eye(10)[np.arange(50) % 10]) == pytest.approx(10.0)
    probabilities = np.random.default_rng(0).dirichlet(np.ones(4) * 0.3, size=200)
    marginal = probabilities.mean(0)
    direct = np.exp(np.mean([scipy.stats.entropy(p, marginal) for p in probabilities]))
    assert scores.classifier_score(probabilities) == pytest.approx(direct, rel=1e-10)


def test_params_checksum_is_stable_and_sees_every_value_and_name():
    params = {'dense': {'kernel': np.arange(6.0).reshape(2, 3), 'bias': np.zeros(3)}}
    checksum = features.params_checksum(params)
    assert checksum == features.params_checksum({'dense': dict(reversed(params['dense'].items()))})
    changed = {'dense': {'kernel': params['dense']['kernel'] + 1e-7, 'bias': np.zeros(3)}}
    assert features.params_checksum(changed) != checksum
    assert features.params_checksum({'other': params['dense']}) != checksum


def test_class_accuracy_counts_argmax_matches():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=200)
    requested = np.arange(200) % 10
    expected = sum(int(np.argmax(p) == y) for p, y in zip(probabilities, requested)) / 200
    assert scores.class_accuracy(probabilities, requested) == pytest.approx(expected)
    assert scores.class_accuracy(np.eye(10)[requested], requested) == 1.0
