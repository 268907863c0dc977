"""Datasets in the MNIST IDX format: four gzip files, images (n, 28, 28) and labels (n,).

Examples are stored in the official order, so example i of a split is the i-th of its file.
"""

import gzip
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from gen_models.data import integrity
from gen_models.data.builders import base

_FILES = {  # split -> (images file, labels file), the official names
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}


def read_idx(path: epath.Path) -> np.ndarray:
    """Reads a gzip-compressed IDX file of unsigned bytes into an array of its shape."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:  # truncated, or a bad CRC or stream
        raise integrity.SourceFileError(path, f'not a readable gzip file ({error})') from None
    if len(data) < 4 or data[:3] != b'\0\0\x08':  # two zero bytes, then the code of uint8
        raise integrity.SourceFileError(path, 'not an IDX file of unsigned bytes')
    ndim = data[3]
    offset = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], 'big') for i in range(ndim))
    if len(data) - offset != np.prod(shape):
        raise integrity.SourceFileError(
            path, f'{len(data) - offset} bytes of data, but its header says shape {shape}'
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


class IdxBuilder(base.SourceFileBuilder, skip_registration=True):
    """28x28x1 grey images with 10 classes, from `<source_dir>/<SUBDIR>/<official names>`."""

    VERSION = tfds.core.Version('1.0.0')
    SUBDIR: str
    MIRRORS: Sequence[str]  # URL prefixes holding the official file names
    SHA256: Mapping[str, Sequence[str]]  # official name -> sha256 of its canonical copies
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
                self._fetch(
                    dl_manager,
                    {f'{self.SUBDIR}/{name}': self.SHA256[name]},
                    [m + name for m in self.MIRRORS],
                    self.SHA256[name],
                )
                for name in names
            ]
            for split, names in _FILES.items()
        }
        return {split: self._generate_examples(*p) for split, p in paths.items()}

    def _generate_examples(self, images_path, labels_path):
        images, labels = read_idx(images_path), read_idx(labels_path)
        if len(images) != len(labels):
            raise integrity.SourceFileError(
                images_path, f'{len(images)} images, but {labels_path} has {len(labels)} labels'
            )
        integrity.check_labels(labels_path, labels, len(self.CLASS_NAMES))
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {'image': image[:, :, None], 'label': int(label)}
