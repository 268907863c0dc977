"""Improved precision and recall of generative models (Kynkäänniemi et al. 2019).

Each set's manifold is the union of balls around its points, each reaching the point's k-th
nearest neighbour within the set. Precision: the fraction of generated points inside the real
manifold; recall: the fraction of real points inside the generated manifold.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from gen_models import config as cfg
from gen_models.metrics import features
from gen_models.metrics.distances import knn_radii, squared_distances


def eval_defaults() -> ml_collections.ConfigDict:
    evaluation = ml_collections.ConfigDict()
    evaluation.pr_neighbours = 3  # precision_recall: k of the k-NN balls
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {'eval.pr_neighbours': cfg.at_least(1)}


def coverage(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 250):
    """Fraction of `queries` inside at least one ball (centre, squared radius)."""
    inside = 0
    for start in range(0, len(queries), chunk):
        distances = squared_distances(queries[start : start + chunk], centres)
        inside += int(np.sum(np.any(distances <= radii[None, :], axis=1)))
    return inside / len(queries)


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of `generated` against `real` features, (N, d) each, N > k."""
    real = np.asarray(real, np.float64)
    generated = np.asarray(generated, np.float64)
    if min(len(real), len(generated)) <= k:
        raise ValueError(f'need more than k={k} points per set')
    precision = coverage(generated, real, knn_radii(real, k))
    recall = coverage(real, generated, knn_radii(generated, k))
    return precision, recall


METRICS = (
    features.knn_metric(
        'precision_recall',
        ('precision', 'recall'),
        'improved precision and recall (Kynkaanniemi et al. 2019), k-NN balls',
        precision_recall,
        'pr_neighbours',
    ),
)
