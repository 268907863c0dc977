"""Parity with the tools users compare against, on fixed feature sets.

pytorch-fid and torch-fidelity need torchvision, so their published formulas are written out
here from their code: pytorch-fid's `calculate_frechet_distance` (moments of float64
activations, `scipy.linalg.sqrtm` of the covariance product, an eps offset when that is not
finite, a check of the imaginary part) and torch-fidelity's KID (unbiased MMD^2 with the
polynomial kernel of degree 3, gamma 1/d, coef0 1, mean and std over random subsets of one
size). `prdc` (Naeem et al.'s package) is the authors' own precision, recall, density and
coverage.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gen_models import metrics
from gen_models.metrics import density_coverage as dc
from gen_models.metrics import fid
from gen_models.metrics import precision_recall as pr


def _pytorch_fid(act1: np.ndarray, act2: np.ndarray, eps: float = 1e-6) -> float:
    """pytorch-fid: statistics of float64 activations, then `calculate_frechet_distance`."""
    act1, act2 = act1.astype(np.float64), act2.astype(np.float64)
    mu1, sigma1 = np.mean(act1, axis=0), np.cov(act1, rowvar=False)
    mu2, sigma2 = np.mean(act2, axis=0), np.cov(act2, rowvar=False)
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f'Imaginary component {np.max(np.abs(covmean.imag))}')
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _torch_fidelity_mmd2(f1: np.ndarray, f2: np.ndarray) -> float:
    """torch-fidelity's `polynomial_mmd`: `mmd2(K_XX, K_XY, K_YY)`, unbiased, one size m."""

    def kernel(x, y, degree=3, gamma=None, coef0=1):
        gamma = 1.0 / x.shape[1] if gamma is None else gamma
        return (np.matmul(x, y.T) * gamma + coef0) ** degree

    k_xx, k_xy, k_yy = kernel(f1, f1), kernel(f1, f2), kernel(f2, f2)
    m = k_xx.shape[0]
    kt_xx_sum = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    return float((kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2 * k_xy.sum(axis=0).sum() / (m * m))


def _torch_fidelity_kid(f1, f2, subsets, size, draws) -> tuple[float, float]:
    """torch-fidelity's `kid_features_to_metric`, with the subset draws of `draws`."""
    mmds = np.zeros(subsets)
    for i in range(subsets):
        a = f1[draws.choice(len(f1), size, replace=False)]
        b = f2[draws.choice(len(f2), size, replace=False)]
        mmds[i] = _torch_fidelity_mmd2(a, b)
    return float(np.mean(mmds)), float(np.std(mmds))


def _features(rng: np.random.Generator, num: int, dim: int, shift: float) -> np.ndarray:
    """Non-negative, correlated float32 features, like a ReLU network's."""
    mix = np.random.default_rng(99).normal(size=(dim, dim)) / np.sqrt(dim)
    return np.maximum(rng.normal(shift, 1.0 + shift, size=(num, dim)) @ mix, 0).astype(np.float32)


@pytest.mark.parametrize(
    'num,dim,rel',
    [
        (2000, 64, 1e-11),  # full-rank covariances (measured 1e-13)
        (300, 256, 1e-11),  # barely full rank (measured 4e-15)
        # Singular covariances: sqrtm of a singular product loses digits; fid.fid works
        # in sample space instead (exact, tests/metrics/test_fid.py) (measured 5e-8).
        (120, 256, 1e-6),
    ],
)
def test_fid_equals_pytorch_fid(num, dim, rel):
    rng = np.random.default_rng(num)
    x, y = _features(rng, num, dim, 0.0), _features(rng, num, dim, 0.1)
    assert fid.fid(x, y) == pytest.approx(_pytorch_fid(x, y), rel=rel)


def test_kid_equals_torch_fidelity_on_the_same_subsets():
    rng = np.random.default_rng(1)
    x, y = _features(rng, 600, 256, 0.0), _features(rng, 500, 256, 0.05)
    ours = fid.kid(x, y, num_subsets=20, subset_size=200, seed=3)
    wide = x.astype(np.float64), y.astype(np.float64)
    # The same draws as fid.kid: rows of x, then of y, from default_rng(seed) per subset.
    expected = _torch_fidelity_kid(*wide, 20, 200, np.random.default_rng(3))
    assert ours == pytest.approx(expected, rel=1e-11)  # measured 1.1e-13
    # torch-fidelity itself multiplies float32 features in float32 (measured 1.4e-5).
    assert ours == pytest.approx(_torch_fidelity_kid(x, y, 20, 200, np.random.default_rng(3)), 1e-4)
    assert fid.mmd2_unbiased(x[:150], y[:150]) == pytest.approx(
        _torch_fidelity_mmd2(x[:150].astype(np.float64), y[:150].astype(np.float64)), rel=1e-11
    )


def test_kid_defaults_are_torch_fidelitys():
    defaults = metrics.eval_defaults()
    assert (defaults.kid_subsets, defaults.kid_subset_size) == (100, 1000)


@pytest.mark.parametrize('k', [3, 5])
def test_precision_recall_density_coverage_equal_prdc(k):
    prdc = pytest.importorskip('prdc', reason='prdc (the test extra) is not installed')
    rng = np.random.default_rng(k)
    real = _features(rng, 600, 32, 0.0).astype(np.float64)
    fake = _features(rng, 520, 32, 0.2).astype(np.float64)  # more than one 250-row chunk
    expected = prdc.compute_prdc(real, fake, k)
    precision, recall = pr.precision_recall(real, fake, k)
    density, coverage = dc.density_coverage(real, fake, k)
    assert (precision, recall, coverage) == (
        expected['precision'],
        expected['recall'],
        expected['coverage'],
    )
    assert density == pytest.approx(expected['density'], rel=1e-12)
    assert 0.05 < coverage < 0.95 and 0.05 < precision < 0.95  # neither trivially 0 nor 1


def test_density_coverage_default_k_is_the_papers():
    assert metrics.eval_defaults().dc_neighbours == 5
