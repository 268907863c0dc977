"""The interface every model family implements, the state it trains, and shared pieces.

A family is one module of `gen_models.models` exporting `FAMILY`, a `Family`: its config
section (defaults and rules), which of its float keys are traced into compiled programs, and
its `build(config, info) -> ModelDef`. The training loop knows nothing about GANs or VAEs:
it calls a `ModelDef`'s pure functions. Train and eval steps are written *per device*:
gradients and metrics are averaged with `lax.pmean` over `DATA_AXIS`, and
`gen_models.parallel` maps them over the device mesh.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gen_models import nets
from gen_models.config import ConfigError, Rule
from gen_models.nets import precision

DATA_AXIS = 'data'
Net = precision.Net  # a family's net: an `nn.Module`, or one computing in train.compute_dtype

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue: no PRNG key (keys derive from `step`).

    `params`, `batch_stats` and `opt_state` hold one entry per network or player,
    e.g. {'generator': ..., 'discriminator': ...}; `batch_stats` holds what the train step
    updates besides parameters (batch-norm statistics, CycleGAN's image pools).
    """

    step: jax.Array
    params: dict[str, Any]
    batch_stats: dict[str, Any]
    opt_state: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Grid:
    """A sample grid: images in the model's `image_range`, `ncol` per row (None: square)."""

    images: np.ndarray
    ncol: int | None = None


# (state, rng, num_samples, eval_batch) -> {name: Grid}; eval_batch(n) gives the first n
# examples of the eval split as uint8 numpy arrays ('image', 'label').
SampleGrids = Callable[[Any, jax.Array, int, Callable[[int], dict]], dict[str, Grid]]


@dataclasses.dataclass(frozen=True)
class ModelDef:
    """Pure functions of one model family, closed over its config.

    init: (rng, example_batch) -> TrainState.
    train_step: (state, batch, rng) -> (state, metrics); per device, pmean over DATA_AXIS.
    eval_step: (state, batch, rng) -> metric *sums* over the batch's real examples
      (batch['mask'] == 1) plus 'count', psum'd over DATA_AXIS; the loop divides.
    generate: (state, rng, num, labels=None) -> images in `image_range`; None for models that
      generate nothing (the classifier used as a feature network).
    reconstruct: (state, images, rng, labels=None) -> images, for models with an encoder, else
      None; conditional models need the images' labels.
    transform: (state, images, rng) -> transformed images, for image-transformation models.
    pairs: (uint8 images, keys) -> (inputs, exact targets) in [0, 1] of those models, one key
      per image (noise and random masks are drawn from it).
    log_weights: (state, batch, rng, offset, num) -> (B, num) importance log-weights
      log p(x, z_s) - log q(z_s | x) of samples s = offset .. offset + num - 1 per example, per
      device, for models with an encoder (the IWAE bound); x observed as `eval_step` does.
    decode: (state, z, labels=None) -> images in `image_range`, for latent-variable models:
      `generate` draws z ~ N(0, I) of size `latent_dim` and decodes it; sample modes decode
      latent interpolations with it.
    represent: (state, uint8 images, rng=None) -> (B, D) representations, what the
      disentanglement metrics score: an encoder's means, or with `rng` draws of q(z|x).
    classify: (state, uint8 images) -> (features, logits), for classifiers: the feature
      network of dataset FID/KID and of the classifier scores.
    latent_dim: size of z for `decode` (0 when there is no latent space).
    num_classes: > 0 for class-conditional models, whose `generate` and `decode` honour
      `labels` (int32, one per image); 0 for unconditional ones.
    summary_keys: train metrics the progress bar shows.
    protocol: what the eval step's numbers are, for results.json (e.g. 'metric_units').
    sample_grids: the grids a run saves (`SampleGrids`); None draws nothing.
    """

    init: Callable[..., TrainState]
    train_step: Callable[..., tuple[TrainState, Metrics]]
    eval_step: Callable[..., Metrics]
    generate: Callable[..., jax.Array] | None
    image_range: tuple[float, float]
    reconstruct: Callable[..., jax.Array] | None = None
    transform: Callable[..., jax.Array] | None = None
    pairs: Callable[..., tuple[jax.Array, jax.Array]] | None = None
    log_weights: Callable[..., jax.Array] | None = None
    decode: Callable[..., jax.Array] | None = None
    classify: Callable[..., tuple[jax.Array, jax.Array]] | None = None
    represent: Callable[..., jax.Array] | None = None
    latent_dim: int = 0
    num_classes: int = 0
    summary_keys: tuple[str, ...] = ('loss',)
    protocol: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {'metric_units': 'per example'}
    )
    sample_grids: SampleGrids | None = None


def _no_checks(config: ml_collections.ConfigDict, info: Any, num_devices: int) -> None:
    del config, info, num_devices


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: its part of the config and how to build it (docs/adding_a_family.md).

    name: the value of `model.name` that selects it.
    defaults: () -> the keys of `config.model` besides 'name', each with a one-line comment.
    build: (config, info) -> ModelDef, for a dataset described by `info`.
    rules: dotted key -> (predicate, what is allowed), checked for every config.
    validate: (config, info, num_devices) -> None, raising `ConfigError` for combinations the
      rules cannot state; `info` (the dataset's `DatasetInfo`) is None before data is known.
    traced: float keys that enter compiled programs as arrays, so that configs differing only
      in them share a compile and can be trained as one vectorised program.
    toggles: switch key -> traced weight key, for weights whose zero once meant "off": the
      switch decides the program's structure (None: on when the weight is not 0).
    reads: shared keys outside `train`, `dataset`, `eval`, `optim`, `parallel` defaults
      that only some families honour (e.g. 'dataset.binarize'); the others refuse them.
    """

    name: str
    defaults: Callable[[], ml_collections.ConfigDict]
    build: Callable[[ml_collections.ConfigDict, Any], ModelDef]
    rules: Mapping[str, Rule] = dataclasses.field(default_factory=dict)
    validate: Callable[[ml_collections.ConfigDict, Any, int], None] = _no_checks
    traced: tuple[str, ...] = ()
    toggles: Mapping[str, str] = dataclasses.field(default_factory=dict)
    reads: tuple[str, ...] = ()


def compute_dtype_wrapper(config: ml_collections.ConfigDict) -> Callable[[Any], Net]:
    """net -> the net computing in `train.compute_dtype` (`gen_models.nets.precision`):
    every family passes each net it trains through this."""
    return functools.partial(precision.with_compute_dtype, compute_dtype=config.train.compute_dtype)


def switch(value: bool | None, weight: Any) -> bool:
    """A toggle's value: as set, or when None (the default), whether its weight is not 0."""
    return bool(weight != 0) if value is None else bool(value)


def images_to_unit(images: jax.Array) -> jax.Array:
    """uint8 pixels -> float32 in [0, 1]."""
    return images.astype(jnp.float32) / 255.0


def images_to_symmetric(images: jax.Array) -> jax.Array:
    """uint8 pixels -> float32 in [-1, 1]."""
    return images.astype(jnp.float32) / 127.5 - 1.0


def index_keys(rng: jax.Array, num: int, offset: jax.Array | int = 0) -> jax.Array:
    """Keys `fold_in(rng, offset + i)` for i < num: one per example, by its index."""
    return jax.vmap(lambda i: jax.random.fold_in(rng, i))(offset + jnp.arange(num))


def example_keys(rng: jax.Array, local_batch: int) -> jax.Array:
    """One key per example of a mapped step, folded from its index in the *global* batch.

    The device's offset is `axis_index * local_batch`, so noise drawn per example is
    the same whatever the number of devices.
    """
    return index_keys(rng, local_batch, jax.lax.axis_index(DATA_AXIS) * local_batch)


def standard_normal(keys: jax.Array, dim: int) -> jax.Array:
    """One N(0, I) draw of size `dim` per key: (num_keys, dim)."""
    return jax.vmap(lambda k: jax.random.normal(k, (dim,)))(keys)


def apply_gradients(
    tx: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any
) -> tuple[Any, Any]:
    """One optimiser update; returns (new params, new optimiser state)."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def masked_sums(per_example: Mapping[str, jax.Array], mask: jax.Array) -> Metrics:
    """Sums of per-example metrics over real examples, plus 'count', across devices."""
    sums = {name: jnp.sum(value * mask) for name, value in per_example.items()}
    sums['count'] = jnp.sum(mask)
    return jax.lax.psum(sums, DATA_AXIS)


def class_labels(num_classes: int, num_samples: int) -> np.ndarray | None:
    """Labels of a class-conditional grid: one row per class, about `num_samples` images
    (at least one per class); None for unconditional models."""
    if not num_classes:
        return None
    per_class = max(1, round(num_samples / num_classes))
    return np.repeat(np.arange(num_classes, dtype=np.int32), per_class)


def grouped_columns(num: int, group: int) -> int:
    """Columns of a grid of `num` images in groups of `group` side by side (pairs, triples)."""
    return group * int(np.ceil(np.sqrt(num / group)))


def standard_grids(
    generate: Callable[..., jax.Array] | None,
    reconstruct: Callable[..., jax.Array] | None,
    num_classes: int,
    image_range: tuple[float, float],
) -> SampleGrids:
    """Grids of a model: 'samples' from fixed noise (one row per class for conditional
    models) where it generates, and with an encoder 'reconstructions': (original,
    reconstruction) pairs of the first eval images side by side."""

    def grids(state, rng, num_samples, eval_batch):
        out = {}
        if generate is not None:
            labels = class_labels(num_classes, num_samples)
            num = num_samples if labels is None else len(labels)
            samples = np.asarray(jax.jit(generate, static_argnums=2)(state, rng, num, labels))
            out['samples'] = Grid(samples, None if labels is None else num // num_classes)
        if reconstruct is not None:
            batch = eval_batch(max(num_samples // 2, 1))
            label_args = (batch['label'],) if num_classes else ()
            recon = np.asarray(jax.jit(reconstruct)(state, batch['image'], rng, *label_args))
            low, high = image_range
            scaled = batch['image'].astype(np.float32) / 255.0 * (high - low) + low
            pairs = np.stack([scaled, recon], axis=1).reshape(-1, *recon.shape[1:])
            out['reconstructions'] = Grid(pairs, grouped_columns(len(pairs), 2))
        return out

    return grids


def check_labels(config: ml_collections.ConfigDict, info: Any) -> None:
    """Class-conditional models (`model.conditional`) need a dataset with labels."""
    if config.model.conditional and info.num_classes == 0:
        raise ConfigError(
            'model.conditional', True, f'False: dataset {config.dataset.name!r} has no labels'
        )


def check_conv_images(config: ml_collections.ConfigDict, info: Any, min_side: int = 0) -> None:
    """Conv stacks need image sides with enough factors of two (and at least `min_side` px);
    the error names the key that set the size."""
    key = 'dataset.image_size' if config.dataset.image_size else 'dataset.name'
    value = config.dataset.image_size or config.dataset.name
    try:
        nets.check_image_shape(info.image_shape)
    except ValueError as error:
        raise ConfigError(key, value, f'conv nets cannot use this size: {error}') from None
    if min(info.image_shape[:2]) < min_side:
        raise ConfigError(
            key, value, f'images of at least {min_side} px per side (got {tuple(info.image_shape)})'
        )
    side = min(info.image_shape[:2])
    if config.model.get('kernel_size', 0) > side:
        raise ConfigError(
            'model.kernel_size',
            config.model.kernel_size,
            f'at most the image side ({side} px): a larger kernel sees nothing more',
        )
