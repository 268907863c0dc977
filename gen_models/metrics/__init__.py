"""Evaluation metrics beyond the eval step: the registry of what `config.eval.metrics` may name.

Each metric module declares its entries (`METRICS`, `registry.Metric`: outputs, what it needs
of the model and the run, its compute and protocol) and its `config.eval` keys
(`eval_defaults`, `EVAL_RULES`); evaluation, validation and the config's defaults read them
from here. docs/evaluation.md lists them. The hybrid's transformation accuracy (MSE, PSNR,
SSIM against exact targets) is part of its eval step: `gen_models.metrics.transformation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_collections

from gen_models import config as cfg
from gen_models.metrics import (
    density_coverage,
    disentanglement_eval,
    features,
    fid,
    intra_fid,
    iwae,
    parzen,
    precision_recall,
    registry,
    scores,
)
from gen_models.metrics.registry import EvalContext, Metric
from gen_models.nets import inception

_MODULES = (
    iwae,
    fid,
    precision_recall,
    parzen,
    scores,
    density_coverage,
    intra_fid,
    disentanglement_eval,
)
METRICS: dict[str, Metric] = {metric.name: metric for m in _MODULES for metric in m.METRICS}


def eval_defaults() -> ml_collections.ConfigDict:
    """Every `config.eval` key, with its default."""
    evaluation = registry.eval_defaults()
    for module in (features, *_MODULES):
        if hasattr(module, 'eval_defaults'):
            evaluation.update(module.eval_defaults())
    return evaluation


EVAL_RULES: dict[str, cfg.Rule] = {
    **registry.EVAL_RULES,
    **features.EVAL_RULES,
    **{key: rule for m in _MODULES for key, rule in getattr(m, 'EVAL_RULES', {}).items()},
}


def outputs(names: tuple[str, ...]) -> list[str]:
    """The values the metrics `names` report."""
    return [value for name in names for value in METRICS[name].outputs]


def splits(config: ml_collections.ConfigDict) -> dict[str, str]:
    """{config key: split} of the dataset splits `config.eval.metrics` read."""
    found: dict[str, str] = {}
    for name in config.eval.metrics:
        found.update(METRICS[name].splits(config))
    return found


def feature_nets(config: ml_collections.ConfigDict) -> set[str]:
    """The feature networks the configured metrics need: 'inception' and/or 'classifier'."""
    kinds = {METRICS[name].feature_net for name in config.eval.metrics} - {None}
    needed = set()
    if 'features' in kinds:
        needed.add(config.eval.feature_net)
    if 'probabilities' in kinds:
        needed.add('classifier')
    return needed


def validate(config: ml_collections.ConfigDict) -> None:
    """Names, eval.keep_best and the feature networks the metrics need (before any data)."""
    names = config.eval.metrics
    if not (all(name in METRICS for name in names) and len(set(names)) == len(names)):
        raise cfg.ConfigError(
            'eval.metrics',
            names,
            'a tuple of distinct names from ' + ' | '.join(repr(m) for m in METRICS),
        )
    keep_best = config.eval.keep_best
    reported = outputs(names)
    if keep_best and keep_best not in reported:
        raise cfg.ConfigError(
            'eval.keep_best',
            keep_best,
            'a value eval.metrics reports: '
            + (', '.join(reported) or 'none (eval.metrics is empty)'),
        )
    if keep_best and not config.eval.every:
        raise cfg.ConfigError(
            'eval.every', 0, 'steps between evaluations > 0, to keep the best checkpoint'
        )
    _check_datasets(config)
    _check_feature_nets(config)


def _check_datasets(config: ml_collections.ConfigDict) -> None:
    for name in config.eval.metrics:
        allowed = METRICS[name].datasets
        if allowed and config.dataset.name not in allowed:
            raise cfg.ConfigError(
                'dataset.name',
                config.dataset.name,
                f'one of {", ".join(map(repr, allowed))} for eval.metrics {name!r} '
                '(it draws ground-truth factors)',
            )
        if allowed and config.dataset.image_size:
            raise cfg.ConfigError(
                'dataset.image_size',
                config.dataset.image_size,
                f'0 for eval.metrics {name!r}: its factors are rendered at the native size',
            )


def _check_feature_nets(config: ml_collections.ConfigDict) -> None:
    needed = feature_nets(config)
    workdir = config.eval.classifier_workdir
    if 'classifier' in needed and not (workdir and (Path(workdir) / 'config.json').is_file()):
        raise cfg.ConfigError(
            'eval.classifier_workdir',
            workdir,
            'the workdir of a trained classifier (launch.py --config configs/classifier.py:mnist)',
        )
    path = inception.inception_path(config.eval.inception_path)
    if 'inception' in needed and not path.is_file():
        raise cfg.ConfigError(
            'eval.inception_path',
            str(path),
            f'the FID Inception weights file (set this key or ${inception.INCEPTION_ENV}; '
            'docs/evaluation.md says how to obtain it)',
        )


def check_model(config: ml_collections.ConfigDict, model: Any) -> None:
    """Each configured metric's requirements of the built `ModelDef`."""
    for name in config.eval.metrics:
        for need in METRICS[name].requires:
            if not getattr(model, need):
                raise cfg.ConfigError(
                    'eval.metrics',
                    config.eval.metrics,
                    f'{name!r} needs {registry.REQUIREMENTS[need]} '
                    f'(model.name={config.model.name!r} has none)',
                )


def compute(context: EvalContext) -> tuple[registry.Values, registry.Protocols]:
    """The metrics named by `config.eval.metrics`: (values by name, protocol by metric)."""
    values: registry.Values = {}
    protocols: registry.Protocols = {}
    for name in context.config.eval.metrics:
        metric_values, metric_protocols = METRICS[name].compute(context)
        values.update(metric_values)
        protocols.update(metric_protocols)
    return values, protocols


__all__ = ['METRICS', 'EvalContext', 'Metric', 'check_model', 'compute', 'eval_defaults']
