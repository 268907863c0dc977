"""From a dataset config to a prepared TFDS builder, and what the dataset holds."""

import dataclasses
import logging
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from gen_models.data import builders, integrity
from gen_models.data.config import DataSpec

KNOWN_DATASETS = tuple(builders.BUILDERS)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data.

    Attributes:
      image_shape: (H, W, C) of the images the pipeline yields (after any resize).
      num_classes: number of label classes; 0 if the dataset has no labels.
      num_train: examples in the train split; num_eval: in the eval split.
    """

    image_shape: tuple[int, int, int]
    num_classes: int
    num_train: int
    num_eval: int


def _open_builder(spec: DataSpec) -> tfds.core.DatasetBuilder:
    """The builder named by the config: a project builder, else a prepared TFDS dataset."""
    if spec.name in builders.BUILDERS:
        return builders.make_builder(
            spec.name,
            data_dir=spec.data_dir,
            source_dir=spec.source_dir,
            shapes_resolution=spec.shapes_resolution,
            verify_checksums=spec.verify_checksums,
        )
    if spec.reprepare:
        raise ValueError(
            f'dataset.reprepare=True rebuilds the project datasets ({", ".join(KNOWN_DATASETS)}) '
            f'only; {spec.name!r} is a TFDS dataset prepared outside the project: delete its '
            f'folder in {spec.data_dir} and prepare it again with TFDS.'
        )
    try:
        builder = tfds.builder(spec.name, data_dir=spec.data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(
            f'Unknown dataset: dataset.name={spec.name!r}. Known project datasets: '
            f'{", ".join(KNOWN_DATASETS)}; other names must be TFDS datasets prepared in '
            f'dataset.data_dir={spec.data_dir!r}.'
        ) from e
    if not builder.is_prepared():
        raise ValueError(
            f'dataset.name={spec.name!r} is a TFDS dataset that is not prepared in '
            f'dataset.data_dir={spec.data_dir!r}; prepare it there in the array_record format, '
            f'or use one of the project datasets: {", ".join(KNOWN_DATASETS)}.'
        )
    return builder


# Version folders that `dataset.reprepare` rebuilt in this process: a run prepares its
# dataset several times (its info, the split checks, every iterator) and rebuilds it once.
_REPREPARED: set[str] = set()


def prepare(dataset_config: Any) -> tfds.core.DatasetBuilder:
    """Builds the project dataset unless already prepared, and returns its builder.

    Idempotent and fast once prepared: the raw files are only read (and their checksums only
    verified) when it is built. TFDS writes into a temporary folder and renames it when
    complete, so readers never see partial data; when two processes race, the loser's rename
    fails, and that failure is ignored once the winner's data is in place. Temporary folders
    of preparations that were killed are removed first (`integrity.remove_stale_incomplete`).
    With `reprepare`, the version's prepared data is deleted and rebuilt, once per process.
    """
    spec = DataSpec.from_config(dataset_config)
    builder = _open_builder(spec)
    if spec.name in builders.BUILDERS:
        integrity.remove_stale_incomplete(builder.data_path.parent)
    rebuild = spec.reprepare and os.fspath(builder.data_path) not in _REPREPARED
    if builder.is_prepared() and not rebuild:
        return builder
    if rebuild:
        _REPREPARED.add(os.fspath(builder.data_path))
        logging.info('rebuilding %s (dataset.reprepare=True)', builder.data_path)
    mode = tfds.download.GenerateMode
    config = tfds.download.DownloadConfig(
        download_mode=mode.REUSE_CACHE_IF_EXISTS if rebuild else mode.REUSE_DATASET_IF_EXISTS
    )
    try:
        builder.download_and_prepare(download_config=config)
    except OSError:
        if not _open_builder(spec).is_prepared():
            raise
        logging.info('%s was prepared concurrently by another process', builder.name)
        return _open_builder(spec)
    return builder


class SplitError(ValueError):
    """A split (name or slice) the dataset does not have, or one without examples; `key`
    names the config key that asked for it."""

    def __init__(self, key: str, split: str, reason: str):
        super().__init__(f'{key}={split!r}: {reason}')
        self.key, self.split, self.reason = key, split, reason


def open_split(builder: tfds.core.DatasetBuilder, split: str, key: str = 'split'):
    """A random-access source over a split, yielding dicts of numpy values; SplitError
    (naming `key`) if the dataset has no such split or it is empty."""
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        raise ValueError(
            f'{builder.name} in {builder.data_dir} is stored as '
            f'{builder.info.file_format}; random access needs array_record.'
        )
    try:
        num_examples = builder.info.splits[split].num_examples
    except ValueError as error:  # an unknown split, a malformed or out-of-range slice
        raise SplitError(key, split, f'{builder.name}: {error}') from None
    if not num_examples:
        raise SplitError(key, split, f'{builder.name}: the split has no examples')
    return builder.as_data_source(split=split)


def open_checked(spec: DataSpec, builder: tfds.core.DatasetBuilder, split: str):
    """`open_split`, whose reads raise a one-line `integrity.PreparedDataError` naming the
    prepared file that fails and how to repair it."""
    source = open_split(builder, split)
    folder = builder.data_path
    if spec.name in builders.BUILDERS:
        remedy = f'set config.dataset.reprepare=True for one run to rebuild {folder}, or delete it'
    else:
        remedy = f'delete {folder} and prepare it again with TFDS'
    instructions = builder.info.splits[split].file_instructions
    return integrity.CheckedSource(
        source,
        [i.filename for i in instructions],
        [i.take for i in instructions],
        lambda path, error: integrity.PreparedDataError(spec.name, path, error, remedy),
    )


def check_splits(dataset_config: Any, splits: dict[str, str]) -> None:
    """SplitError for the first of `splits` ({config key: split}) the dataset lacks."""
    builder = prepare(dataset_config)
    for key, split in splits.items():
        open_split(builder, split, key)


def image_shape(builder: tfds.core.DatasetBuilder, image_size: int) -> tuple[int, int, int]:
    """(H, W, C) of the pipeline's images: native, or image_size x image_size if set."""
    features = builder.info.features
    if 'image' not in features:
        raise ValueError(f'{builder.name} has no "image" feature (features: {list(features)})')
    feature = features['image']
    if np.dtype(feature.np_dtype) != np.uint8 or len(feature.shape) != 3:
        raise ValueError(
            f'{builder.name}: "image" must be uint8 (H, W, C), got '
            f'{feature.np_dtype} {feature.shape}'
        )
    height, width, channels = feature.shape
    if image_size:
        return (image_size, image_size, channels)
    if height is None or width is None:
        raise ValueError(f'{builder.name} has images of varying size: set dataset.image_size.')
    return (height, width, channels)


def dataset_info(dataset_config: Any) -> DatasetInfo:
    """Describes the dataset the config names, preparing it if needed."""
    spec = DataSpec.from_config(dataset_config)
    builder = prepare(spec)
    features = builder.info.features
    label = features['label'] if 'label' in features else None
    return DatasetInfo(
        image_shape=image_shape(builder, spec.image_size),
        num_classes=label.num_classes if isinstance(label, tfds.features.ClassLabel) else 0,
        num_train=len(open_split(builder, spec.train_split, 'dataset.train_split')),
        num_eval=len(open_split(builder, spec.eval_split, 'dataset.eval_split')),
    )
