"""Fréchet distance (FID) and kernel distance (KID) between two sets of features.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to the features:
|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The trace of the matrix square root is
computed from symmetric eigen-decompositions in float64: tr((S1 S2)^(1/2)) is the sum of the
square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2), which is symmetric positive
semi-definite, so no complex parts or non-symmetric solvers arise (rank-deficient covariances
of fewer samples than dimensions included).

KID (Binkowski et al. 2018) is the unbiased estimate of the squared MMD with the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets. Both are metrics
of generated images in the features of `eval.feature_net` ('fid', 'kid').
"""

from __future__ import annotations

import ml_collections
import numpy as np

from gen_models import config as cfg
from gen_models.metrics import features
from gen_models.metrics.registry import EvalContext, Metric, Protocols, Values


def eval_defaults() -> ml_collections.ConfigDict:
    evaluation = ml_collections.ConfigDict()
    evaluation.kid_subsets = 100  # kid: random subset pairs averaged
    evaluation.kid_subset_size = 1000  # kid: images per subset
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {
    'eval.kid_subsets': cfg.at_least(1),
    'eval.kid_subset_size': cfg.at_least(2),
}


def gaussian_moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, d) features in float64; the covariance divides by N - 1."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f'need (N >= 2, d) features, got shape {features.shape}')
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix; round-off negatives become 0."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((sigma1 sigma2)^(1/2)) for symmetric PSD sigma1, sigma2."""
    root1 = _psd_sqrt(np.asarray(sigma1, np.float64))
    inner = root1 @ np.asarray(sigma2, np.float64) @ root1
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """The Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    diff = mu1 - mu2
    return float(
        diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    )


def fid(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two (N, d) feature sets.

    With fewer samples than dimensions in both sets (e.g. 1,000 Inception features of 2,048
    dimensions) the trace term is computed in sample space: with S1 = X^T X / (N1 - 1) and S2 = Y^T Y / (N2 - 1)
    for centred X, Y, tr((S1 S2)^(1/2)) is the sum of singular values of X Y^T, divided by
    sqrt((N1 - 1)(N2 - 1)); an (N1, N2) SVD instead of (d, d) eigen-decompositions.
    """
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if max(len(x), len(y)) >= x.shape[1] or min(len(x), len(y)) < 2:
        return frechet_distance(*gaussian_moments(x), *gaussian_moments(y))
    diff = x.mean(axis=0) - y.mean(axis=0)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    scale1, scale2 = len(x) - 1, len(y) - 1
    trace_sqrt = np.linalg.svd(x @ y.T, compute_uv=False).sum() / np.sqrt(scale1 * scale2)
    return float(diff @ diff + (x**2).sum() / scale1 + (y**2).sum() / scale2 - 2.0 * trace_sqrt)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x.y / d + 1)^3 for every pair of rows: KID's kernel."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimate of MMD^2 between samples x (m, d) and y (n, d), m, n >= 2:
    within-set kernel means over pairs i != j, cross-set mean over all pairs."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kid(
    features1: np.ndarray,
    features2: np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: (mean, std) of `mmd2_unbiased` over `num_subsets` pairs of random subsets.

    Each subset holds min(subset_size, N1, N2) rows drawn without replacement; the draws are
    a function of `seed`, so the value is repeatable. When that is all rows of both sets,
    every pair is the same sample (the estimate ignores order): it is computed once, std 0.
    """
    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ValueError(f'KID needs at least 2 features per set, got {size}')
    if size == len(features1) == len(features2):
        return float(mmd2_unbiased(features1, features2)), 0.0
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            features1[rng.choice(len(features1), size, replace=False)],
            features2[rng.choice(len(features2), size, replace=False)],
        )
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _fid(context: EvalContext) -> tuple[Values, Protocols]:
    value = fid(features.generated_features(context), features.reference(context))
    protocol = {'metric': 'FID (Heusel et al. 2017)', **features.feature_protocol(context)}
    return {'fid': value}, {'fid': protocol}


def _kid(context: EvalContext) -> tuple[Values, Protocols]:
    config = context.config
    generated, reference = features.generated_features(context), features.reference(context)
    mean, std = kid(
        generated,
        reference,
        num_subsets=config.eval.kid_subsets,
        subset_size=config.eval.kid_subset_size,
        seed=config.seed,
    )
    protocol = {
        'metric': 'KID (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel; '
        'kid_std is the std over subsets',
        'subsets': config.eval.kid_subsets,
        'subset_size': min(config.eval.kid_subset_size, len(generated), len(reference)),
        **features.feature_protocol(context),
    }
    return {'kid': mean, 'kid_std': std}, {'kid': protocol}


_FEATURE_KEYS = ('num_samples', 'reference_split', 'reference_examples', 'feature_net')
METRICS = (
    Metric(
        name='fid',
        outputs=('fid',),
        description='FID of generated images vs a reference split',
        compute=_fid,
        requires=('generate',),
        feature_net='features',
        splits=features.reference_splits,
        keys=_FEATURE_KEYS,
    ),
    Metric(
        name='kid',
        outputs=('kid', 'kid_std'),
        description='KID (unbiased MMD^2, cubic kernel, random subsets) of generated images vs '
        'a reference split',
        compute=_kid,
        requires=('generate',),
        feature_net='features',
        splits=features.reference_splits,
        keys=(*_FEATURE_KEYS, 'kid_subsets', 'kid_subset_size'),
    ),
)
