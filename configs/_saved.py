"""A run's saved config.json as a config file: rerun, evaluate, export or extend a run as it
was configured, on today's schema (keys added since take their defaults).

  python launch.py --config runs/x/config.json --workdir runs/x --mode eval
  python launch.py --config configs/_saved.py:runs/x/config.json --workdir runs/x \
      --config.train.num_steps=20000

(`launch.py` reads a `--config` ending in `.json` as the first form through this file.)
"""

import json
from pathlib import Path

import ml_collections

from gen_models import schema


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if not arg:
        raise ValueError('configs/_saved.py needs a config.json: configs/_saved.py:<path>')
    path = Path(arg)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such config.json')
    return schema.from_saved(json.loads(path.read_text()))
