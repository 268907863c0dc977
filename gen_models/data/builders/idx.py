"""Datasets in the MNIST IDX format: four gzip files, images (n, 28, 28) and labels (n,).

Examples are stored in the official order, so example i of a split is the i-th of its file.
"""

import gzip
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from gen_models.data.builders import base

_FILES = {  # split -> (images file, labels file), the official names
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}


def read_idx(path: epath.Path) -> np.ndarray:
    """Reads a gzip-compressed IDX file of unsigned bytes into an array of its shape."""
    data = gzip.decompress(path.read_bytes())
    zero, dtype_code, ndim = data[0:2], data[2], data[3]
    if zero != b'\0\0' or dtype_code != 0x08:
        raise ValueError(f'{path} is not an IDX file of unsigned bytes')
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], 'big') for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


class IdxBuilder(base.SourceFileBuilder, skip_registration=True):
    """28x28x1 grey images with 10 classes, from `<source_dir>/<SUBDIR>/<official names>`."""

    VERSION = tfds.core.Version('1.0.0')
    SUBDIR: str
    MIRRORS: Sequence[str]  # URL prefixes holding the official file names
    CLASS_NAMES: Sequence[str]
    HOMEPAGE: str

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    'image': tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                    'label': tfds.features.ClassLabel(names=self.CLASS_NAMES),
                }
            ),
            supervised_keys=('image', 'label'),
            disable_shuffling=True,  # keep the source order
            homepage=self.HOMEPAGE,
        )

    def _split_generators(self, dl_manager):
        paths = {
            split: [
                self._fetch(dl_manager, [f'{self.SUBDIR}/{name}'], [m + name for m in self.MIRRORS])
                for name in names
            ]
            for split, names in _FILES.items()
        }
        return {split: self._generate_examples(*p) for split, p in paths.items()}

    def _generate_examples(self, images_path, labels_path):
        images, labels = read_idx(images_path), read_idx(labels_path)
        if len(images) != len(labels):
            raise ValueError(f'{images_path} and {labels_path} differ in length')
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {'image': image[:, :, None], 'label': int(label)}
