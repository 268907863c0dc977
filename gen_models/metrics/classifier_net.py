"""A trained classifier run (configs/classifier.py) as feature networks: its penultimate
features (dataset FID/KID) and its class probabilities (classifier score, class accuracy).

Read from the run's workdir alone: its config.json (on today's schema) and newest checkpoint,
so evaluation and `python -m gen_models.score` load it the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from gen_models import config as cfg
from gen_models import data, schema
from gen_models.checkpoints import Checkpointer
from gen_models.metrics import features
from gen_models.models import build_model


def load(
    workdir: str | Path, batch_size: int, image_shape: tuple[int, ...]
) -> tuple[features.FeatureNet, features.FeatureNet]:
    """(features, probabilities) nets of the newest checkpoint of a classifier run, for images
    of `image_shape`; named by its dataset and step, identified by its params' checksum.
    ConfigError (key eval.classifier_workdir) when the workdir holds no such classifier."""
    workdir = Path(workdir)

    def refuse(what: str) -> cfg.ConfigError:
        return cfg.ConfigError('eval.classifier_workdir', str(workdir), what)

    path = workdir / 'config.json'
    if not path.is_file():
        raise refuse('the workdir of a trained classifier run (it has no config.json)')
    config = schema.from_saved(json.loads(path.read_text()))
    info = data.dataset_info(config.dataset)
    model = build_model(config, info)
    if model.classify is None or tuple(info.image_shape) != tuple(image_shape):
        raise refuse(
            f'a classifier run on images of shape {tuple(image_shape)} '
            f'(this is a {config.model.name!r} run on {config.dataset.name})'
        )
    example = {
        'image': np.zeros((1, *info.image_shape), np.uint8),
        'label': np.zeros((1,), np.int32),
    }
    target = jax.jit(model.init)(jax.random.key(0), example)
    with Checkpointer(workdir / 'checkpoints', finite=True) as manager:
        restored = manager.restore(target)
    if restored is None:
        raise refuse('a trained classifier run (it has no checkpoint)')
    state, step = restored
    return features.classifier_nets(
        model.classify,
        jax.device_get(state),
        tuple(image_shape),
        f'classifier({config.dataset.name}, step {step})',
        batch_size,
    )
