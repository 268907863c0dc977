"""Improved precision and recall of generative models (Kynkäänniemi et al. 2019).

Each set's manifold is the union of balls around its points, each reaching the point's k-th
nearest neighbour within the set. Precision: the fraction of generated points inside the real
manifold; recall: the fraction of real points inside the generated manifold.
"""

from __future__ import annotations

import numpy as np

from gen_models.metrics.distances import squared_distances


def knn_radii(points: np.ndarray, k: int, chunk: int = 250) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point of the set."""
    radii = np.empty(len(points))
    for start in range(0, len(points), chunk):
        distances = squared_distances(points[start : start + chunk], points)
        # Index k, not k - 1: the nearest point of each row is itself, at distance 0.
        radii[start : start + chunk] = np.partition(distances, k, axis=1)[:, k]
    return radii


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
