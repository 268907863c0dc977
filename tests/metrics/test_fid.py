"""FID and KID against closed forms, scipy's sqrtm and direct O(n^2) sums."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gen_models.metrics import fid


def _random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    factor = rng.normal(size=(dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def test_fid_of_a_set_with_itself_is_zero_also_when_rank_deficient():
    rng = np.random.default_rng(0)
    for num, dim in ((2000, 16), (40, 128)):  # the second has a singular covariance
        features = rng.normal(size=(num, dim)) * rng.uniform(0.1, 3.0, dim) + 5.0
        assert abs(fid.fid(features, features)) < 1e-6 * np.trace(np.cov(features.T))


def test_sample_space_fid_equals_the_covariance_formula():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 128)) * rng.uniform(0.5, 2.0, 128)
    y = rng.normal(0.2, 1.0, size=(30, 128))
    expected = fid.frechet_distance(*fid.gaussian_moments(x), *fid.gaussian_moments(y))
    # The (d, d) route takes square roots of the round-off of ~100 zero eigenvalues.
    assert fid.fid(x, y) == pytest.approx(expected, rel=1e-7)


def test_frechet_distance_matches_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.1, 4.0, 8), rng.uniform(0.1, 4.0, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(
        expected, rel=1e-10
    )


def test_frechet_distance_matches_scipy_sqrtm_for_general_covariances():
    rng = np.random.default_rng(2)
    sigma1, sigma2 = _random_covariance(rng, 30), _random_covariance(rng, 30)
    mu1, mu2 = rng.normal(size=30), rng.normal(size=30)
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * root)
    assert fid.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


def test_fid_of_gaussian_samples_approaches_the_closed_form():
    rng = np.random.default_rng(3)
    dim = 4
    sigma1, sigma2 = _random_covariance(rng, dim), _random_covariance(rng, dim)
    mu2 = np.full(dim, 0.5)
    x = rng.multivariate_normal(np.zeros(dim), sigma1, size=200_000)
    y = rng.multivariate_normal(mu2, sigma2, size=200_000)
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    expected = mu2 @ mu2 + np.trace(sigma1 + sigma2 - 2 * root)
    assert fid.fid(x, y) == pytest.approx(expected, rel=0.02)


def _direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, one pair at a time."""
    dim = x.shape[1]

    def k(a, b):
        return (sum(a[i] * b[i] for i in range(dim)) / dim + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_direct_pairwise_sums():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 5)), rng.normal(0.3, 1.2, size=(25, 5))
    assert fid.mmd2_unbiased(x, y) == pytest.approx(_direct_mmd2(x, y), rel=1e-10)


def test_kid_averages_the_direct_estimate_over_seeded_subsets():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 4)), rng.normal(0.5, 1.0, size=(50, 4))
    mean, std = fid.kid(x, y, num_subsets=3, subset_size=20, seed=7)
    draws = np.random.default_rng(7)
    values = [
        _direct_mmd2(x[draws.choice(40, 20, replace=False)], y[draws.choice(50, 20, replace=False)])
        for _ in range(3)
    ]
    assert (mean, std) == pytest.approx((np.mean(values), np.std(values)), rel=1e-9)
    assert fid.kid(x, y, num_subsets=3, subset_size=20, seed=7) == (mean, std)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    same, same_std = fid.kid(x, y, num_subsets=20, subset_size=500)
    shifted, _ = fid.kid(x, y + 0.5, num_subsets=20, subset_size=500)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 10 * abs(same)


def test_kid_of_whole_sets_is_their_one_estimate():
    """Subsets as large as both sets are the sets themselves, reordered: one value, std 0."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(30, 4)), rng.normal(0.2, 1.0, size=(30, 4))
    mean, std = fid.kid(x, y, num_subsets=50, subset_size=1000)
    assert (mean, std) == (pytest.approx(_direct_mmd2(x, y), rel=1e-9), 0.0)
