"""The dataset part of a run's config, with every default and environment fallback resolved.

Any object with the attributes below works as input (an `ml_collections.ConfigDict`, a
namespace, a `DataSpec`); missing optional attributes take their defaults.
"""

import dataclasses
import os
from typing import Any

SOURCE_DIR_ENV = 'GEN_MODELS_DATA_DIR'
DATA_DIR_ENV = 'TFDS_DATA_DIR'


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A resolved `config.dataset`.

    Attributes:
      name: a project dataset (see `KNOWN_DATASETS`) or any TFDS name prepared in data_dir.
      data_dir: where prepared TFDS data lives ('' -> $TFDS_DATA_DIR -> ~/tensorflow_datasets).
      source_dir: folder holding the raw source files laid out as `../shared/data`
        ('' -> $GEN_MODELS_DATA_DIR); None means download them from their canonical URLs.
      image_size: 0 keeps the native size, else images are resized to a square of that side.
      train_split, eval_split: TFDS split names (slicing such as 'train[:90%]' works).
      shapes_resolution: resolution at which the 'shapes' dataset is rendered.
      verify_checksums: check the raw files' sha256 against their canonical copies when
        preparing; False prepares modified files on purpose.
      reprepare: delete and rebuild the prepared data of a project dataset's version (the
        first time it is prepared in a process), e.g. to repair a corrupted file.
    """

    name: str
    data_dir: str
    source_dir: str | None
    image_size: int = 0
    train_split: str = 'train'
    eval_split: str = 'test'
    shapes_resolution: int = 64
    verify_checksums: bool = True
    reprepare: bool = False

    @classmethod
    def from_config(cls, config: Any) -> 'DataSpec':
        """Reads a dataset config, resolving empty directories from the environment."""

        def get(key, default):
            value = getattr(config, key, default)
            return default if value is None else value

        data_dir = (
            get('data_dir', '') or os.environ.get(DATA_DIR_ENV, '') or '~/tensorflow_datasets'
        )
        source_dir = get('source_dir', '') or os.environ.get(SOURCE_DIR_ENV, '') or None
        return cls(
            name=str(config.name),
            data_dir=os.path.expanduser(data_dir),
            source_dir=os.path.expanduser(source_dir) if source_dir else None,
            image_size=int(get('image_size', 0)),
            train_split=str(get('train_split', 'train')),
            eval_split=str(get('eval_split', 'test')),
            shapes_resolution=int(get('shapes_resolution', 64)),
            verify_checksums=bool(get('verify_checksums', True)),
            reprepare=bool(get('reprepare', False)),
        )
