"""Model families by `config.model.name`; each module exports `build(config, info)`."""

from __future__ import annotations

from gen_models.models import classifier, gan, hybrid, vae, vaegan
from gen_models.models.base import DATA_AXIS, ModelDef, TrainState

MODEL_BUILDERS = {
    'gan': gan.build,
    'vae': vae.build,
    'vaegan': vaegan.build,
    'hybrid': hybrid.build,
    'classifier': classifier.build,
}


def build_model(config, info) -> ModelDef:
    """The `ModelDef` named by `config.model.name`, for a dataset described by `info`."""
    return MODEL_BUILDERS[config.model.name](config, info)


__all__ = ['DATA_AXIS', 'MODEL_BUILDERS', 'ModelDef', 'TrainState', 'build_model']
