"""What the image-transformation families share: scoring outputs against exact targets and
the (input, target, output) grid. Not a family (it exports no `FAMILY`)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_models.data import transforms
from gen_models.metrics import transformation
from gen_models.models import base


def output_scores(
    outputs: jax.Array, source: jax.Array, target: jax.Array, transform_config, keys: jax.Array
) -> base.Metrics:
    """Per-example MSE, PSNR and SSIM of the outputs, of the untransformed inputs
    ('identity_*') and, for inpainting, of the outputs with the known pixels pasted back
    ('completed_*'); images in [0, 1], `keys` those that made the pairs."""
    scores = transformation.scores(outputs, target)
    if transform_config.name == 'mask':
        known = transforms.mask(jnp.ones_like(source), transform_config.mask, keys)
        completed = transformation.scores(known * source + (1 - known) * outputs, target)
        scores.update({f'completed_{name}': value for name, value in completed.items()})
    identity = transformation.scores(source, target)
    scores.update({f'identity_{name}': value for name, value in identity.items()})
    return scores


def transformation_grid(
    transform: Callable[..., jax.Array],
    transform_config,
    state,
    rng: jax.Array,
    num_samples: int,
    eval_batch: Callable[[int], dict],
) -> base.Grid:
    """(input, target, output) triples of the first eval images, side by side; pairs come
    from per-image keys folded from `rng`, outputs from `transform(state, inputs, rng)`.
    Images in [0, 1]."""
    num = max(num_samples // 3, 1)
    originals = eval_batch(num)['image']

    def triples(state, originals, rng):
        x = base.images_to_unit(originals)
        source, target = transforms.make_pair(transform_config, x, base.index_keys(rng, num))
        return jnp.stack([source, target, transform(state, source, rng)], axis=1)

    grid = np.asarray(jax.jit(triples)(state, originals, rng))
    images = grid.reshape(-1, *grid.shape[2:])
    return base.Grid(images, base.grouped_columns(len(images), 3))
