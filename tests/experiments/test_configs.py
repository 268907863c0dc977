"""Every shipped config file, in every variant and every trial of its sweep, is valid."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from configs import default
from gen_models import config as cfg
from gen_models import schema

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs'


def _variants(module) -> tuple[str | None, ...]:
    """None (the default) and every variant the file's check_variant allows."""
    try:
        module.get_config('\0')
    except default.UnknownVariantError as error:
        return (None, *error.allowed)
    raise AssertionError(f'{module.__name__} accepts any variant')


def _shipped() -> list[tuple[str, str | None]]:
    names = sorted(p.stem for p in CONFIG_DIR.glob('*.py') if not p.stem.startswith('_'))
    return [
        (name, variant)
        for name in names
        for variant in _variants(importlib.import_module(f'configs.{name}'))
    ]


@pytest.mark.parametrize('name,variant', _shipped())
def test_config_and_its_sweep_are_valid(name, variant):
    module = importlib.import_module(f'configs.{name}')
    config = module.get_config(variant)
    schema.validate(config)
    for overrides in module.get_sweep(variant) if hasattr(module, 'get_sweep') else ():
        schema.validate(cfg.apply_overrides(config, overrides))
