"""Checks a config before any data, compile or long work starts.

Every problem is a `ConfigError` naming the key, the offending value and what is
allowed: unknown or missing keys, wrong types, values out of range, and combinations
that cannot work together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ml_collections

from configs import default
from gen_models import losses, metrics, nets, optim
from gen_models.data import transforms
from gen_models.metrics import transformation
from gen_models.models import MODEL_BUILDERS
from gen_models.nets import inception
from gen_models.parallel import BACKENDS

EXIT_USAGE = 2  # launch.py's exit status for a bad flag or config value.


class ConfigError(ValueError):
    """A config value that is not allowed; the message is one self-contained line."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f'config.{key}={value!r} is not allowed: {allowed}')


def flatten(config: ml_collections.ConfigDict, prefix: str = '') -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a ConfigDict."""
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            yield from flatten(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


def _choice(*options: Any) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in options), 'one of ' + ' | '.join(repr(o) for o in options)


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f'>= {low}'


def _positive() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v > 0), '> 0'


def _layer_sizes() -> tuple[Callable[[Any], bool], str]:
    return (
        (lambda v: len(v) > 0 and all(isinstance(h, int) and h >= 1 for h in v)),
        'a non-empty tuple of positive ints',
    )


def _unit_interval() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: 0 <= v < 1), 'in [0, 1)'


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    'seed': _at_least(0),
    'lr': _positive(),
    'model.name': _choice(*MODEL_BUILDERS),
    'model.net': _choice('conv', 'mlp', 'resnet'),
    'model.latent_dim': _at_least(1),
    'model.width': _at_least(1),
    'model.kernel_size': _at_least(1),
    'model.hidden': _layer_sizes(),
    'model.activation': _choice(*nets.ACTIVATIONS),
    'model.gan_loss': _choice(*losses.GAN_LOSSES),
    'model.d_dropout': _unit_interval(),
    'model.d_input_dropout': _unit_interval(),
    'model.d_hidden': _layer_sizes(),
    'model.maxout_pieces': _at_least(1),
    'model.g_init_range': _at_least(0),
    'model.d_init_range': _at_least(0),
    'model.gradient_penalty': _at_least(0),
    'model.r1_gamma': _at_least(0),
    'model.n_critic': _at_least(1),
    'model.ema_decay': _unit_interval(),
    'model.likelihood': _choice(*losses.LIKELIHOODS),
    'model.beta': _at_least(0),
    'model.kl_warmup_steps': _at_least(0),
    'model.num_importance_samples': _at_least(1),
    'model.vaegan_gamma': _at_least(0),
    'model.decoder_std': _positive(),
    'model.code_dim': _at_least(1),
    'model.adversarial_weight': _at_least(0),
    'model.cycle_weight': _at_least(0),
    'transform.name': _choice(*transforms.TRANSFORMS),
    'transform.angle': (math.isfinite, 'a finite number of degrees'),
    'transform.flip_axis': _choice(*transforms.FLIP_AXES),
    'transform.scale': ((lambda v: 0 < v < math.inf), 'a finite zoom factor > 0'),
    'transform.mask': _choice(*transforms.MASKS),
    'transform.noise_std': _at_least(0),
    'transform.pairing': _choice(*transforms.PAIRINGS),
    'dataset.image_size': ((lambda v: v == 0 or v >= 8), '0 (keep) or >= 8'),
    'dataset.shapes_resolution': _at_least(8),
    'optim.name': _choice(*optim.OPTIMIZERS),
    'optim.b1': _unit_interval(),
    'optim.b2': _unit_interval(),
    'optim.eps': _positive(),
    'optim.weight_decay': _at_least(0),
    'optim.d_lr_multiplier': _positive(),
    'optim.schedule': _choice(*optim.SCHEDULES),
    'optim.schedule_boundaries': (
        (lambda v: all(isinstance(b, int) and b >= 1 for b in v) and list(v) == sorted(set(v))),
        'increasing positive step numbers',
    ),
    'optim.schedule_scales': (
        (lambda v: all(isinstance(s, (int, float)) and s >= 0 for s in v)),
        'a tuple of non-negative multipliers',
    ),
    'optim.warmup_steps': _at_least(0),
    'optim.decay_rate': ((lambda v: 0 < v <= 1), 'in (0, 1]'),
    'optim.momentum_ramp_steps': _at_least(0),
    'optim.final_momentum': _unit_interval(),
    'parallel.backend': _choice(*BACKENDS),
    'train.num_steps': _at_least(1),
    'train.batch_size': _at_least(1),
    'train.log_every': _at_least(1),
    'train.eval_every': _at_least(1),
    'train.checkpoint_every': _at_least(1),
    'train.sample_every': _at_least(1),
    'train.keep_checkpoints': _at_least(1),
    'train.eval_batch_size': _at_least(1),
    'train.eval_examples': _at_least(0),
    'train.num_samples': _at_least(1),
    'eval.metrics': (
        (lambda v: all(m in metrics.METRICS for m in v) and len(set(v)) == len(v)),
        'a tuple of distinct names from ' + ' | '.join(repr(m) for m in metrics.METRICS),
    ),
    'eval.every': _at_least(0),
    'eval.keep_best_mode': _choice('max', 'min'),
    'eval.checkpoint': _choice('latest', 'best'),
    'eval.feature_net': _choice('inception', 'classifier'),
    'eval.num_samples': _at_least(2),
    'eval.reference_examples': ((lambda v: v == 0 or v >= 2), '0 (all) or >= 2'),
    'eval.feature_batch_size': _at_least(1),
    'eval.kid_subsets': _at_least(1),
    'eval.kid_subset_size': _at_least(2),
    'eval.pr_neighbours': _at_least(1),
    'eval.iwae_samples': _at_least(1),
    'eval.iwae_chunk': _at_least(1),
    'eval.parzen_sigmas': (
        (lambda v: len(v) > 0 and all(isinstance(s, (int, float)) and s > 0 for s in v)),
        'a non-empty tuple of positive numbers',
    ),
    'sweep.metric': ((lambda v: '/' in v), "a results.json metric such as 'eval/elbo'"),
    'sweep.mode': _choice('max', 'min'),
}


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_type(key: str, value: Any, reference: Any) -> None:
    """Values must have the default's type; an int is accepted where a float is."""
    expected = type(reference)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if expected is tuple and isinstance(value, list):
        return
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(
            key, value, f'a value of type {expected.__name__} (got {_type_name(value)})'
        )


def validate_config(config: ml_collections.ConfigDict, num_devices: int = 1) -> None:
    """Raises ConfigError for the first problem found in `config`."""
    schema = dict(flatten(default.get_config()))
    values = dict(flatten(config))
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(key, value, 'unknown key (see configs/default.py for every key)')
    for key, reference in schema.items():
        if key not in values:
            raise ConfigError(
                key,
                None,
                'a required key is missing; start configs from configs/default.get_config()',
            )
        _check_type(key, values[key], reference)
        if key in RULES:
            is_allowed, allowed = RULES[key]
            if not is_allowed(values[key]):
                raise ConfigError(key, values[key], allowed)
    _check_consistency(config, num_devices)


def _check_consistency(config: ml_collections.ConfigDict, num_devices: int) -> None:
    model, train = config.model, config.train
    if model.name == 'gan' and model.net == 'mlp':
        for key in ('conditional', 'spectral_norm'):
            if model[key]:
                raise ConfigError(f'model.{key}', model[key], "False with model.net='mlp'")
    if model.name != 'gan' and model.net == 'resnet':
        raise ConfigError('model.net', model.net, "'resnet' nets are for model.name='gan'")
    if model.net == 'resnet' and model.d_dropout:
        raise ConfigError('model.d_dropout', model.d_dropout, "0 with model.net='resnet'")
    if config.optim.momentum_ramp_steps and config.optim.name != 'sgd':
        raise ConfigError(
            'optim.momentum_ramp_steps',
            config.optim.momentum_ramp_steps,
            "0 unless optim.name='sgd'",
        )
    if len(config.optim.schedule_scales) != len(config.optim.schedule_boundaries):
        raise ConfigError(
            'optim.schedule_scales',
            config.optim.schedule_scales,
            'one multiplier per optim.schedule_boundaries entry',
        )
    if model.name == 'vaegan' and model.net != 'conv':
        raise ConfigError('model.net', model.net, "model.name='vaegan' uses 'conv' nets")
    if model.decoder_std_per_pixel and (model.name != 'vae' or model.likelihood == 'bernoulli'):
        raise ConfigError(
            'model.decoder_std_per_pixel',
            True,
            "False unless model.name='vae' with a 'gaussian' or 'logistic' likelihood",
        )
    if model.name == 'vaegan' and model.gan_loss not in losses.GENERATOR_LOSSES:
        raise ConfigError(
            'model.gan_loss',
            model.gan_loss,
            f"one of {losses.GENERATOR_LOSSES} with model.name='vaegan' (the cross-entropy game)",
        )
    if model.name == 'vaegan' and model.conditional:
        raise ConfigError('model.conditional', True, "False: model.name='vaegan' is unconditional")
    if config.dataset.binarize and (model.name != 'vae' or model.likelihood != 'bernoulli'):
        raise ConfigError(
            'dataset.binarize', True, "only with model.name='vae' and model.likelihood='bernoulli'"
        )
    _check_hybrid(config, num_devices)
    _check_eval(config)
    for key in ('batch_size', 'eval_batch_size'):
        if getattr(train, key) % num_devices:
            raise ConfigError(
                f'train.{key}',
                getattr(train, key),
                f'a multiple of the device count ({num_devices})',
            )
    if model.name == 'gan' and train.batch_size % (model.n_critic * num_devices):
        raise ConfigError(
            'train.batch_size',
            train.batch_size,
            f'a multiple of model.n_critic x the device count ({model.n_critic} x {num_devices}): '
            'each device splits its batch into one sub-batch per D update',
        )


def _check_hybrid(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Transforms feed the hybrid only; unpaired batches split into two domains per device."""
    model, transform = config.model, config.transform
    if model.name != 'hybrid':
        if transform.name != 'none':
            raise ConfigError('transform.name', transform.name, "'none' unless model.name='hybrid'")
        return
    if model.net != 'conv':
        raise ConfigError('model.net', model.net, "model.name='hybrid' uses 'conv' nets")
    batch = config.train.batch_size
    if transform.pairing == 'unpaired' and batch % (2 * num_devices):
        raise ConfigError(
            'train.batch_size',
            batch,
            f'with unpaired transforms, a multiple of 2 x the device count ({2 * num_devices}): '
            'each device splits its examples into domains A and B',
        )


def _check_eval(config: ml_collections.ConfigDict) -> None:
    names = config.eval.metrics
    keep_best = config.eval.keep_best
    reported = [value for name in names for value in metrics.OUTPUTS[name]]
    if keep_best and keep_best not in reported:
        raise ConfigError(
            'eval.keep_best',
            keep_best,
            'a value eval.metrics reports: '
            + (', '.join(reported) or 'none (eval.metrics is empty)'),
        )
    if keep_best and not config.eval.every:
        raise ConfigError(
            'eval.every', 0, 'steps between evaluations > 0, to keep the best checkpoint'
        )
    if 'iwae' in names and config.model.name != 'vae':
        raise ConfigError('eval.metrics', names, "'iwae' needs a model with an encoder ('vae')")
    if set(metrics.SAMPLE_METRICS) & set(names) and config.model.name == 'classifier':
        raise ConfigError('eval.metrics', names, 'sample metrics need a generative model')
    uses_features = bool(set(metrics.FEATURE_METRICS) & set(names))
    if 'class_accuracy' in names and not config.model.conditional:
        raise ConfigError(
            'eval.metrics',
            names,
            "'class_accuracy' needs a class-conditional model (model.conditional=True)",
        )
    uses_classifier = bool(set(metrics.CLASSIFIER_METRICS) & set(names)) or (
        uses_features and config.eval.feature_net == 'classifier'
    )
    workdir = config.eval.classifier_workdir
    if uses_classifier and not (workdir and (Path(workdir) / 'config.json').is_file()):
        raise ConfigError(
            'eval.classifier_workdir',
            workdir,
            'the workdir of a trained classifier (launch.py --config configs/classifier.py:mnist)',
        )
    path = inception.inception_path(config.eval.inception_path)
    if uses_features and config.eval.feature_net == 'inception' and not path.is_file():
        raise ConfigError(
            'eval.inception_path',
            str(path),
            f'the FID Inception weights file (set this key or ${inception.INCEPTION_ENV}; '
            'the README says how to obtain it)',
        )


def check_image_shape(config: ml_collections.ConfigDict, image_shape: tuple[int, ...]) -> None:
    """The conv nets need image sides with enough factors of two (known once data is)."""
    if config.model.net != 'conv':
        return
    key = 'dataset.image_size' if config.dataset.image_size else 'dataset.name'
    value = config.dataset.image_size or config.dataset.name
    try:
        nets.check_image_shape(image_shape)
    except ValueError as error:
        raise ConfigError(key, value, f'conv nets cannot use this size: {error}') from None
    if config.model.name == 'hybrid' and min(image_shape[:2]) < transformation.WINDOW:
        raise ConfigError(
            key,
            value,
            f'the hybrid scores SSIM with an {transformation.WINDOW} px window: images of at '
            f'least that many px per side (got {tuple(image_shape)})',
        )


def check_labels(config: ml_collections.ConfigDict, num_classes: int) -> None:
    """Conditional models need a dataset with class labels (known once data is)."""
    if config.model.conditional and num_classes == 0:
        raise ConfigError(
            'model.conditional', True, f'False: dataset {config.dataset.name!r} has no labels'
        )
