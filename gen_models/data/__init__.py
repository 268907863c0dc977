"""The data layer: TFDS datasets (the project's own builders need no TensorFlow) and
deterministic grain pipelines.

A dataset config (`config.dataset`) has the fields of `DataSpec`: name, data_dir,
source_dir, image_size, train_split, eval_split, shapes_resolution, verify_checksums,
reprepare (see `gen_models.data.integrity` for what the data layer checks).
"""

from gen_models.data.config import DataSpec
from gen_models.data.datasets import (
    KNOWN_DATASETS,
    DatasetInfo,
    SplitError,
    check_splits,
    dataset_info,
    prepare,
)
from gen_models.data.pipeline import (
    load_split_array,
    make_eval_iterator,
    make_train_iterator,
    train_indices,
    train_split_arrays,
)

__all__ = [
    'KNOWN_DATASETS',
    'DataSpec',
    'DatasetInfo',
    'SplitError',
    'check_splits',
    'dataset_info',
    'load_split_array',
    'make_eval_iterator',
    'make_train_iterator',
    'train_indices',
    'train_split_arrays',
    'prepare',
]
