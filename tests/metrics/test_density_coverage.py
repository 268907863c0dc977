"""Density and coverage against a brute-force reading of the definition, and the toy
behaviour Naeem et al. (2020) describe: one Gaussian sampled twice, and single outliers."""

from __future__ import annotations

import numpy as np
import pytest

from gen_models.metrics import density_coverage as dc
from gen_models.metrics import precision_recall as pr


def _brute_force(real, fake, k):
    radii = [
        sorted(np.linalg.norm(real[i] - real[j]) for j in range(len(real)) if j != i)[k - 1]
        for i in range(len(real))
    ]
    inside = [[np.linalg.norm(f - r) < radius for f in fake] for r, radius in zip(real, radii)]
    density = sum(map(sum, inside)) / (k * len(fake))
    coverage = np.mean([any(row) for row in inside])
    return density, coverage


@pytest.mark.parametrize('k', [1, 5])
def test_matches_brute_force_in_any_chunking(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(60, 3))
    fake = rng.normal(0.5, 0.7, size=(45, 3))  # narrower and shifted: dense, poorly covering
    expected = _brute_force(real, fake, k)
    for chunk in (7, 250):
        assert dc.density_coverage(real, fake, k, chunk) == pytest.approx(expected, rel=1e-12)


def test_a_set_against_itself_and_against_a_far_set():
    """Each open ball holds its centre and k - 1 neighbours of the set: density exactly 1."""
    points = np.random.default_rng(0).normal(size=(50, 4))
    assert dc.density_coverage(points, points, 5) == (1.0, 1.0)
    assert dc.density_coverage(points, points + 100.0, 5) == (0.0, 0.0)


def test_two_samples_of_one_gaussian_have_density_1_and_the_expected_coverage():
    """For M = N samples of one distribution E[density] = 1 and E[coverage] =
    1 - prod_{i=1..k} (N - i) / (2N - i), about 1 - (1/2)^k (Naeem et al. 2020, Sec. 4)."""
    n, k = 2000, 5
    values = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        values.append(dc.density_coverage(rng.normal(size=(n, 64)), rng.normal(size=(n, 64)), k))
    density, coverage = np.mean(values, axis=0)
    expected = 1 - np.prod([(n - i) / (2 * n - i) for i in range(1, k + 1)])
    assert expected == pytest.approx(1 - 0.5**k, abs=2e-3)
    assert abs(density - 1.0) < 0.03
    assert abs(coverage - expected) < 0.01


def _shifted_sets(mu: float, n: int = 1000, dim: int = 64):
    """Their outlier setting: real N(0, I), fake N(mu 1, I), and an outlier at 3 * 1."""
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(n, dim)), rng.normal(mu, 1.0, size=(n, dim))
    return real, fake, np.full((1, dim), 3.0)


def test_a_real_outlier_inflates_precision_but_adds_at_most_1_over_k_to_density():
    k = 5
    real, fake, outlier = _shifted_sets(0.5)
    with_outlier = np.concatenate([real[:-1], outlier])
    precision, _ = pr.precision_recall(real, fake, k)
    outlier_precision, _ = pr.precision_recall(with_outlier, fake, k)
    density, _ = dc.density_coverage(real, fake, k)
    outlier_density, _ = dc.density_coverage(with_outlier, fake, k)
    assert outlier_precision - precision > 0.5  # its huge ball takes in most samples
    assert 0.0 < outlier_density - density <= 1 / k  # one ball: 1/k per sample at most


def test_a_fake_outlier_inflates_recall_but_not_coverage():
    k = 5
    real, fake, outlier = _shifted_sets(-0.5)
    with_outlier = np.concatenate([fake[:-1], outlier])
    _, recall = pr.precision_recall(real, fake, k)
    _, outlier_recall = pr.precision_recall(real, with_outlier, k)
    _, coverage = dc.density_coverage(real, fake, k)
    _, outlier_coverage = dc.density_coverage(real, with_outlier, k)
    assert outlier_recall - recall > 0.5
    assert abs(outlier_coverage - coverage) <= 0.005


def test_too_few_real_points_are_refused():
    points = np.zeros((5, 2))
    with pytest.raises(ValueError, match='more than k=5 real points'):
        dc.density_coverage(points, points, 5)
