"""Intra-FID (Miyato & Koyama 2018): the FID of each class's samples against the reference
images of that class, averaged over classes, for class-conditional models.

The samples are the evaluation's balanced set (`EvalContext.requested_labels`: 0, 1, ..,
C-1, 0, ..); the reference features are those FID uses (`features.reference`, one cache),
split by the labels of the reference images, which are read once per run.
"""

from __future__ import annotations

import numpy as np

from gen_models import data
from gen_models.metrics import features, fid
from gen_models.metrics.registry import EvalContext, Metric, Protocols, Values


def intra_fid(
    generated: np.ndarray,
    generated_labels: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    num_classes: int,
) -> tuple[float, list[float]]:
    """(mean over classes, FID of each class 0 .. num_classes - 1) of labelled feature sets;
    every class needs at least 2 generated and 2 reference features."""
    per_class = []
    for label in range(num_classes):
        x, y = generated[generated_labels == label], reference[reference_labels == label]
        if min(len(x), len(y)) < 2:
            raise ValueError(
                f'intra-FID needs at least 2 samples and 2 reference images of each class; '
                f'class {label} has {len(x)} samples and {len(y)} reference images '
                '(raise eval.num_samples or eval.reference_examples)'
            )
        per_class.append(fid.fid(x, y))
    return float(np.mean(per_class)), per_class


def reference_labels(context: EvalContext) -> np.ndarray:
    """Labels of the reference images, in the order of `features.reference`."""
    config = context.config

    def load() -> np.ndarray:
        split, num = config.eval.reference_split, config.eval.reference_examples or None
        return data.load_split_array(config.dataset, split, num)['label']

    return context.once_per_run('intra_fid_reference_labels', load)


def _compute(context: EvalContext) -> tuple[Values, Protocols]:
    generated, reference = features.generated_features(context), features.reference(context)
    generated_labels = context.requested_labels(len(generated))
    labels = reference_labels(context)
    classes = context.model.num_classes
    mean, per_class = intra_fid(generated, generated_labels, reference, labels, classes)
    protocol = {
        'metric': 'intra-FID (Miyato & Koyama 2018): the FID of the samples of each class '
        'against the reference images of that class, averaged over classes; '
        'intra_fid_class_<c> is the FID of class c',
        'num_classes': classes,
        'samples_per_class': np.bincount(generated_labels, minlength=classes).tolist(),
        'reference_per_class': np.bincount(labels, minlength=classes).tolist(),
        **features.feature_protocol(context),
    }
    values = {'intra_fid': mean, **{f'intra_fid_class_{c}': v for c, v in enumerate(per_class)}}
    return values, {'intra_fid': protocol}


METRICS = (
    Metric(
        name='intra_fid',
        outputs=('intra_fid',),
        description='intra-FID (Miyato & Koyama 2018): FID per class vs the reference images '
        'of that class, averaged, for class-conditional models',
        compute=_compute,
        requires=('generate', 'num_classes'),
        feature_net='features',
        splits=features.reference_splits,
        keys=('num_samples', 'reference_split', 'reference_examples', 'feature_net'),
    ),
)
