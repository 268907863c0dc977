"""What train, eval and sample modes share: a prepared run, restore, eval, sample grids.

`prepare` does everything that can fail on a bad config (validation, dataset lookup, what
the model family needs of the data, what the metrics need of the model) before any compile,
so errors arrive in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import logs, programs
from gen_models import data, images, metrics, models, parallel, schema
from gen_models.checkpoints import Checkpointer
from gen_models.config import ConfigError
from gen_models.models import ModelDef, TrainState, build_model

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
    """Validates `config`, looks up (and if needed prepares) its dataset, builds the model;
    the run's config has its toggles resolved (`schema.resolve`)."""
    num_devices = jax.device_count()
    schema.validate(config, num_devices=num_devices)
    config = schema.resolve(config)
    _check_data_dir(config)
    try:
        info = data.dataset_info(config.dataset)
        data.check_splits(config.dataset, metrics.splits(config))
    except data.SplitError as error:
        raise ConfigError(error.key, error.split, error.reason) from None
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError('dataset.name', config.dataset.name, str(error)) from None
    if config.train.eval_examples > info.num_eval:
        raise ConfigError(
            'train.eval_examples',
            config.train.eval_examples,
            f'at most the {info.num_eval} examples of dataset.eval_split={config.dataset.eval_split!r}'
            ' (0 = all)',
        )
    models.family(config.model.name).validate(config, info, num_devices)
    model = build_model(config, info)
    metrics.check_model(config, model)
    root = jax.random.key(config.seed)
    keys = {name: jax.random.fold_in(root, index) for index, name in enumerate(KEY_NAMES)}
    return Run(config=config, info=info, model=model, mesh=parallel.make_mesh(), keys=keys)


def _check_data_dir(config: ml_collections.ConfigDict) -> None:
    """The prepared-data folder must exist or be creatable (data are prepared there on first
    use; a read-only folder of prepared data is fine)."""
    path = Path(data.DataSpec.from_config(config.dataset).data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            'dataset.data_dir',
            config.dataset.data_dir or str(path),
            f'a folder that exists or can be made ({error.strerror}: {path})',
        ) from None


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
    return Checkpointer(
        workdir / 'checkpoints', max_to_keep=run.config.train.keep_checkpoints, finite=True
    )


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


def check_trained(workdir: Path, folder: str = 'checkpoints') -> None:
    """FileNotFoundError, before anything is compiled or created, when `workdir/folder`
    holds no checkpoint."""
    path = workdir / folder
    if not path.is_dir() or not any(p.name.isdigit() for p in path.iterdir()):
        raise FileNotFoundError(
            f'no checkpoint in {path}: train first (--mode train) with this --workdir'
        )


def restore_latest(run: Run, workdir: Path) -> tuple[TrainState, int]:
    """The newest sound checkpoint of `workdir`; FileNotFoundError when there is none."""
    check_trained(workdir)
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


def save_samples(
    run: Run,
    state: TrainState,
    workdir: Path,
    tag: str,
    writer: logs.MetricWriter | None = None,
    step: int = 0,
) -> list[Path]:
    """PNG grids of the model's `sample_grids` (samples from fixed noise, reconstructions,
    transformations, ...), as `<workdir>/samples/<name>_<tag>.png`.

    Every process computes them (the state spans all processes' devices); process 0 writes
    them and returns their paths, the others return [].
    """
    model = run.model
    if model.sample_grids is None:  # e.g. a classifier: nothing to draw
        return []

    def eval_batch(num: int) -> dict[str, np.ndarray]:
        return next(iter(data.make_eval_iterator(run.config.dataset, batch_size=num)))

    grids = model.sample_grids(state, run.keys['sample'], run.config.train.num_samples, eval_batch)
    if jax.process_index() != 0:
        return []
    paths = []
    for name, grid in grids.items():
        image = images.make_grid(grid.images, ncol=grid.ncol, value_range=model.image_range)
        paths.append(images.save_png(workdir / 'samples' / f'{name}_{tag}.png', image))
        if writer is not None:
            writer.write_images(step, {name: image})
    return paths


def protocol(run: Run) -> dict[str, Any]:
    """How the eval numbers were computed: what a results table must state."""
    config = run.config
    return {
        'dataset': config.dataset.name,
        'split': config.dataset.eval_split,
        'num_examples': config.train.eval_examples or run.info.num_eval,
        'seed': config.seed,
        'binarization': 'dynamic (fixed eval key)' if config.dataset.binarize else 'none',
        **run.model.protocol,
    }


def write_results(
    run: Run, workdir: Path, step: int, metrics: dict[str, float], **extra: Any
) -> dict[str, Any]:
    """`results.json`: final metrics with their protocol (process 0 only). What the file
    already holds for the same step and is not given again (e.g. the train metrics and
    compile time, when `--mode eval` rewrites it) is kept."""
    path = workdir / 'results.json'
    previous = json.loads(path.read_text()) if path.is_file() else {}
    results = {
        **(previous if previous.get('step') == step else {}),
        'step': step,
        'metrics': metrics,
        'protocol': protocol(run),
        'model': run.config.model.name,
        'time': time.time(),
        **extra,
    }
    if jax.process_index() == 0:
        logs.write_json(path, results)
    return results
