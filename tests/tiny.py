"""Configs shrunk to seconds for end-to-end tests."""

from __future__ import annotations

import importlib


def tiny(config_name: str, data_dir: str, source_dir: str = '', **train_overrides):
    """A config shrunk to seconds: few steps, narrow nets, small eval."""
    config = importlib.import_module(f'configs.{config_name}').get_config()
    config.dataset.data_dir = data_dir
    config.dataset.source_dir = source_dir
    config.dataset.shapes_resolution = 28
    for key, value in (('width', 8), ('latent_dim', 4), ('hidden', (32,))):
        if key in config.model:  # the keys of the config's family
            config.model[key] = value
    config.train.update(
        dict(
            num_steps=4,
            batch_size=8,
            log_every=2,
            eval_every=4,
            checkpoint_every=2,
            sample_every=4,
            eval_batch_size=8,
            eval_examples=16,
            num_samples=4,
            progress_bar=False,
        )
    )
    config.train.update(train_overrides)
    return config
