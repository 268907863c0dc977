"""evaluate(config, workdir): eval metrics of the newest checkpoint into results.json.

Besides the model's eval step (e.g. the ELBO), computes the metrics named in
`config.eval.metrics` (see `gen_models.metrics`) and stamps each with its protocol: what
was measured, on how many samples, against which reference split, with which feature network
(and the sha256 of its weights) and seed. Every random draw is a function of the config's
seed, so repeating an evaluation gives the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from configs import default
from experiments import best_checkpoint, runtime
from experiments.config_validation import ConfigError, flatten
from gen_models import data, images, metrics
from gen_models.metrics import features, fid, likelihood, precision_recall, scores
from gen_models.models import TrainState, classifier

Protocols = dict[str, dict[str, Any]]


def requested_labels(run: runtime.Run, num: int) -> np.ndarray | None:
    """Labels asked of a class-conditional model: 0, 1, .., C-1, 0, 1, .. (balanced); None
    for unconditional models."""
    classes = run.model.num_classes
    return (np.arange(num) % classes).astype(np.int32) if classes else None


def generate_samples(run: runtime.Run, state: TrainState, num: int) -> np.ndarray:
    """`num` generated images in the model's image range, `eval_batch_size` per call, of the
    `requested_labels` for conditional models.

    Chunk c is drawn with key fold_in(sample key, c + 1) (sample grids use the key itself).
    """
    size = run.config.train.eval_batch_size
    generate = jax.jit(run.model.generate, static_argnums=2)
    labels = requested_labels(run, -(-num // size) * size)
    chunks = [
        np.asarray(
            generate(
                state,
                jax.random.fold_in(run.keys['sample'], index + 1),
                size,
                None if labels is None else labels[index * size : (index + 1) * size],
            )
        )
        for index in range(-(-num // size))
    ]
    return np.concatenate(chunks)[:num]


def _iwae(run: runtime.Run, state: TrainState) -> tuple[dict[str, float], Protocols]:
    config = run.config.eval
    step = likelihood.iwae_eval_step(run.model.log_weights, config.iwae_samples, config.iwae_chunk)
    value = runtime.evaluate_state(run, state, step)['iwae']
    protocol = {
        'metric': 'IWAE bound on log p(x) (Burda et al. 2016), nats per image',
        'importance_samples': config.iwae_samples,
        **runtime.protocol(run),
    }
    return {'iwae': value}, {'iwae': protocol}


def saved_config(workdir: Path) -> ml_collections.ConfigDict:
    """The config a run wrote to `workdir/config.json`, on today's defaults: keys added to the
    schema since then take their defaults, so older runs stay loadable."""
    config = default.get_config()
    schema = dict(flatten(config))
    saved = dict(
        flatten(ml_collections.ConfigDict(json.loads((workdir / 'config.json').read_text())))
    )
    config.update_from_flattened_dict(
        {
            key: tuple(value) if isinstance(schema[key], tuple) else value
            for key, value in saved.items()
            if key in schema
        }
    )
    return config


def load_classifier(
    workdir: str | Path, batch_size: int, image_shape: tuple[int, ...]
) -> tuple[features.FeatureNet, features.FeatureNet]:
    """(features, probabilities) nets of the newest checkpoint of a classifier run, for images
    of `image_shape`; named by its dataset and step, identified by its params' checksum."""
    workdir = Path(workdir)
    config = saved_config(workdir)
    run = runtime.prepare(config)
    if config.model.name != 'classifier' or tuple(run.info.image_shape) != tuple(image_shape):
        raise ConfigError(
            'eval.classifier_workdir',
            str(workdir),
            f'a classifier run on images of shape {tuple(image_shape)} '
            f'(this is a {config.model.name!r} run on {config.dataset.name})',
        )
    state, step = runtime.restore_latest(run, workdir)
    return features.classifier_nets(
        classifier.make_net(config, run.info),
        jax.device_get(state.params['classifier']),
        f'classifier({config.dataset.name}, step {step})',
        batch_size,
    )


def _feature_nets(config: ml_collections.ConfigDict, image_shape) -> dict[str, Any]:
    """The nets the configured metrics need: 'features' (fid/kid), 'probabilities'."""
    names = set(config.eval.metrics)
    wants_features = bool(names & set(metrics.FEATURE_METRICS))
    nets: dict[str, Any] = {}
    if names & set(metrics.CLASSIFIER_METRICS) or (
        wants_features and config.eval.feature_net == 'classifier'
    ):
        classifier_features, nets['probabilities'] = load_classifier(
            config.eval.classifier_workdir, config.eval.feature_batch_size, image_shape
        )
        if config.eval.feature_net == 'classifier':
            nets['features'] = classifier_features
    if wants_features and config.eval.feature_net == 'inception':
        nets['features'] = features.inception_net(
            config.eval.inception_path, config.eval.feature_batch_size
        )
    return nets


def _feature_metrics(
    run: runtime.Run, net: features.FeatureNet, samples: np.ndarray
) -> tuple[dict[str, float], Protocols]:
    """FID, KID, precision and recall (those configured) in the features of `net`."""
    config = run.config
    reference = features.reference_features(
        net,
        config.dataset,
        config.eval.reference_split,
        config.eval.reference_examples or None,
        features.stats_dir(config.eval.stats_dir),
    )
    generated = features.extract_features(net, samples)
    common = {
        'num_samples': len(generated),
        'samples': 'generated, quantised to uint8',
        **features.reference_protocol(config.dataset, config.eval.reference_split, len(reference)),
        **net.protocol(),
        'seed': config.seed,
    }
    values, protocols = {}, {}
    if 'fid' in config.eval.metrics:
        values['fid'] = fid.fid(generated, reference)
        protocols['fid'] = {'metric': 'FID (Heusel et al. 2017)', **common}
    if 'kid' in config.eval.metrics:
        values['kid'], values['kid_std'] = fid.kid(
            generated,
            reference,
            num_subsets=config.eval.kid_subsets,
            subset_size=config.eval.kid_subset_size,
            seed=config.seed,
        )
        protocols['kid'] = {
            'metric': 'KID (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel; '
            'kid_std is the std over subsets',
            'subsets': config.eval.kid_subsets,
            'subset_size': min(config.eval.kid_subset_size, len(generated), len(reference)),
            **common,
        }
    if 'precision_recall' in config.eval.metrics:
        values['precision'], values['recall'] = precision_recall.precision_recall(
            reference, generated, config.eval.pr_neighbours
        )
        protocols['precision_recall'] = {
            'metric': 'improved precision and recall (Kynkaanniemi et al. 2019), k-NN balls',
            'neighbours': config.eval.pr_neighbours,
            **common,
        }
    return values, protocols


def _classifier_metrics(
    run: runtime.Run, net: features.FeatureNet, samples: np.ndarray
) -> tuple[dict[str, float], Protocols]:
    """The classifier score and class accuracy (those configured) of the samples."""
    probabilities = features.extract_features(net, samples)
    common = {
        'num_samples': len(samples),
        'samples': 'generated, quantised to uint8',
        **net.protocol(),
        'seed': run.config.seed,
    }
    values, protocols = {}, {}
    if 'classifier_score' in run.config.eval.metrics:
        values['classifier_score'] = scores.classifier_score(probabilities)
        protocols['classifier_score'] = {
            'metric': 'classifier score: exp(E KL(p(y|x) || p(y))), the Inception Score formula '
            'with a classifier trained on the dataset, one split',
            **common,
        }
    if 'class_accuracy' in run.config.eval.metrics:
        values['class_accuracy'] = scores.class_accuracy(
            probabilities, requested_labels(run, len(samples))
        )
        protocols['class_accuracy'] = {
            'metric': "class accuracy: how often the classifier's most probable class is the "
            'label the samples were generated for (balanced labels)',
            **common,
        }
    return values, protocols


def _parzen(
    run: runtime.Run, centres: np.ndarray, name: str, description: str
) -> tuple[dict[str, float], Protocols]:
    """The Parzen-window estimate with kernels on `centres` (pixels in [0, 1]), reported as
    `<name>`, `<name>_stderr`, `<name>_validation` and, for labelled datasets,
    `<name>_class_<c>`: the mean over the test images of class c."""
    config = run.config

    def split_in_unit_range(split: str, num: int | None) -> dict[str, np.ndarray]:
        arrays = data.load_split_array(config.dataset, split, num)
        return {**arrays, 'image': arrays['image'] / 255.0}

    test = split_in_unit_range(config.dataset.eval_split, config.train.eval_examples or None)
    result = likelihood.parzen_window(
        centres,
        split_in_unit_range(config.eval.parzen_validation_split, None)['image'],
        test['image'],
        config.eval.parzen_sigmas,
        test['label'] if run.info.num_classes else None,
    )
    per_class = f'; {name}_class_<c> the mean over test images of class c'
    protocol = {
        'metric': f'Parzen-window log-likelihood (Goodfellow et al. 2014) {description}, nats '
        f'per image on pixels in [0, 1]; {name}_stderr is std / sqrt(N) over test images; '
        f"{name}_validation is the validation split's mean at the chosen sigma"
        + (per_class if run.info.num_classes else ''),
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


def _parzen_of_samples(run: runtime.Run, samples: np.ndarray) -> tuple[dict[str, float], Protocols]:
    """'parzen': kernels on the generated samples."""
    low, high = run.model.image_range
    centres = (samples.astype(np.float64) - low) / (high - low)
    return _parzen(run, centres, 'parzen', 'of the test split under generated samples')


def _parzen_reference(run: runtime.Run) -> tuple[dict[str, float], Protocols]:
    """'parzen_reference': kernels on as many real images as 'parzen' has samples, from
    eval.parzen_reference_split: what a model that reproduced those images would score.
    It does not depend on the model, so a run computes it once."""
    if 'parzen_reference' not in run.cache:
        config = run.config
        split = config.eval.parzen_reference_split
        centres = data.load_split_array(config.dataset, split, config.eval.num_samples)['image']
        values, protocols = _parzen(
            run,
            centres / 255.0,
            'parzen_reference',
            f'of the test split under real images ({split})',
        )
        protocols['parzen_reference']['centres_split'] = split
        run.cache['parzen_reference'] = values, protocols
    return run.cache['parzen_reference']


def compute_metrics(run: runtime.Run, state: TrainState) -> tuple[dict[str, float], Protocols]:
    """The metrics named by `config.eval.metrics`: (values by name, protocol by metric).

    Names were checked by config validation; the sample metrics share one set of samples.
    """
    names = set(run.config.eval.metrics)
    parts = []
    if 'iwae' in names:
        parts.append(_iwae(run, state))
    if names & set(metrics.SAMPLE_METRICS):
        samples = generate_samples(run, state, run.config.eval.num_samples)
        quantised = images.to_uint8(samples, run.model.image_range)
        nets = _feature_nets(run.config, run.info.image_shape)
        if names & set(metrics.FEATURE_METRICS):
            parts.append(_feature_metrics(run, nets['features'], quantised))
        if names & set(metrics.CLASSIFIER_METRICS):
            parts.append(_classifier_metrics(run, nets['probabilities'], quantised))
        if 'parzen' in names:
            parts.append(_parzen_of_samples(run, samples))
    if 'parzen_reference' in names:
        parts.append(_parzen_reference(run))
    values: dict[str, float] = {}
    protocols: Protocols = {}
    for part_values, part_protocols in parts:
        values.update(part_values)
        protocols.update(part_protocols)
    return values, protocols


def evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Evaluates the newest readable checkpoint of `workdir` (or with eval.checkpoint='best'
    the one eval.keep_best kept); writes and returns results."""
    workdir = Path(workdir)
    run = runtime.prepare(config)
    best = config.eval.checkpoint == 'best'
    state, step = (
        best_checkpoint.restore(run, workdir) if best else runtime.restore_latest(run, workdir)
    )
    values = runtime.evaluate_state(run, state)
    extra, protocols = compute_metrics(run, state)
    return runtime.write_results(
        run,
        workdir,
        step,
        {f'eval/{k}': v for k, v in {**values, **extra}.items()},
        metric_protocols=protocols,
        checkpoint=best_checkpoint.read_record(workdir) if best else 'latest',
    )
