"""Density and coverage of generative models (Naeem et al. 2020).

Both are built on the k-NN balls of the real points alone, which makes them robust to
outliers where improved precision and recall are not: density is the mean number of real
balls a generated point falls in, divided by k (about 1 when the two distributions agree;
above 1 when samples crowd where real points are dense); coverage is the fraction of real
points whose ball holds at least one generated point. Balls are open (distance < radius),
as in the authors' code.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from gen_models import config as cfg
from gen_models.metrics import features
from gen_models.metrics.distances import knn_radii, squared_distances


def eval_defaults() -> ml_collections.ConfigDict:
    evaluation = ml_collections.ConfigDict()
    evaluation.dc_neighbours = 5  # density_coverage: k of the real k-NN balls (Naeem et al.: 5)
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {'eval.dc_neighbours': cfg.at_least(1)}


def density_coverage(
    real: np.ndarray, generated: np.ndarray, k: int = 5, chunk: int = 250
) -> tuple[float, float]:
    """(density, coverage) of `generated` against `real` features, (N, d) each, N > k;
    one pass over chunks of real points against all generated ones."""
    real = np.asarray(real, np.float64)
    generated = np.asarray(generated, np.float64)
    if len(real) <= k or len(generated) < 1:
        raise ValueError(f'need more than k={k} real points and at least one generated point')
    radii = knn_radii(real, k, chunk)
    inside_total, covered = 0, 0
    for start in range(0, len(real), chunk):
        distances = squared_distances(real[start : start + chunk], generated)
        inside = distances < radii[start : start + chunk, None]
        inside_total += int(inside.sum())
        covered += int(np.sum(inside.any(axis=1)))
    return inside_total / (k * len(generated)), covered / len(real)


METRICS = (
    features.knn_metric(
        'density_coverage',
        ('density', 'coverage'),
        'density and coverage (Naeem et al. 2020), k-NN balls of the reference features',
        density_coverage,
        'dc_neighbours',
    ),
)
