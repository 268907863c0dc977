"""Compiled programs shared by runs whose configs differ only in traced hyperparameters.

Learning rates, loss weights and seeds change no shape, so trials of a sweep over them can
share one compiled train step. The traced keys (`schema.traced_keys`: 'lr',
'optim.d_lr_multiplier' and each family's `Family.traced`) enter the programs as float32
arrays (the learning rate is also kept in the optimiser state, via
`optax.inject_hyperparams`), and programs are kept per config *structure* (the config without
those keys and the seed, toggles resolved): the second trial run in a process reuses the
first one's traced and compiled init, train and eval programs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from gen_models import config as cfg
from gen_models import parallel, schema
from gen_models.models import build_model

# The seed reaches programs through PRNG keys (and the host-side data order).
SEED = 'seed'

Hyperparameters = dict[str, jax.Array]


def hyperparameters(config: ml_collections.ConfigDict) -> Hyperparameters:
    """The config's traced hyperparameters as float32 arrays, by dotted key."""
    return {key: jnp.float32(cfg.get_key(config, key)) for key in schema.traced_keys(config)}


def structure(config: ml_collections.ConfigDict) -> str:
    """The config without its traced keys and seed, toggles resolved, as canonical JSON:
    configs with the same structure train with the same compiled programs."""
    config = schema.resolve(config)
    tree = config.to_dict()
    for key in (*schema.traced_keys(config), SEED):
        parent, _, leaf = key.rpartition('.')
        node = tree
        for part in filter(None, parent.split('.')):
            node = node[part]
        node.pop(leaf)
    return json.dumps(tree, sort_keys=True, default=repr)


@dataclasses.dataclass(frozen=True)
class Programs:
    """Jitted programs of one config structure; each takes the hyperparameters last.

    init: (rng, example_batch, hparams) -> TrainState (on the default device).
    train_step: (state, batch, base_rng, hparams) -> (state, metrics), over the mesh, with
      the step key fold_in(base_rng, state.step) as in `parallel.train_step`; donates state.
      With `train.steps_per_call` K > 1: K steps, batches and metrics stacked on a leading
      axis (lax.scan).
    eval_step: (state, batch, rng, hparams) -> metric sums and 'count' over the mesh.
    vmapped_train_step: train_step mapped with `jax.vmap` over a leading trial axis of every
      argument (vectorised trials: stacked states, batches (trials, batch, ...), keys and
      hyperparameters).
    """

    init: Callable
    train_step: Callable
    eval_step: Callable
    vmapped_train_step: Callable


_PROGRAMS: dict[tuple[str, Any, jax.sharding.Mesh], Programs] = {}


def programs(config: ml_collections.ConfigDict, info: Any, mesh: jax.sharding.Mesh) -> Programs:
    """The programs of `config`'s structure on data `info` and `mesh` (built once per process)."""
    key = (structure(config), info, mesh)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = _build(config, info, mesh)
    return _PROGRAMS[key]


def _build(config: ml_collections.ConfigDict, info: Any, mesh: jax.sharding.Mesh) -> Programs:
    backend = config.parallel.backend
    config = schema.resolve(config)

    def model(hparams: Hyperparameters):
        return build_model(cfg.with_values(config, hparams), info)

    def init(rng, example, hparams):
        return model(hparams).init(rng, example)

    steps = config.train.steps_per_call

    def train_step(state, batch, rng, hparams):
        step = parallel.train_step(model(hparams).train_step, mesh, backend)
        if steps == 1:
            return step(state, batch, rng)
        # Several steps in one call: the batches of the steps on a leading axis.
        return jax.lax.scan(lambda state, batch: step(state, batch, rng), state, batch)

    def eval_step(state, batch, rng, hparams):
        return parallel.eval_step(model(hparams).eval_step, mesh, backend)(state, batch, rng)

    return Programs(
        init=jax.jit(init),
        train_step=jax.jit(train_step, donate_argnums=0),
        eval_step=jax.jit(eval_step),
        vmapped_train_step=jax.jit(jax.vmap(train_step), donate_argnums=0),
    )
