"""sample(config, workdir): the grids of the newest checkpoint, for every model family.

Besides what training draws (samples in one row per class for conditional models,
reconstructions, transformations), this writes latent interpolations for models with a
latent space: each row decodes points on the great circle between two z ~ N(0, I)
(spherical interpolation, White 2016), so every point is typical under the prior.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import runtime
from experiments import workdir as workdir_lock
from gen_models import images
from gen_models.models import TrainState

INTERPOLATION_ROWS = 8
INTERPOLATION_STEPS = 10


def slerp(start: jax.Array, end: jax.Array, fractions: jax.Array) -> jax.Array:
    """Spherical interpolation from `start` to `end` (D,) at `fractions` (S,): (S, D).

    Falls back to linear interpolation when the two are (nearly) parallel.
    """
    cos = jnp.dot(start, end) / (jnp.linalg.norm(start) * jnp.linalg.norm(end))
    angle = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
    t = fractions[:, None]
    linear = (1 - t) * start + t * end
    sin = jnp.sin(angle)
    spherical = (jnp.sin((1 - t) * angle) * start + jnp.sin(t * angle) * end) / jnp.where(
        sin > 1e-6, sin, 1.0
    )
    return jnp.where(sin > 1e-6, spherical, linear)


def interpolations(
    run: runtime.Run, state: TrainState, rows: int = INTERPOLATION_ROWS
) -> np.ndarray:
    """(rows * INTERPOLATION_STEPS, H, W, C) decoded interpolations, row by row; row r of a
    class-conditional model keeps class r mod num_classes."""
    model = run.model
    ends = jax.random.normal(run.keys['sample'], (2, rows, model.latent_dim))
    fractions = jnp.linspace(0.0, 1.0, INTERPOLATION_STEPS)
    z = jax.vmap(slerp, in_axes=(0, 0, None))(ends[0], ends[1], fractions)
    labels = None
    if model.num_classes:
        labels = jnp.repeat(jnp.arange(rows, dtype=jnp.int32) % model.num_classes, len(fractions))
    decoded = jax.jit(model.decode)(state, z.reshape(-1, model.latent_dim), labels)
    return np.asarray(decoded)


def sample(config: ml_collections.ConfigDict, workdir: str | Path) -> list[Path]:
    """Writes PNG grids to `workdir/samples/*_final_<step>.png`; returns their paths."""
    workdir = Path(workdir)
    run = runtime.prepare(config)
    runtime.check_trained(workdir)
    with workdir_lock.lock(workdir):
        state, step = runtime.restore_latest(run, workdir)
        tag = f'final_{step:07d}'
        paths = runtime.save_samples(run, state, workdir, tag)
        if run.model.decode is not None and run.model.latent_dim:
            grid = images.make_grid(
                interpolations(run, state),
                ncol=INTERPOLATION_STEPS,
                value_range=run.model.image_range,
            )
            if jax.process_index() == 0:
                path = workdir / 'samples' / f'interpolations_{tag}.png'
                paths.append(images.save_png(path, grid))
    return paths
