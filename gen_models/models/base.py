"""The interface every model family implements, and the state it trains.

The training loop knows nothing about GANs or VAEs: it calls a `ModelDef`'s pure
functions. Train and eval steps are written *per device*: gradients and metrics are
averaged with `lax.pmean` over `DATA_AXIS`, and `gen_models.parallel` maps them over
the device mesh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

DATA_AXIS = 'data'

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue: no PRNG key (keys derive from `step`).

    `params`, `batch_stats` and `opt_state` hold one entry per network or player,
    e.g. {'generator': ..., 'discriminator': ...}.
    """

    step: jax.Array
    params: dict[str, Any]
    batch_stats: dict[str, Any]
    opt_state: dict[str, Any]


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
    log_weights: (state, batch, rng, offset, num) -> (B, num) importance log-weights
      log p(x, z_s) - log q(z_s | x) of samples s = offset .. offset + num - 1 per example, per
      device, for models with an encoder (the IWAE bound); x observed as `eval_step` does.
    decode: (state, z, labels=None) -> images in `image_range`, for latent-variable models:
      `generate` draws z ~ N(0, I) of size `latent_dim` and decodes it; sample modes decode
      latent interpolations with it.
    latent_dim: size of z for `decode` (0 when there is no latent space).
    num_classes: > 0 for class-conditional models, whose `generate` and `decode` honour
      `labels` (int32, one per image); 0 for unconditional ones, which ignore them.
    """

    init: Callable[..., TrainState]
    train_step: Callable[..., tuple[TrainState, Metrics]]
    eval_step: Callable[..., Metrics]
    generate: Callable[..., jax.Array] | None
    image_range: tuple[float, float]
    reconstruct: Callable[..., jax.Array] | None = None
    transform: Callable[..., jax.Array] | None = None
    log_weights: Callable[..., jax.Array] | None = None
    decode: Callable[..., jax.Array] | None = None
    latent_dim: int = 0
    num_classes: int = 0


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
