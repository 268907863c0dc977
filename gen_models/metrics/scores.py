"""Scores of generated images under a classifier's predictions ('classifier_score',
'class_accuracy'), with the classifier of `eval.classifier_workdir`."""

from __future__ import annotations

import numpy as np

from gen_models.metrics import features
from gen_models.metrics.registry import EvalContext, Metric, Protocols, Values


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


def _probabilities(context: EvalContext) -> np.ndarray:
    return features.generated_features(context, 'probabilities')


def _classifier_score(context: EvalContext) -> tuple[Values, Protocols]:
    protocol = {
        'metric': 'classifier score: exp(E KL(p(y|x) || p(y))), the Inception Score formula '
        'with a classifier trained on the dataset, one split',
        **features.sample_protocol(context, 'probabilities'),
    }
    value = classifier_score(_probabilities(context))
    return {'classifier_score': value}, {'classifier_score': protocol}


def _class_accuracy(context: EvalContext) -> tuple[Values, Protocols]:
    probabilities = _probabilities(context)
    protocol = {
        'metric': "class accuracy: how often the classifier's most probable class is the "
        'label the samples were generated for (balanced labels)',
        **features.sample_protocol(context, 'probabilities'),
    }
    value = class_accuracy(probabilities, context.requested_labels(len(probabilities)))
    return {'class_accuracy': value}, {'class_accuracy': protocol}


METRICS = (
    Metric(
        name='classifier_score',
        outputs=('classifier_score',),
        description='the Inception Score formula with a classifier trained on the dataset',
        compute=_classifier_score,
        requires=('generate',),
        feature_net='probabilities',
        keys=('num_samples', 'classifier_workdir'),
    ),
    Metric(
        name='class_accuracy',
        outputs=('class_accuracy',),
        description='how often that classifier recognises the class a conditional model was '
        'asked for (balanced labels)',
        compute=_class_accuracy,
        requires=('generate', 'num_classes'),
        feature_net='probabilities',
        keys=('num_samples', 'classifier_workdir'),
    ),
)
