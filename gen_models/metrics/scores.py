"""Scores of generated images under a classifier's predictions."""

from __future__ import annotations

import numpy as np


def classifier_score(probabilities: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))), the Inception Score (Salimans et al. 2016) with a given
    classifier's (N, classes) probabilities, over one split of all N images."""
    p = np.asarray(probabilities, np.float64)
    marginal = p.mean(axis=0)
    kl = np.sum(p * (np.log(np.clip(p, 1e-30, None)) - np.log(np.clip(marginal, 1e-30, None))), 1)
    return float(np.exp(kl.mean()))


def class_accuracy(probabilities: np.ndarray, requested: np.ndarray) -> float:
    """Fraction of images whose most probable class under the classifier is the requested
    label: how well a class-conditional generator honours its labels."""
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(requested)))
