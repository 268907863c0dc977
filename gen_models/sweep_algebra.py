"""A small algebra of hyperparameter sweeps over dotted config keys.

A sweep is a list of override dicts, one per trial: `{'lr': 1e-3, 'model.beta': 0.5}`. Config
files build theirs in `get_sweep(arg=None)` from these pieces (as in disentanglement_lib):

  product(sweep('lr', [1e-3, 3e-3]), seeds(3))                 # 6 trials
  chain(zipit(sweep('lr', [1e-3, 1e-2]), sweep('optim.name', ['adam', 'sgd'])), fixed('lr', 1))
  product(random_search(8, {'lr': log_uniform(1e-4, 1e-2)}, seed=0), seeds(2))

Random search draws from `np.random.default_rng(seed)`, so the same call gives the same trials.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Overrides = dict[str, Any]
Sweep = list[Overrides]


def sweep(key: str, values: Iterable[Any]) -> Sweep:
    """One trial per value of `key`."""
    return [{key: value} for value in values]


def fixed(key: str, value: Any) -> Sweep:
    """A single trial setting `key` to `value` (e.g. to add a key to every trial of a product)."""
    return [{key: value}]


def seeds(num: int, start: int = 0, key: str = 'seed') -> Sweep:
    """`num` trials with seeds start, start + 1, ... (the repetitions reports average over)."""
    return sweep(key, range(start, start + num))


def _merge(parts: Sequence[Overrides]) -> Overrides:
    merged: Overrides = {}
    for part in parts:
        shared = merged.keys() & part.keys()
        if shared:
            raise ValueError(f'sweeps combined into one trial set the same keys: {sorted(shared)}')
        merged.update(part)
    return merged


def product(*sweeps: Sweep) -> Sweep:
    """The cartesian product: every combination of one trial from each sweep, last varying
    fastest."""
    return [_merge(parts) for parts in itertools.product(*sweeps)]


def zipit(*sweeps: Sweep) -> Sweep:
    """Trial i merges trial i of every sweep; the sweeps must have the same length."""
    lengths = {len(s) for s in sweeps}
    if len(lengths) > 1:
        raise ValueError(f'zipit needs sweeps of one length, got lengths {sorted(lengths)}')
    return [_merge(parts) for parts in zip(*sweeps, strict=True)]


def chain(*sweeps: Sweep) -> Sweep:
    """The trials of each sweep, one sweep after the other."""
    return [dict(trial) for s in sweeps for trial in s]


@dataclasses.dataclass(frozen=True)
class uniform:  # noqa: N801 - reads as a distribution name in configs
    """Uniform on [low, high)."""

    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclasses.dataclass(frozen=True)
class log_uniform:  # noqa: N801
    """Log-uniform on [low, high), both > 0: uniform in log space (learning rates, weights)."""

    low: float
    high: float

    def __post_init__(self):
        if not 0 < self.low < self.high:
            raise ValueError(f'log_uniform needs 0 < low < high, got ({self.low}, {self.high})')

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclasses.dataclass(frozen=True)
class choice:  # noqa: N801
    """One of `values`, each with the same probability."""

    values: tuple[Any, ...]

    def __init__(self, values: Iterable[Any]):
        object.__setattr__(self, 'values', tuple(values))
        if not self.values:
            raise ValueError('choice needs at least one value')

    def sample(self, rng: np.random.Generator) -> Any:
        value = self.values[int(rng.integers(len(self.values)))]
        return value.item() if isinstance(value, np.generic) else value


def random_search(num: int, distributions: Mapping[str, Any], seed: int = 0) -> Sweep:
    """`num` trials, each drawing every key from its distribution (uniform, log_uniform,
    choice); keys are drawn in sorted order from one generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    keys = sorted(distributions)
    return [{key: distributions[key].sample(rng) for key in keys} for _ in range(num)]
