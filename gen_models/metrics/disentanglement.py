"""The disentanglement metrics of disentanglement_lib (Locatello et al. 2019), same protocols.

A representation function maps observations to codes (N, D) (the encoder mean); a ground
truth (`gen_models.data.factors.ShapesFactors`, disentanglement_lib's `GroundTruthData`
interface) samples factor indices (N, F) and renders their observations. Every metric draws
from a `np.random.RandomState`, so a fixed seed scores every model on the same factors.

- BetaVAE score (Higgins et al. 2017): for a random factor k, two batches sharing factor k;
  the feature is the mean |code difference|; accuracy of a logistic regression predicting k.
- FactorVAE score (Kim & Mnih 2018): a batch with factor k fixed; the dimension of least
  variance (normalised by the global variance, dimensions with std < prune threshold
  dropped) votes for k; accuracy of the majority-vote classifier.
- MIG (Chen et al. 2018): per factor, the gap between the two largest mutual informations
  with the histogram-discretised codes, over the factor's entropy; averaged.
- DCI (Eastwood & Williams 2018): gradient-boosted-tree importances of codes for each factor;
  disentanglement and completeness are 1 - entropy of its rows and columns, weighted;
  informativeness the trees' accuracy.
- SAP (Kumar et al. 2018): accuracy of a `LinearSVC(C=0.01)` per (code, factor) pair on the
  test points; the mean gap between the two best codes per factor.
- Modularity and explicitness (Ridgeway & Mozer 2018): how much each code's mutual
  information concentrates on one factor; ROC-AUC of a logistic regression per factor.
- Gaussian total correlation (disentanglement_lib's unsupervised scores): KL between the
  Gaussian of the codes' covariance and the product of its marginals, on the mean or the
  sampled representation (what FactorVAE and beta-TCVAE penalise).

One difference from disentanglement_lib, a fix: its FactorVAE score indexes its votes with
the position of the arg-min among the *active* dimensions as if it were a dimension's index,
which is wrong whenever a dimension before it was pruned; here the vote goes to the
dimension itself (the two agree when no dimension is pruned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats
from sklearn import ensemble, linear_model, metrics, preprocessing, svm

Represent = Callable[[np.ndarray], np.ndarray]


def factor_codes(
    ground_truth: Any, represent: Represent, num: int, random_state, batch_size: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """(codes (num, D), factors (num, F)) of `num` uniform draws, rendered in batches."""
    codes, factors = [], []
    for start in range(0, num, batch_size):
        batch_factors, observations = ground_truth.sample(
            min(batch_size, num - start), random_state
        )
        factors.append(batch_factors)
        codes.append(np.asarray(represent(observations)))
    return np.concatenate(codes), np.concatenate(factors)


def histogram_discretize(codes: np.ndarray, bins: int) -> np.ndarray:
    """Each code dimension's values as the index of its `bins` equal-width histogram bin."""
    return np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T], axis=1)


def mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(D, F) discrete mutual information (nats) between code dimensions and factors."""
    return np.array(
        [[metrics.mutual_info_score(f, c) for f in factors.T] for c in discrete_codes.T]
    )


def entropies(factors: np.ndarray) -> np.ndarray:
    """(F,) discrete entropy (nats) of each factor."""
    return np.array([metrics.mutual_info_score(f, f) for f in factors.T])


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """Mutual information gap of codes (N, D) and factors (N, F)."""
    info = mutual_information(histogram_discretize(codes, bins), factors)
    top = np.sort(info, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropies(factors)))


def _importance_entropy_score(importance: np.ndarray) -> float:
    """1 - entropy (base: number of columns) of each row of `importance`, weighted by the
    row's share of the total (uniform weights when all importances are 0)."""
    per_row = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    weights = importance if importance.sum() else np.ones_like(importance)
    return float(np.sum(per_row * weights.sum(axis=1) / weights.sum()))


def dci(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
) -> dict[str, float]:
    """Disentanglement, completeness and informativeness (train and test accuracy) from one
    `GradientBoostingClassifier` (scikit-learn's defaults) per factor; its split ties are
    broken by a fixed seed (disentanglement_lib leaves it unseeded), so scores repeat."""
    importance = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    train_accuracy, test_accuracy = [], []
    for j in range(train_factors.shape[1]):
        trees = ensemble.GradientBoostingClassifier(random_state=0)
        trees.fit(train_codes, train_factors[:, j])
        importance[:, j] = np.abs(trees.feature_importances_)
        train_accuracy.append(np.mean(trees.predict(train_codes) == train_factors[:, j]))
        test_accuracy.append(np.mean(trees.predict(test_codes) == test_factors[:, j]))
    return {
        'dci_disentanglement': _importance_entropy_score(importance),
        'dci_completeness': _importance_entropy_score(importance.T),
        'dci_informativeness_train': float(np.mean(train_accuracy)),
        'dci_informativeness_test': float(np.mean(test_accuracy)),
    }


def sap(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
) -> float:
    """SAP score with discrete factors: test accuracy of a balanced `LinearSVC(C=0.01)` of
    each factor from each single code dimension; mean over factors of the top-two gap."""
    scores = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    for i in range(train_codes.shape[1]):
        for j in range(train_factors.shape[1]):
            classifier = svm.LinearSVC(C=0.01, class_weight='balanced', random_state=0)
            classifier.fit(train_codes[:, i : i + 1], train_factors[:, j])
            predicted = classifier.predict(test_codes[:, i : i + 1])
            scores[i, j] = np.mean(predicted == test_factors[:, j])
    top = np.sort(scores, axis=0)
    return float(np.mean(top[-1] - top[-2]))


def modularity(info: np.ndarray) -> float:
    """Mean over code dimensions of 1 - (sum of squared MI but the largest) / (largest
    squared MI * (F - 1)); 0 for a dimension with no information."""
    squared = np.square(info)
    largest = np.max(squared, axis=1)
    with np.errstate(divide='ignore', invalid='ignore'):
        per_code = 1.0 - (np.sum(squared, axis=1) - largest) / (largest * (squared.shape[1] - 1))
    return float(np.mean(np.where(largest == 0, 0.0, per_code)))


def _roc_auc(classifier, codes: np.ndarray, labels: np.ndarray) -> float:
    binarizer = preprocessing.MultiLabelBinarizer()
    return float(
        metrics.roc_auc_score(
            binarizer.fit_transform(labels[:, None]), classifier.predict_proba(codes)
        )
    )


def modularity_explicitness(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    bins: int = 20,
) -> dict[str, float]:
    """Modularity (histogram MI of the train codes) and explicitness: ROC-AUC of a logistic
    regression per factor on codes standardised by the train statistics."""
    info = mutual_information(histogram_discretize(train_codes, bins), train_factors)
    centre, scale = train_codes.mean(axis=0), train_codes.std(axis=0)
    train_norm, test_norm = (train_codes - centre) / scale, (test_codes - centre) / scale
    train_auc, test_auc = [], []
    for j in range(train_factors.shape[1]):
        classifier = linear_model.LogisticRegression().fit(train_norm, train_factors[:, j])
        train_auc.append(_roc_auc(classifier, train_norm, train_factors[:, j]))
        test_auc.append(_roc_auc(classifier, test_norm, test_factors[:, j]))
    return {
        'modularity': modularity(info),
        'explicitness_train': float(np.mean(train_auc)),
        'explicitness_test': float(np.mean(test_auc)),
    }


def gaussian_total_correlation(codes: np.ndarray) -> float:
    """0.5 * (sum log diag(C) - log det C) of the sample covariance C (ddof=1) of (N, D)."""
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def _fixed_factor_batches(
    ground_truth: Any, num: int, batch_size: int, random_state, paired: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(fixed factor per point (num,), factors (num, B, F), second factors or None): point p
    fixes factor k_p, across a pair of batches (`paired`) or within one batch."""
    fixed = random_state.randint(ground_truth.num_factors, size=num)
    first = ground_truth.sample_factors(num * batch_size, random_state)
    first = first.reshape(num, batch_size, -1)
    rows = np.arange(num)
    if not paired:
        first[rows, :, fixed] = first[rows, 0, fixed][:, None]
        return fixed, first, None
    second = ground_truth.sample_factors(num * batch_size, random_state)
    second = second.reshape(num, batch_size, -1)
    second[rows, :, fixed] = first[rows, :, fixed]
    return fixed, first, second


def _codes_of(ground_truth: Any, represent: Represent, factors: np.ndarray) -> np.ndarray:
    """Codes (..., D) of factor indices (..., F)."""
    flat = factors.reshape(-1, factors.shape[-1])
    codes = np.asarray(represent(ground_truth.sample_observations_from_factors(flat)))
    return codes.reshape(*factors.shape[:-1], codes.shape[-1])


def _chunks(num: int, size: int):
    for start in range(0, num, size):
        yield min(size, num - start)


def beta_vae_features(
    ground_truth: Any, represent: Represent, num: int, batch_size: int, random_state
) -> tuple[np.ndarray, np.ndarray]:
    """(features (num, D), labels (num,)): mean |code difference| of batch pairs sharing the
    label's factor."""
    features, labels = [], []
    for chunk in _chunks(num, max(1, 8192 // batch_size)):
        fixed, first, second = _fixed_factor_batches(
            ground_truth, chunk, batch_size, random_state, paired=True
        )
        difference = _codes_of(ground_truth, represent, first) - _codes_of(
            ground_truth, represent, second
        )
        features.append(np.mean(np.abs(difference), axis=1))
        labels.append(fixed)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(
    ground_truth: Any,
    represent: Represent,
    random_state,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
) -> dict[str, float]:
    """Train and eval accuracy of a logistic regression naming the fixed factor."""
    train_x, train_y = beta_vae_features(
        ground_truth, represent, num_train, batch_size, random_state
    )
    model = linear_model.LogisticRegression(random_state=random_state).fit(train_x, train_y)
    eval_x, eval_y = beta_vae_features(ground_truth, represent, num_eval, batch_size, random_state)
    return {
        'beta_vae_train': float(np.mean(model.predict(train_x) == train_y)),
        'beta_vae_score': float(model.score(eval_x, eval_y)),
    }


def factor_vae_votes(
    ground_truth: Any,
    represent: Represent,
    num: int,
    batch_size: int,
    random_state,
    global_variances: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """(F, D) votes: for each point, (fixed factor, active dimension of least normalised
    variance in its batch)."""
    votes = np.zeros((ground_truth.num_factors, len(global_variances)), np.int64)
    active_dims = np.flatnonzero(active)
    for chunk in _chunks(num, max(1, 8192 // batch_size)):
        fixed, factors, _ = _fixed_factor_batches(
            ground_truth, chunk, batch_size, random_state, paired=False
        )
        local = np.var(_codes_of(ground_truth, represent, factors), axis=1, ddof=1)
        chosen = active_dims[np.argmin(local[:, active] / global_variances[active], axis=1)]
        np.add.at(votes, (fixed, chosen), 1)
    return votes


def factor_vae_score(
    ground_truth: Any,
    represent: Represent,
    random_state,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
) -> dict[str, float]:
    """Train and eval accuracy of the majority vote, and the number of active dimensions."""
    observations = ground_truth.sample_observations(num_variance_estimate, random_state)
    global_variances = np.var(np.asarray(represent(observations)), axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {'factor_vae_train': 0.0, 'factor_vae_score': 0.0, 'factor_vae_active_dims': 0}
    votes = [
        factor_vae_votes(
            ground_truth, represent, num, batch_size, random_state, global_variances, active
        )
        for num in (num_train, num_eval)
    ]
    classifier = np.argmax(votes[0], axis=0)
    columns = np.arange(votes[0].shape[1])
    accuracy = [float(np.sum(v[classifier, columns]) / np.sum(v)) for v in votes]
    return {
        'factor_vae_train': accuracy[0],
        'factor_vae_score': accuracy[1],
        'factor_vae_active_dims': int(active.sum()),
    }
