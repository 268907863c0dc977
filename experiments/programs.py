"""Compiled programs shared by runs whose configs differ only in shape-free hyperparameters.

Learning rates, loss weights and seeds change no shape, so trials of a sweep over them can
share one compiled train step. Here they enter the programs as arrays (the learning rate
is also kept in the optimiser state, via `optax.inject_hyperparams`), and programs are kept
per config *structure* (the config without those keys): the second trial run in a process
reuses the first one's traced and compiled init, train and eval programs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from gen_models import parallel
from gen_models.models import build_model

# Config keys that reach the compiled programs as float32 arrays: model code uses them
# only in arithmetic, so a traced value can stand in for the number.
HYPERPARAMETERS = ('lr', 'model.beta', 'optim.d_lr_multiplier')
# The seed reaches programs through PRNG keys (and the host-side data order).
SEED = 'seed'
SHAPE_FREE = (*HYPERPARAMETERS, SEED)

Hyperparameters = dict[str, jax.Array]


def get_key(config: ml_collections.ConfigDict, key: str) -> Any:
    """The value of a dotted key, e.g. 'model.beta'."""
    node = config
    for part in key.split('.'):
        node = node[part]
    return node


def hyperparameters(config: ml_collections.ConfigDict) -> Hyperparameters:
    """The config's shape-free hyperparameters as float32 arrays, by dotted key."""
    return {key: jnp.float32(get_key(config, key)) for key in HYPERPARAMETERS}


def with_hyperparameters(
    config: ml_collections.ConfigDict, values: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of `config` holding `values` (numbers, arrays or tracers) at their keys."""
    config = copy.deepcopy(config)
    for key, value in values.items():
        parent, _, leaf = key.rpartition('.')
        node = get_key(config, parent) if parent else config
        with node.ignore_type():
            node[leaf] = value
    return config


def structure(config: ml_collections.ConfigDict) -> str:
    """The config without its shape-free keys, as canonical JSON: configs with the same
    structure train with the same compiled programs."""
    tree = config.to_dict()
    for key in SHAPE_FREE:
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
    eval_step: (state, batch, rng, hparams) -> metric sums and 'count' over the mesh.
    vmapped_init, vmapped_train_step: init and train_step mapped with `jax.vmap` over a
      leading trial axis of every argument but the example batch (vectorised sweeps: stacked
      states, batches (trials, batch, ...), keys and hyperparameters).
    """

    init: Callable
    train_step: Callable
    eval_step: Callable
    vmapped_init: Callable
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

    def model(hparams: Hyperparameters):
        return build_model(with_hyperparameters(config, hparams), info)

    def init(rng, example, hparams):
        return model(hparams).init(rng, example)

    def train_step(state, batch, rng, hparams):
        return parallel.train_step(model(hparams).train_step, mesh, backend)(state, batch, rng)

    def eval_step(state, batch, rng, hparams):
        return parallel.eval_step(model(hparams).eval_step, mesh, backend)(state, batch, rng)

    return Programs(
        init=jax.jit(init),
        train_step=jax.jit(train_step, donate_argnums=0),
        eval_step=jax.jit(eval_step),
        vmapped_init=jax.jit(jax.vmap(init, in_axes=(0, None, 0))),
        vmapped_train_step=jax.jit(jax.vmap(train_step), donate_argnums=0),
    )
