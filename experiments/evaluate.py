"""evaluate(config, workdir): eval metrics of the newest (or best) checkpoint into results.json.

Besides the model's eval step (e.g. the ELBO), computes the metrics named in
`config.eval.metrics` (the registry of `gen_models.metrics`), each stamped with its protocol:
what was measured, on how many samples, against which reference split, with which feature
network (and the sha256 of its weights) and seed. Every random draw is a function of the
config's seed, so repeating an evaluation gives the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import ml_collections

from experiments import best_checkpoint, runtime
from experiments import workdir as workdir_lock
from gen_models import metrics, schema
from gen_models.config import ConfigError
from gen_models.metrics import features
from gen_models.models import TrainState


def saved_config(workdir: Path) -> ml_collections.ConfigDict:
    """The config a run wrote to `workdir/config.json`, on today's schema."""
    return schema.from_saved(json.loads((workdir / 'config.json').read_text()))


def load_classifier(
    workdir: str | Path, batch_size: int, image_shape: tuple[int, ...]
) -> tuple[features.FeatureNet, features.FeatureNet]:
    """(features, probabilities) nets of the newest checkpoint of a classifier run, for images
    of `image_shape`; named by its dataset and step, identified by its params' checksum."""
    workdir = Path(workdir)
    config = saved_config(workdir)
    run = runtime.prepare(config)
    if run.model.classify is None or tuple(run.info.image_shape) != tuple(image_shape):
        raise ConfigError(
            'eval.classifier_workdir',
            str(workdir),
            f'a classifier run on images of shape {tuple(image_shape)} '
            f'(this is a {config.model.name!r} run on {config.dataset.name})',
        )
    state, step = runtime.restore_latest(run, workdir)
    return features.classifier_nets(
        run.model.classify,
        jax.device_get(state),
        tuple(image_shape),
        f'classifier({config.dataset.name}, step {step})',
        batch_size,
    )


def _feature_net_loader(run: runtime.Run):
    """kind -> FeatureNet: 'features' of `eval.feature_net`, 'probabilities' of the
    classifier; each loaded once per run (a classifier once for both)."""
    config = run.config.eval

    def classifier_nets() -> tuple[features.FeatureNet, features.FeatureNet]:
        if 'classifier_nets' not in run.cache:
            run.cache['classifier_nets'] = load_classifier(
                config.classifier_workdir, config.feature_batch_size, run.info.image_shape
            )
        return run.cache['classifier_nets']

    def load(kind: str) -> features.FeatureNet:
        if kind == 'probabilities':
            return classifier_nets()[1]
        if config.feature_net == 'classifier':
            return classifier_nets()[0]
        if 'inception' not in run.cache:
            run.cache['inception'] = features.inception_net(
                config.inception_path, config.feature_batch_size
            )
        return run.cache['inception']

    return load


def compute_metrics(run: runtime.Run, state: TrainState) -> tuple[dict[str, float], dict]:
    """The metrics named by `config.eval.metrics`: (values by name, protocol by metric)."""
    context = metrics.EvalContext(
        config=run.config,
        info=run.info,
        model=run.model,
        state=state,
        sample_rng=run.keys['sample'],
        evaluate=lambda eval_step: runtime.evaluate_state(run, state, eval_step),
        load_feature_net=_feature_net_loader(run),
        protocol=runtime.protocol(run),
        run_cache=run.cache,
    )
    return metrics.compute(context)


def evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Evaluates the newest readable checkpoint of `workdir` (or with eval.checkpoint='best'
    the one eval.keep_best kept); writes and returns results."""
    workdir = Path(workdir)
    run = runtime.prepare(config)
    best = run.config.eval.checkpoint == 'best'
    runtime.check_trained(workdir, best_checkpoint.DIRECTORY if best else 'checkpoints')
    with workdir_lock.lock(workdir):
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
