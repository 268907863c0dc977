"""A sweep's trials: the config file's `get_sweep()`, each trial's id and validated config.

The config file's `get_sweep(arg=None)` returns the trials as override dicts over dotted
config keys, built with `gen_models.sweep_algebra`. Every trial's config is validated before
any runs, and a bad one is refused naming the trial.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib.util
import json
import re
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from gen_models import config as cfg
from gen_models import schema
from gen_models.sweep_algebra import Overrides

MAX_ID_LENGTH = 120


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of a sweep: the base config with `overrides`, in `trials/<id>/`."""

    id: str
    overrides: Overrides


class SweepError(ValueError):
    """A sweep that cannot run: no or a bad get_sweep(), repeated trials, or a sweep folder
    that holds a sweep of another base config."""


def load_sweep(config_file: str) -> list[Overrides]:
    """The trials of `get_sweep(arg)` in the config file `path[:arg]`."""
    path, _, arg = config_file.partition(':')
    spec = importlib.util.spec_from_file_location('_sweep_config', path)
    if spec is None or spec.loader is None:
        raise SweepError(f'cannot load config file {path!r}')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, 'get_sweep'):
        raise SweepError(f'{path} defines no get_sweep(); --mode sweep needs one')
    try:
        return module.get_sweep(arg) if arg else module.get_sweep()
    except (ValueError, TypeError) as error:
        raise SweepError(f'{config_file}: get_sweep(): {error}') from None


def trial_ids(sweep: Sequence[Overrides]) -> list[str]:
    """Folder names read from the overrides, e.g. 'lr=0.001_seed=2'.

    Keys are shortened to their last part where that is unambiguous in the sweep; an empty
    override dict is 'base'; overlong names end in a hash of the full overrides.
    """
    keys = {key for overrides in sweep for key in overrides}
    last = collections.Counter(key.rpartition('.')[2] for key in keys)
    ids = []
    for overrides in sweep:
        parts = []
        for key, value in overrides.items():
            name = key.rpartition('.')[2]
            parts.append(f'{name if last[name] == 1 else key}={_id_value(value)}')
        trial_id = '_'.join(parts) or 'base'
        if len(trial_id) > MAX_ID_LENGTH:
            digest = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()
            trial_id = f'{trial_id[: MAX_ID_LENGTH - 9]}-{digest[:8]}'
        ids.append(trial_id)
    return ids


def _plain(value: Any) -> Any:
    """NumPy scalars (e.g. from np.linspace) as Python numbers, the way configs hold them."""
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def _id_value(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, (tuple, list)):
        return '-'.join(_id_value(v) for v in value)
    return re.sub(r'[^A-Za-z0-9.+-]', '-', repr(value) if isinstance(value, float) else str(value))


def expand(base: ml_collections.ConfigDict, sweep: Sequence[Overrides]) -> list[Trial]:
    """The trials of `sweep`, each config validated (ConfigError before any run starts)."""
    sweep = [{key: _plain(value) for key, value in o.items()} for o in sweep]
    trials = [Trial(i, o) for i, o in zip(trial_ids(sweep), sweep, strict=True)]
    repeated = [i for i, n in collections.Counter(t.id for t in trials).items() if n > 1]
    if repeated:
        raise SweepError(f'the sweep repeats trials: {repeated}')
    for trial in trials:
        try:
            schema.validate(cfg.apply_overrides(base, trial.overrides))
        except cfg.ConfigError as error:
            raise cfg.ConfigError(error.key, error.value, f'{error.allowed} (trial {trial.id})')
    return trials
