"""Parzen-window log-likelihood (Goodfellow et al. 2014), and the 'parzen' metrics.

A Gaussian kernel density on generated samples, its width chosen by the mean log-likelihood
of a validation split, reported on the test split with the standard error of the mean.
'parzen_reference' puts the kernels on real images instead: what a model that reproduced
the training data would score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from gen_models import config as cfg
from gen_models import data
from gen_models.metrics.distances import squared_distances
from gen_models.metrics.registry import EvalContext, Metric, Protocols, Values


def eval_defaults() -> ml_collections.ConfigDict:
    evaluation = ml_collections.ConfigDict()
    evaluation.parzen_validation_split = 'train[-10000:]'  # parzen: split choosing sigma
    evaluation.parzen_sigmas = tuple(10 ** (i / 9 - 1) for i in range(10))  # 0.1 .. 1
    evaluation.parzen_reference_split = 'train'  # parzen_reference: its first num_samples
    # real images take the place of generated samples (the estimate's value for real data)
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {
    'eval.parzen_sigmas': (
        (lambda v: len(v) > 0 and all(isinstance(s, int | float) and 0 < s < np.inf for s in v)),
        'a non-empty tuple of finite positive numbers',
    ),
}


def parzen_log_likelihoods(
    centres: np.ndarray, x: np.ndarray, sigmas: Sequence[float], chunk: int = 500
) -> np.ndarray:
    """(len(sigmas), N) log-densities of rows of x under the mixture of N(centre, sigma^2 I)
    with equal weights, in float64; distances are computed once for every sigma."""
    centres = np.asarray(centres, np.float64).reshape(len(centres), -1)
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    sigmas = np.asarray(sigmas, np.float64)
    dim = x.shape[1]
    out = np.empty((len(sigmas), len(x)))
    for start in range(0, len(x), chunk):
        distances = squared_distances(x[start : start + chunk], centres)
        for index, sigma in enumerate(sigmas):
            exponents = -distances / (2 * sigma**2)
            top = exponents.max(axis=1)
            out[index, start : start + chunk] = top + np.log(
                np.exp(exponents - top[:, None]).sum(axis=1)
            )
    normaliser = np.log(len(centres)) + 0.5 * dim * np.log(2 * np.pi * sigmas**2)
    return out - normaliser[:, None]


def parzen_window(
    samples: np.ndarray,
    validation: np.ndarray,
    test: np.ndarray,
    sigmas: Sequence[float],
    test_labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """Goodfellow et al. (2014): the sigma of `sigmas` with the best mean validation
    log-likelihood; the mean test log-likelihood under it and its standard error
    (std / sqrt(N), as their code computes it), and that best validation mean (a score to
    choose checkpoints by without looking at the test split). With `test_labels`, also
    'class_log_likelihoods': {label: mean test log-likelihood of that label's images},
    which shows the classes (modes) the samples cover worst."""
    validation_means = parzen_log_likelihoods(samples, validation, sigmas).mean(axis=1)
    best = int(np.argmax(validation_means))
    sigma = float(sigmas[best])
    test_values = parzen_log_likelihoods(samples, test, [sigma])[0]
    result: dict[str, Any] = {
        'log_likelihood': float(test_values.mean()),
        'stderr': float(test_values.std() / np.sqrt(len(test_values))),
        'sigma': sigma,
        'validation_log_likelihood': float(validation_means[best]),
    }
    if test_labels is not None:
        result['class_log_likelihoods'] = {
            int(label): float(test_values[test_labels == label].mean())
            for label in np.unique(test_labels)
        }
    return result


def _estimate(
    context: EvalContext, centres: np.ndarray, name: str, description: str
) -> tuple[Values, Protocols]:
    """The estimate with kernels on `centres` (pixels in [0, 1]), reported as `<name>`,
    `<name>_stderr`, `<name>_validation` and, for labelled datasets, `<name>_class_<c>`: the
    mean over the test images of class c."""
    config = context.config

    def split_in_unit_range(split: str, num: int | None) -> dict[str, np.ndarray]:
        arrays = data.load_split_array(config.dataset, split, num)
        return {**arrays, 'image': arrays['image'] / 255.0}

    test = split_in_unit_range(config.dataset.eval_split, config.train.eval_examples or None)
    labelled = bool(context.info.num_classes)
    result = parzen_window(
        centres,
        split_in_unit_range(config.eval.parzen_validation_split, None)['image'],
        test['image'],
        config.eval.parzen_sigmas,
        test['label'] if labelled else None,
    )
    per_class = f'; {name}_class_<c> the mean over test images of class c'
    protocol = {
        'metric': f'Parzen-window log-likelihood (Goodfellow et al. 2014) {description}, nats '
        f'per image on pixels in [0, 1]; {name}_stderr is std / sqrt(N) over test images; '
        f"{name}_validation is the validation split's mean at the chosen sigma"
        + (per_class if labelled else ''),
        'num_samples': len(centres),
        'sigma': result['sigma'],
        'sigma_grid': list(config.eval.parzen_sigmas),
        'validation_split': config.eval.parzen_validation_split,
        'dataset': config.dataset.name,
        'split': config.dataset.eval_split,
        'num_examples': len(test['image']),
        'seed': config.seed,
    }
    values = {
        name: result['log_likelihood'],
        f'{name}_stderr': result['stderr'],
        f'{name}_validation': result['validation_log_likelihood'],
    }
    for label, value in result.get('class_log_likelihoods', {}).items():
        values[f'{name}_class_{label}'] = value
    return values, {name: protocol}


def _of_samples(context: EvalContext) -> tuple[Values, Protocols]:
    """'parzen': kernels on the generated samples."""
    low, high = context.model.image_range
    centres = (context.samples().astype(np.float64) - low) / (high - low)
    return _estimate(context, centres, 'parzen', 'of the test split under generated samples')


def _of_real_images(context: EvalContext) -> tuple[Values, Protocols]:
    """'parzen_reference': kernels on as many real images as 'parzen' has samples, from
    eval.parzen_reference_split. It does not depend on the model: computed once per run."""

    def compute() -> tuple[Values, Protocols]:
        config = context.config
        split = config.eval.parzen_reference_split
        centres = data.load_split_array(config.dataset, split, config.eval.num_samples)['image']
        values, protocols = _estimate(
            context,
            centres / 255.0,
            'parzen_reference',
            f'of the test split under real images ({split})',
        )
        protocols['parzen_reference']['centres_split'] = split
        return values, protocols

    return context.once_per_run('parzen_reference', compute)


def _validation_split(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return {'eval.parzen_validation_split': config.eval.parzen_validation_split}


def _reference_splits(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return {
        **_validation_split(config),
        'eval.parzen_reference_split': config.eval.parzen_reference_split,
    }


def _outputs(name: str) -> tuple[str, ...]:
    return (name, f'{name}_stderr', f'{name}_validation')


METRICS = (
    Metric(
        name='parzen',
        outputs=_outputs('parzen'),
        description='Parzen-window log-likelihood of the eval split under generated samples '
        '(Goodfellow et al. 2014); per-class means for labelled datasets',
        compute=_of_samples,
        requires=('generate',),
        splits=_validation_split,
        keys=('num_samples', 'parzen_sigmas', 'parzen_validation_split'),
    ),
    Metric(
        name='parzen_reference',
        outputs=_outputs('parzen_reference'),
        description='the Parzen estimate with as many real images as samples: what '
        'reproducing the training data scores; computed once per run',
        compute=_of_real_images,
        splits=_reference_splits,
        keys=('num_samples', 'parzen_sigmas', 'parzen_validation_split', 'parzen_reference_split'),
    ),
)
