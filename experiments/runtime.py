"""What train, eval and sample modes share: a prepared run, restore, eval, sample grids.

`prepare` does everything that can fail on a bad config (validation, dataset lookup,
image-shape check) before any compile, so errors arrive in seconds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import logs, programs
from experiments.config_validation import (
    ConfigError,
    check_image_shape,
    check_labels,
    validate_config,
)
from gen_models import data, images, parallel
from gen_models.checkpoints import Checkpointer
from gen_models.data import transforms
from gen_models.metrics import FEATURE_METRICS, transformation
from gen_models.models import ModelDef, TrainState, base, build_model

KEY_NAMES = ('init', 'train', 'eval', 'sample')


@dataclasses.dataclass(frozen=True)
class Run:
    """A validated config with its dataset, model, device mesh and root PRNG keys."""

    config: ml_collections.ConfigDict
    info: Any
    model: ModelDef
    mesh: jax.sharding.Mesh
    keys: dict[str, jax.Array]
    # Values that depend on the config alone (e.g. a metric of real data), computed once.
    cache: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


def prepare(config: ml_collections.ConfigDict) -> Run:
    """Validates `config`, looks up (and if needed prepares) its dataset, builds the model."""
    validate_config(config, num_devices=jax.device_count())
    try:
        info = data.dataset_info(config.dataset)
        data.check_splits(config.dataset, metric_splits(config))
    except data.SplitError as error:
        raise ConfigError(error.key, error.split, error.reason) from None
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError('dataset.name', config.dataset.name, str(error)) from None
    check_image_shape(config, info.image_shape)
    check_labels(config, info.num_classes)
    root = jax.random.key(config.seed)
    keys = {name: jax.random.fold_in(root, index) for index, name in enumerate(KEY_NAMES)}
    return Run(
        config=config,
        info=info,
        model=build_model(config, info),
        mesh=parallel.make_mesh(),
        keys=keys,
    )


def metric_splits(config: ml_collections.ConfigDict) -> dict[str, str]:
    """{config key: split} of the splits eval.metrics read besides the eval split."""
    names = set(config.eval.metrics)
    splits = {}
    if names & set(FEATURE_METRICS):
        splits['eval.reference_split'] = config.eval.reference_split
    if names & {'parzen', 'parzen_reference'}:
        splits['eval.parzen_validation_split'] = config.eval.parzen_validation_split
    if 'parzen_reference' in names:
        splits['eval.parzen_reference_split'] = config.eval.parzen_reference_split
    return splits


def initial_state(run: Run) -> TrainState:
    """A freshly initialised state, replicated over the mesh."""
    example = {
        'image': np.zeros((1, *run.info.image_shape), np.uint8),
        'label': np.zeros((1,), np.int32),
    }
    state = _compiled(run, 'init')(run.keys['init'], example)
    return parallel.replicate(state, run.mesh)


def train_step(run: Run) -> Callable:
    """(state, batch, base_rng) -> (state, metrics): the model's train step over the mesh,
    compiled once per process for all configs that differ only in shape-free hyperparameters
    (`experiments/programs.py`); donates the state."""
    return _compiled(run, 'train_step')


def _compiled(run: Run, name: str) -> Callable:
    """Program `name` of the run's config structure, fed the run's hyperparameters."""
    program = getattr(programs.programs(run.config, run.info, run.mesh), name)
    hparams = programs.hyperparameters(run.config)
    return lambda *args: program(*args, hparams)


def checkpointer(run: Run, workdir: Path) -> Checkpointer:
    return Checkpointer(workdir / 'checkpoints', max_to_keep=run.config.train.keep_checkpoints)


class IncompatibleCheckpointError(ValueError):
    """The workdir's checkpoints do not fit the model the config builds."""


def restore(run: Run, manager: Checkpointer) -> tuple[TrainState, int] | None:
    """The newest readable checkpoint, replicated over the mesh; None when there is none."""
    try:
        restored = manager.restore(initial_state(run))
    except ValueError as error:
        raise IncompatibleCheckpointError(
            f'no checkpoint in {manager.directory} fits this config (was the model changed? '
            f'compare with config.json there, or use a new --workdir): {error}'
        ) from None
    if restored is None:
        return None
    state, step = restored
    return parallel.replicate(state, run.mesh), step


def restore_latest(run: Run, workdir: Path) -> tuple[TrainState, int]:
    """The newest readable checkpoint of `workdir`; FileNotFoundError when there is none."""
    with checkpointer(run, workdir) as manager:
        restored = restore(run, manager)
    if restored is None:
        raise FileNotFoundError(
            f'no checkpoint in {workdir / "checkpoints"}: train first '
            '(--mode train) with this --workdir'
        )
    return restored


def evaluate_state(run: Run, state: TrainState, eval_step=None) -> dict[str, float]:
    """Eval metrics over the configured part of the eval split, exact means per example.

    `eval_step` (default: the model's) is a per-device step returning psum'd metric sums and
    'count'; batch i gets the key fold_in(eval key, i) whatever the step.
    """
    config = run.config
    step_fn = (
        _compiled(run, 'eval_step')
        if eval_step is None
        else parallel.eval_step(eval_step, run.mesh, config.parallel.backend)
    )
    batches = data.make_eval_iterator(
        config.dataset,
        batch_size=config.train.eval_batch_size,
        num_examples=config.train.eval_examples or None,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    totals: dict[str, jax.Array] = {}
    for index, batch in enumerate(batches):
        sums = step_fn(
            state,
            parallel.shard_batch(batch, run.mesh),
            jax.random.fold_in(run.keys['eval'], index),
        )
        totals = sums if not totals else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = totals.pop('count')
    return {name: float(value / count) for name, value in totals.items()}


def class_labels(num_classes: int, num_samples: int) -> np.ndarray | None:
    """Labels of a class-conditional grid: one row per class, about `num_samples` images
    (at least one per class); None for unconditional models."""
    if not num_classes:
        return None
    per_class = max(1, round(num_samples / num_classes))
    return np.repeat(np.arange(num_classes, dtype=np.int32), per_class)


def save_samples(
    run: Run,
    state: TrainState,
    workdir: Path,
    tag: str,
    writer: logs.MetricWriter | None = None,
    step: int = 0,
) -> list[Path]:
    """PNG grids from fixed noise (and, for encoders, fixed eval reconstructions); a
    class-conditional model's samples have one row per class.

    Every process computes them (the state spans all processes' devices); process 0 writes
    them and returns their paths, the others return [].
    """
    config, model = run.config, run.model
    if model.generate is None:  # a classifier: nothing to draw
        return []
    labels = class_labels(model.num_classes, config.train.num_samples)
    num = config.train.num_samples if labels is None else len(labels)
    grids = {
        'samples': np.asarray(
            jax.jit(model.generate, static_argnums=2)(state, run.keys['sample'], num, labels)
        )
    }
    if model.reconstruct is not None:
        batch = next(
            iter(
                data.make_eval_iterator(
                    config.dataset, batch_size=max(config.train.num_samples // 2, 1)
                )
            )
        )
        originals = batch['image']
        label_args = (batch['label'],) if model.num_classes else ()
        recon = np.asarray(
            jax.jit(model.reconstruct)(state, originals, run.keys['sample'], *label_args)
        )
        low, high = model.image_range
        scaled = originals.astype(np.float32) / 255.0 * (high - low) + low
        grids['reconstructions'] = np.stack([scaled, recon], axis=1).reshape(-1, *recon.shape[1:])
    if model.transform is not None:
        grids['transformations'] = transformation_grid(run, state)
    if jax.process_index() != 0:
        return []
    paths = []
    for name, grid_images in grids.items():
        # Reconstructions come in (original, reconstruction) pairs side by side, transformations
        # in (input, target, output) triples, class-conditional samples in one row per class.
        if name == 'samples':
            ncol = None if labels is None else num // model.num_classes
        else:
            group = 3 if name == 'transformations' else 2
            ncol = group * int(np.ceil(np.sqrt(len(grid_images) / group)))
        grid = images.make_grid(grid_images, ncol=ncol, value_range=model.image_range)
        paths.append(images.save_png(workdir / 'samples' / f'{name}_{tag}.png', grid))
        if writer is not None:
            writer.write_images(step, {name: grid})
    return paths


def transformation_grid(run: Run, state: TrainState) -> np.ndarray:
    """(input, target, output) triples of the first eval images, flattened for a grid.

    Pairs come from `transforms.make_pair` with per-image keys folded from the sample key;
    the output is the model's transform of the input. Images in [0, 1].
    """
    config = run.config
    num = max(config.train.num_samples // 3, 1)
    originals = next(iter(data.make_eval_iterator(config.dataset, batch_size=num)))['image']

    def triples(state, originals, rng):
        x = base.images_to_unit(originals)
        source, target = transforms.make_pair(config.transform, x, base.index_keys(rng, num))
        return jnp.stack([source, target, run.model.transform(state, source, rng)], axis=1)

    grid = jax.jit(triples)(state, originals, run.keys['sample'])
    return np.asarray(grid).reshape(-1, *grid.shape[2:])


def protocol(run: Run) -> dict[str, Any]:
    """How the eval numbers were computed: what a results table must state."""
    config = run.config
    return {
        'dataset': config.dataset.name,
        'split': config.dataset.eval_split,
        'num_examples': config.train.eval_examples or run.info.num_eval,
        'seed': config.seed,
        'binarization': 'dynamic (fixed eval key)' if config.dataset.binarize else 'none',
        'metric_units': 'nats per image' if config.model.name == 'vae' else 'per example',
    } | _transform_protocol(config)


def _transform_protocol(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The hybrid's (x, x') pairs and how its outputs are scored; {} for other models."""
    if config.model.name != 'hybrid':
        return {}
    return {
        'transform': config.transform.to_dict(),
        'metric_units': 'ELBO terms in nats per image; ' + transformation.PROTOCOL,
    }


def write_results(
    run: Run, workdir: Path, step: int, metrics: dict[str, float], **extra: Any
) -> dict[str, Any]:
    """`results.json`: final metrics with their protocol (process 0 only)."""
    results = {
        'step': step,
        'metrics': metrics,
        'protocol': protocol(run),
        'model': run.config.model.name,
        'time': time.time(),
        **extra,
    }
    if jax.process_index() == 0:
        logs.write_json(workdir / 'results.json', results)
    return results
