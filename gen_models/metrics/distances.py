"""Pairwise distances shared by the kernel-density and k-NN metrics."""

from __future__ import annotations

import numpy as np


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances between rows, clipped at 0 against
    round-off of the |a|^2 + |b|^2 - 2 a.b expansion."""
    distances = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(distances, 0.0)
