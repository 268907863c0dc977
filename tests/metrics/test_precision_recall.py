"""k-NN precision and recall against a brute-force reading of the definition."""

from __future__ import annotations

import numpy as np
import pytest

from gen_models.metrics import precision_recall as pr


def _brute_force(real, fake, k):
    def radius(points, i):
        others = [np.linalg.norm(points[i] - points[j]) for j in range(len(points)) if j != i]
        return sorted(others)[k - 1]

    real_radii = [radius(real, i) for i in range(len(real))]
    fake_radii = [radius(fake, i) for i in range(len(fake))]
    precision = np.mean(
        [any(np.linalg.norm(f - r) <= rr for r, rr in zip(real, real_radii)) for f in fake]
    )
    recall = np.mean(
        [any(np.linalg.norm(r - f) <= fr for f, fr in zip(fake, fake_radii)) for r in real]
    )
    return precision, recall


@pytest.mark.parametrize('k', [1, 3])
def test_matches_brute_force(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(60, 3))
    fake = rng.normal(0.8, 0.5, size=(45, 3))  # narrower and shifted: precision > recall
    precision, recall = pr.precision_recall(real, fake, k)
    assert (precision, recall) == pytest.approx(_brute_force(real, fake, k))
    assert precision > recall


def test_same_set_is_perfect_and_far_sets_score_zero():
    points = np.random.default_rng(0).normal(size=(50, 4))
    assert pr.precision_recall(points, points, 3) == (1.0, 1.0)
    assert pr.precision_recall(points, points + 100.0, 3) == (0.0, 0.0)
