"""What experiment files start from: `base(family)`, every shared key with its default plus
the model section of one family; used as a config itself, the default run (a conv VAE on
the embedded shapes dataset, nothing to download).

  python launch.py --config configs/default.py --workdir runs/default   # 2,000 steps

Where keys are defined and explained: the shared sections (seed, lr, dataset, transform,
optim, parallel, train, sweep) in `gen_models/schema.py`, the `eval` keys beside their
metrics in `gen_models/metrics/`, and each family's `model` keys in
`gen_models/models/<family>.py`; docs/configs.md lists them all.
"""

import ml_collections

from gen_models import schema
from gen_models.config import UnknownVariantError, check_variant

__all__ = ['UnknownVariantError', 'base', 'check_variant', 'get_config']


def base(family: str = 'vae') -> ml_collections.ConfigDict:
    """The shared defaults with the default model section of `family` (`model.name`)."""
    return schema.default_config(family)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The default run: the VAE family's defaults, a conv VAE on 32 px shapes."""
    check_variant(arg, ())
    return base('vae')
