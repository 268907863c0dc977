"""Pairwise distances shared by the kernel-density and k-NN metrics."""

from __future__ import annotations

import numpy as np


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances between rows, clipped at 0 against
    round-off of the |a|^2 + |b|^2 - 2 a.b expansion."""
    distances = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(distances, 0.0)


def knn_radii(points: np.ndarray, k: int, chunk: int = 250) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point of the set: the
    squared radii of the k-NN balls of precision/recall and density/coverage."""
    radii = np.empty(len(points))
    for start in range(0, len(points), chunk):
        distances = squared_distances(points[start : start + chunk], points)
        # Index k, not k - 1: the nearest point of each row is itself, at distance 0.
        radii[start : start + chunk] = np.partition(distances, k, axis=1)[:, k]
    return radii
