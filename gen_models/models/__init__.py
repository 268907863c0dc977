"""Model families by `config.model.name`: every module of this package that exports `FAMILY`.

A new family is one new module here (and a config file that selects it); nothing else names
it. See docs/adding_a_family.md.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from gen_models.models.base import DATA_AXIS, Family, ModelDef, TrainState


@functools.cache
def families() -> dict[str, Family]:
    """{name: Family} of the package's family modules, found on first use."""
    found: dict[str, Family] = {}
    for info in pkgutil.iter_modules(__path__):
        family = getattr(importlib.import_module(f'{__name__}.{info.name}'), 'FAMILY', None)
        if family is None:
            continue
        if family.name in found:
            raise ValueError(f'two model families are named {family.name!r}')
        found[family.name] = family
    return dict(sorted(found.items()))


def family(name: str) -> Family:
    """The family `name`; KeyError when there is none."""
    return families()[name]


def build_model(config, info) -> ModelDef:
    """The `ModelDef` of `config.model.name`'s family, for a dataset described by `info`."""
    return family(config.model.name).build(config, info)


__all__ = ['DATA_AXIS', 'Family', 'ModelDef', 'TrainState', 'build_model', 'families', 'family']
