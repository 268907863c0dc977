"""Optimiser construction from config, with learning-rate schedules.

Hyperparameters are injected (`optax.inject_hyperparams`) so that they live in the
optimiser state: runs that differ only in learning rate share one compiled step. A schedule
multiplies the (possibly traced) base learning rate by a function of the optimiser's update
count, which the optimiser state holds, so a resumed run continues its schedule.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ('adam', 'adamw', 'adagrad', 'sgd', 'rmsprop')
SCHEDULES = ('constant', 'linear', 'cosine', 'piecewise', 'exponential')


def lr_multiplier(
    optim_config, num_steps: int, updates_per_step: int = 1
) -> Callable[[jax.Array], jax.Array]:
    """update count -> factor of the base learning rate, a function of the train step
    `count // updates_per_step` (a player updated n times per step keeps one rate per step).

    `optim.schedule`: 'constant' 1; 'linear' 1 - p (0 at the end); 'cosine' (1 + cos(pi p)) / 2,
    where p = (step - s) / (num_steps - s) clipped to [0, 1] and s = `optim.decay_start` x
    num_steps (the rate holds until step s, as CycleGAN's does for half its run); 'piecewise' the product of the
    `optim.schedule_scales` whose `optim.schedule_boundaries` are <= step; 'exponential'
    optim.decay_rate ** step. Times a linear warm-up min(1, step / optim.warmup_steps) when
    `optim.warmup_steps` > 0.
    """
    name, warmup = optim_config.schedule, optim_config.warmup_steps
    start = optim_config.decay_start * num_steps
    boundaries = jnp.asarray(optim_config.schedule_boundaries, jnp.int32)
    scales = jnp.asarray(optim_config.schedule_scales, jnp.float32)
    if name not in SCHEDULES:
        raise ValueError(f'optim.schedule={name!r}: allowed {SCHEDULES}')

    def multiplier(count: jax.Array) -> jax.Array:
        step = count // updates_per_step
        progress = jnp.clip((step - start) / (num_steps - start), 0.0, 1.0).astype(jnp.float32)
        if name == 'linear':
            factor = 1.0 - progress
        elif name == 'cosine':
            factor = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        elif name == 'piecewise':
            factor = jnp.prod(jnp.where(step >= boundaries, scales, 1.0))
        elif name == 'exponential':
            factor = jnp.float32(optim_config.decay_rate) ** step.astype(jnp.float32)
        else:
            factor = jnp.float32(1.0)
        if warmup:
            factor *= jnp.minimum(step.astype(jnp.float32) / warmup, 1.0)
        return factor

    return multiplier


def _momentum(optim_config, updates_per_step: int) -> float | Callable | None:
    """SGD's momentum: `optim.b1` (None when 0), or with `optim.momentum_ramp_steps` > 0 a
    function of the update count rising linearly from b1 to `optim.final_momentum` over
    that many train steps (pylearn2's MomentumAdjustor, used by Goodfellow et al. 2014)."""
    start, ramp = optim_config.b1, optim_config.momentum_ramp_steps
    if not ramp:
        return start or None
    final = optim_config.final_momentum

    def momentum(count: jax.Array) -> jax.Array:
        progress = jnp.minimum((count // updates_per_step).astype(jnp.float32) / ramp, 1.0)
        return start + (final - start) * progress

    return momentum


def make_optimizer(
    optim_config, learning_rate: float, num_steps: int, updates_per_step: int = 1
) -> optax.GradientTransformation:
    """An optax optimiser named by `optim.name`, at `learning_rate` times the schedule of
    `lr_multiplier` over `num_steps` train steps of `updates_per_step` updates each.

    A constant rate stays a number (optimiser states keep the layout they had before
    schedules existed, so older checkpoints restore).
    """
    if optim_config.schedule == 'constant' and not optim_config.warmup_steps:
        rate = learning_rate
    else:
        multiplier = lr_multiplier(optim_config, num_steps, updates_per_step)

        def rate(count):
            return learning_rate * multiplier(count)

    name = optim_config.name
    if name == 'adam':
        return optax.inject_hyperparams(optax.adam)(
            learning_rate=rate,
            b1=optim_config.b1,
            b2=optim_config.b2,
            eps=optim_config.eps,
        )
    if name == 'adamw':
        return optax.inject_hyperparams(optax.adamw)(
            learning_rate=rate,
            b1=optim_config.b1,
            b2=optim_config.b2,
            eps=optim_config.eps,
            weight_decay=optim_config.weight_decay,
        )
    if name == 'adagrad':
        return optax.inject_hyperparams(optax.adagrad)(learning_rate=rate, eps=optim_config.eps)
    if name == 'rmsprop':
        return optax.inject_hyperparams(optax.rmsprop)(
            learning_rate=rate, decay=optim_config.b2, eps=optim_config.eps
        )
    if name == 'sgd':
        return optax.inject_hyperparams(optax.sgd)(
            learning_rate=rate, momentum=_momentum(optim_config, updates_per_step)
        )
    raise ValueError(f'optim.name={name!r}: allowed {OPTIMIZERS}')
