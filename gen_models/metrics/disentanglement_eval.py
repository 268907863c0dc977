"""The disentanglement metrics as `config.eval.metrics` entries, on the 'shapes' factor grid.

Each scores the model's `represent` (the encoder mean) on factors drawn from
`np.random.RandomState(eval.disentanglement_seed)`, so that every model of a study is scored
on the same draws. MIG, DCI, SAP and modularity/explicitness share one set of
`eval.disentanglement_train` + `eval.disentanglement_test` points per evaluation
(disentanglement_lib draws a set per metric; the estimators are the same). The defaults are
disentanglement_lib's sample counts; `configs/disentanglement.py` states the cut its CPU
study makes.
"""

from __future__ import annotations

import functools

import jax
import ml_collections
import numpy as np

from gen_models import config as cfg
from gen_models.data.factors import FACTOR_NAMES, ShapesFactors
from gen_models.metrics import disentanglement as scores
from gen_models.metrics.registry import EvalContext, Metric, Protocols, Values

DATASETS = ('shapes',)


def eval_defaults() -> ml_collections.ConfigDict:
    evaluation = ml_collections.ConfigDict()
    evaluation.disentanglement_seed = 0  # disentanglement metrics: seed of the factor draws
    evaluation.disentanglement_train = 10000  # MIG, DCI, SAP, modularity, TC: train codes
    evaluation.disentanglement_test = 5000  # DCI, SAP, explicitness: test codes
    evaluation.batch_points_train = 10000  # BetaVAE / FactorVAE scores: training points,
    # each a batch of eval.disentanglement_batch images sharing one factor
    evaluation.batch_points_test = 5000  # BetaVAE / FactorVAE scores: evaluation points
    evaluation.disentanglement_batch = 64  # BetaVAE / FactorVAE scores: images per point
    evaluation.disentanglement_bins = 20  # MIG, modularity: histogram bins of each code
    evaluation.factor_vae_variance_points = 10000  # FactorVAE score: global variance points
    evaluation.factor_vae_prune = 0.05  # FactorVAE score: std below which a dimension is off
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {
    'eval.disentanglement_train': cfg.at_least(2),
    'eval.disentanglement_test': cfg.at_least(2),
    'eval.batch_points_train': cfg.at_least(2),
    'eval.batch_points_test': cfg.at_least(1),
    'eval.disentanglement_batch': cfg.at_least(2),
    'eval.disentanglement_bins': cfg.at_least(2),
    'eval.factor_vae_variance_points': cfg.at_least(2),
    'eval.factor_vae_prune': cfg.at_least(0),
}


def representation(context: EvalContext, sampled: bool = False, batch_size: int = 500):
    """numpy uint8 images -> codes, through the jitted `represent` at one batch shape: the
    means, or (`sampled`) draws of q(z|x), call c with key fold_in(sample key, c)."""
    represent = jax.jit(context.model.represent)
    calls = iter(range(2**31))

    def apply(images: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            padded = np.concatenate(
                [chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)]
            )
            rng = jax.random.fold_in(context.sample_rng, next(calls)) if sampled else None
            out.append(np.asarray(represent(context.state, padded, rng))[: len(chunk)])
        return np.concatenate(out)

    return apply


def _ground_truth(context: EvalContext) -> ShapesFactors:
    return ShapesFactors(context.info.image_shape[0])


def _protocol(context: EvalContext, **counts) -> dict:
    evaluation = context.config.eval
    return {
        'representation': 'encoder mean',
        'factors': dict(zip(FACTOR_NAMES, _ground_truth(context).factors_num_values)),
        'factor_draws': f'uniform over the shapes grid, np.random.RandomState('
        f'{evaluation.disentanglement_seed})',
        **counts,
    }


def _codes(context: EvalContext):
    """(train codes, train factors, test codes, test factors), shared by the code metrics."""

    def draw():
        evaluation = context.config.eval
        state = np.random.RandomState(evaluation.disentanglement_seed)
        represent, truth = representation(context), _ground_truth(context)
        train = scores.factor_codes(truth, represent, evaluation.disentanglement_train, state)
        test = scores.factor_codes(truth, represent, evaluation.disentanglement_test, state)
        return (*train, *test)

    return context.memo('disentanglement_codes', draw)


def _code_counts(context: EvalContext) -> dict:
    evaluation = context.config.eval
    return {
        'train_points': evaluation.disentanglement_train,
        'test_points': evaluation.disentanglement_test,
    }


def _mig(context: EvalContext) -> tuple[Values, Protocols]:
    train_codes, train_factors, _, _ = _codes(context)
    bins = context.config.eval.disentanglement_bins
    protocol = _protocol(context, train_points=len(train_codes), histogram_bins=bins)
    return {'mig': scores.mig(train_codes, train_factors, bins)}, {'mig': protocol}


def _dci(context: EvalContext) -> tuple[Values, Protocols]:
    protocol = _protocol(context, **_code_counts(context), predictor='GradientBoostingClassifier')
    return scores.dci(*_codes(context)), {'dci': protocol}


def _sap(context: EvalContext) -> tuple[Values, Protocols]:
    protocol = _protocol(
        context, **_code_counts(context), predictor='LinearSVC(C=0.01, balanced), discrete'
    )
    return {'sap': scores.sap(*_codes(context))}, {'sap': protocol}


def _modularity(context: EvalContext) -> tuple[Values, Protocols]:
    bins = context.config.eval.disentanglement_bins
    protocol = _protocol(
        context, **_code_counts(context), histogram_bins=bins, predictor='LogisticRegression'
    )
    values = scores.modularity_explicitness(*_codes(context), bins=bins)
    return values, {'modularity_explicitness': protocol}


def _total_correlation(context: EvalContext) -> tuple[Values, Protocols]:
    """Gaussian TC of the mean and of the sampled representation, on the same images."""
    evaluation = context.config.eval
    truth = _ground_truth(context)
    state = np.random.RandomState(evaluation.disentanglement_seed)
    images = truth.sample_observations(evaluation.disentanglement_train, state)
    values = {
        name: scores.gaussian_total_correlation(representation(context, sampled)(images))
        for name, sampled in (('tc_mean', False), ('tc_sampled', True))
    }
    protocol = _protocol(
        context,
        train_points=evaluation.disentanglement_train,
        estimator="Gaussian of the codes' covariance (ddof=1) vs its marginals, nats",
    )
    return values, {'gaussian_total_correlation': protocol}


def _fixed_factor_score(name: str, context: EvalContext) -> tuple[Values, Protocols]:
    """The BetaVAE or FactorVAE score, from its own draws of `eval.disentanglement_seed`."""
    evaluation = context.config.eval
    state = np.random.RandomState(evaluation.disentanglement_seed)
    common = {
        'batch_size': evaluation.disentanglement_batch,
        'num_train': evaluation.batch_points_train,
        'num_eval': evaluation.batch_points_test,
    }
    if name == 'beta_vae_score':
        values = scores.beta_vae_score(
            _ground_truth(context), representation(context), state, **common
        )
        extra = {'predictor': 'LogisticRegression'}
    else:
        extra = {
            'num_variance_estimate': evaluation.factor_vae_variance_points,
            'prune_threshold': evaluation.factor_vae_prune,
        }
        values = scores.factor_vae_score(
            _ground_truth(context), representation(context), state, **common, **extra
        )
    return values, {name: _protocol(context, **common, **extra)}


def _metric(name, outputs, description, compute, keys) -> Metric:
    return Metric(
        name=name,
        outputs=outputs,
        description=description,
        compute=compute,
        requires=('represent',),
        datasets=DATASETS,
        keys=('disentanglement_seed', *keys),
    )


_COUNTS = ('disentanglement_train', 'disentanglement_test')
_BATCH_COUNTS = ('batch_points_train', 'batch_points_test', 'disentanglement_batch')
METRICS = (
    _metric(
        'beta_vae_score',
        ('beta_vae_score', 'beta_vae_train'),
        'BetaVAE score (Higgins et al. 2017): accuracy naming the factor two batches share',
        functools.partial(_fixed_factor_score, 'beta_vae_score'),
        _BATCH_COUNTS,
    ),
    _metric(
        'factor_vae_score',
        ('factor_vae_score', 'factor_vae_train', 'factor_vae_active_dims'),
        'FactorVAE score (Kim & Mnih 2018): majority vote of the least-varying dimension',
        functools.partial(_fixed_factor_score, 'factor_vae_score'),
        (*_BATCH_COUNTS, 'factor_vae_variance_points', 'factor_vae_prune'),
    ),
    _metric(
        'mig',
        ('mig',),
        'mutual information gap (Chen et al. 2018) of histogram-discretised codes',
        _mig,
        ('disentanglement_train', 'disentanglement_bins'),
    ),
    _metric(
        'dci',
        (
            'dci_disentanglement',
            'dci_completeness',
            'dci_informativeness_train',
            'dci_informativeness_test',
        ),
        'DCI (Eastwood & Williams 2018) from gradient-boosted-tree importances',
        _dci,
        _COUNTS,
    ),
    _metric(
        'sap',
        ('sap',),
        'SAP score (Kumar et al. 2018): top-two gap of single-code classifier accuracies',
        _sap,
        _COUNTS,
    ),
    _metric(
        'modularity_explicitness',
        ('modularity', 'explicitness_train', 'explicitness_test'),
        'modularity and explicitness (Ridgeway & Mozer 2018)',
        _modularity,
        (*_COUNTS, 'disentanglement_bins'),
    ),
    _metric(
        'gaussian_total_correlation',
        ('tc_mean', 'tc_sampled'),
        'total correlation of the mean and the sampled representation, as Gaussians',
        _total_correlation,
        ('disentanglement_train',),
    ),
)
