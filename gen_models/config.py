"""The vocabulary of run configs: the one-line error, rules for values, dotted keys, variants.

Every part of the code that owns config keys (the shared sections in `gen_models.schema`,
each model family, each metric) states its rules with these helpers, so a bad value is
always reported the same way: `config.<key>=<value> is not allowed: <what is>`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import ml_collections

EXIT_USAGE = 2  # the exit status of entry points for a bad flag or config value

Rule = tuple[Callable[[Any], bool], str]


class ConfigError(ValueError):
    """A config value that is not allowed; the message is one self-contained line."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f'config.{key}={value!r} is not allowed: {allowed}')


class UnknownVariantError(ValueError):
    """A `--config file.py:arg` variant the file does not define; `allowed` lists those it does."""

    def __init__(self, message: str, allowed: tuple[str, ...] = ()):
        # One-argument construction too: config_flags re-raises errors with a longer message.
        super().__init__(message)
        self.allowed = allowed


def check_variant(arg: str | None, allowed: tuple[str, ...]) -> None:
    """Rejects a `--config file.py:arg` variant the config file does not define."""
    if arg is not None and arg not in allowed:
        raise UnknownVariantError(
            f'config variant {arg!r} is unknown; allowed: {allowed or "none"}', tuple(allowed)
        )


def choice(*options: Any) -> Rule:
    return (lambda v: v in options), 'one of ' + ' | '.join(repr(o) for o in options)


def at_least(low: float) -> Rule:
    return (lambda v: low <= v < math.inf), f'a finite number >= {low}'


def positive() -> Rule:
    return (lambda v: 0 < v < math.inf), 'a finite number > 0'


def unit_interval() -> Rule:
    return (lambda v: 0 <= v < 1), 'in [0, 1)'


def finite() -> Rule:
    return math.isfinite, 'a finite number'


def layer_sizes() -> Rule:
    return (
        (lambda v: len(v) > 0 and all(isinstance(h, int) and h >= 1 for h in v)),
        'a non-empty tuple of positive ints',
    )


def flatten(config: Mapping[str, Any], prefix: str = '') -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a ConfigDict (or nested dict)."""
    for key, value in config.items():
        if isinstance(value, Mapping | ml_collections.ConfigDict):
            yield from flatten(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


def get_key(config: ml_collections.ConfigDict, key: str) -> Any:
    """The value of a dotted key, e.g. 'model.beta'."""
    node = config
    for part in key.split('.'):
        node = node[part]
    return node


def with_values(
    config: ml_collections.ConfigDict, values: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of `config` holding `values` (numbers, arrays or tracers) at their dotted keys,
    whatever the keys' types."""
    config = copy.deepcopy(config)
    for key, value in values.items():
        parent, _, leaf = key.rpartition('.')
        node = get_key(config, parent) if parent else config
        with node.ignore_type():
            node[leaf] = value
    return config


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of `config` with dotted-key `overrides`; ConfigError for unknown keys or types."""
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        parent, _, leaf = key.rpartition('.')
        node = config
        for part in filter(None, parent.split('.')):
            node = node.get(part)
            if not isinstance(node, ml_collections.ConfigDict):
                break
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise ConfigError(key, value, 'unknown key (docs/configs.md lists every key)')
        try:
            node[leaf] = value
        except TypeError:
            expected = type(node[leaf]).__name__
            raise ConfigError(key, value, f'a value of type {expected}') from None
    return config


def check_rules(config: ml_collections.ConfigDict, rules: Mapping[str, Rule]) -> None:
    """Raises ConfigError for the first dotted key of `rules` whose value breaks its rule."""
    for key, (is_allowed, allowed) in rules.items():
        value = get_key(config, key)
        if not is_allowed(value):
            raise ConfigError(key, value, allowed)


def check_type(key: str, value: Any, reference: Any) -> None:
    """Values must have the default's type; an int is accepted where a float is, a list where
    a tuple is, and anything where the default is None (an optional switch)."""
    expected = type(reference)
    if reference is None:
        return
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if expected is tuple and isinstance(value, list):
        return
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(
            key, value, f'a value of type {expected.__name__} (got {type(value).__name__})'
        )
