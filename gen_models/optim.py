"""Optimiser construction from config.

Hyperparameters are injected (`optax.inject_hyperparams`) so that they live in the
optimiser state: runs that differ only in learning rate share one compiled step.
"""

from __future__ import annotations

import optax

OPTIMIZERS = ('adam', 'adamw', 'adagrad', 'sgd', 'rmsprop')


def make_optimizer(optim_config, learning_rate: float) -> optax.GradientTransformation:
    """An optax optimiser named by `optim.name`, at `learning_rate`."""
    name = optim_config.name
    if name == 'adam':
        return optax.inject_hyperparams(optax.adam)(
            learning_rate=learning_rate,
            b1=optim_config.b1,
            b2=optim_config.b2,
            eps=optim_config.eps,
        )
    if name == 'adamw':
        return optax.inject_hyperparams(optax.adamw)(
            learning_rate=learning_rate,
            b1=optim_config.b1,
            b2=optim_config.b2,
            eps=optim_config.eps,
            weight_decay=optim_config.weight_decay,
        )
    if name == 'adagrad':
        return optax.inject_hyperparams(optax.adagrad)(
            learning_rate=learning_rate, eps=optim_config.eps
        )
    if name == 'rmsprop':
        return optax.inject_hyperparams(optax.rmsprop)(
            learning_rate=learning_rate, decay=optim_config.b2, eps=optim_config.eps
        )
    if name == 'sgd':
        return optax.inject_hyperparams(optax.sgd)(
            learning_rate=learning_rate, momentum=optim_config.b1 or None
        )
    raise ValueError(f'optim.name={name!r}: allowed {OPTIMIZERS}')
