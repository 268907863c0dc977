"""evaluate(config, workdir): eval metrics of the newest (or best) checkpoint into results.json.

Besides the model's eval step (e.g. the ELBO), computes the metrics named in
`config.eval.metrics` (the registry of `gen_models.metrics`), each stamped with its protocol:
what was measured, on how many samples, against which reference split, with which feature
network (and the sha256 of its weights) and seed. Every random draw is a function of the
config's seed, so repeating an evaluation gives the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_collections

from experiments import best_checkpoint, runtime
from experiments import workdir as workdir_lock
from gen_models import metrics
from gen_models.metrics import classifier_net, features
from gen_models.models import TrainState


def _feature_net_loader(run: runtime.Run):
    """kind -> FeatureNet: 'features' of `eval.feature_net`, 'probabilities' of the
    classifier; each loaded once per run (a classifier once for both)."""
    config = run.config.eval

    def classifier_nets() -> tuple[features.FeatureNet, features.FeatureNet]:
        if 'classifier_nets' not in run.cache:
            run.cache['classifier_nets'] = classifier_net.load(
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
