"""CIFAR-10: 50,000 train and 10,000 test 32x32 colour images in 10 classes.

Reads either archive found at `<source_dir>/cifar10/`: the official python one
(`cifar-10-python.tar.gz`, pickled batches, exact pixels; preferred, and what is downloaded)
or an image-folder one (`cifar10_jpeg.tar.gz` holding `train|test/<class>/*.jpg`, decoded
with PIL; JPEG is lossy, so its pixels differ slightly from the official ones). The archive
is streamed, never extracted to disk. Examples are stored in TFDS' fixed hash-of-key order,
which mixes the classes (the image-folder archive is sorted by class).
"""

import io
import pickle
import re
import tarfile
import zlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from gen_models.data import integrity
from gen_models.data.builders import base

CLASS_NAMES = (
    'airplane',
    'automobile',
    'bird',
    'cat',
    'deer',
    'dog',
    'frog',
    'horse',
    'ship',
    'truck',
)
_ARCHIVES = {  # relpath -> sha256 of its canonical copy
    # the official archive (its published digest, e.g. as torchvision and TFDS users record it)
    'cifar10/cifar-10-python.tar.gz': (
        '6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce',
    ),
    # the project's image-folder copy in ../shared/data (computed from it)
    'cifar10/cifar10_jpeg.tar.gz': (
        'caee4964ee157074cd166f19fc57801edbb2493096149057c636738291eee788',
    ),
}
_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
_IMAGE_FILE = re.compile(r'(?:^|/)(train|test)/([a-z]+)/[^/]+\.(?:jpe?g|png)$')
_PICKLED_BATCH = re.compile(r'(?:^|/)(data_batch_\d+|test_batch)$')


class GenModelsCifar10(base.SourceFileBuilder):
    """CIFAR-10 (Krizhevsky 2009), 32x32x3, 10 classes."""

    VERSION = tfds.core.Version('1.0.0')

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    'image': tfds.features.Tensor(shape=(32, 32, 3), dtype=np.uint8),
                    'label': tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=('image', 'label'),
            homepage='https://www.cs.toronto.edu/~kriz/cifar.html',
        )

    def _split_generators(self, dl_manager):
        archive = self._fetch(
            dl_manager, _ARCHIVES, [_URL], _ARCHIVES['cifar10/cifar-10-python.tar.gz']
        )
        return {split: self._generate_examples(archive, split) for split in ('train', 'test')}

    def _generate_examples(self, archive, split):
        try:
            with archive.open('rb') as f, tarfile.open(fileobj=f, mode='r|gz') as tar:
                for member in tar:
                    if member.isfile():
                        yield from _member_examples(archive, tar, member, split)
        except (OSError, EOFError, zlib.error, tarfile.TarError, pickle.UnpicklingError) as e:
            raise integrity.SourceFileError(archive, f'cannot be read ({e})') from None


def _member_examples(archive, tar: tarfile.TarFile, member: tarfile.TarInfo, split: str):
    """The (key, example) pairs of split `split` that an archive member holds: one image, a
    pickled batch of them, or none."""
    if match := _IMAGE_FILE.search(member.name):
        if match[1] == split:
            if match[2] not in CLASS_NAMES:
                raise integrity.SourceFileError(
                    archive, f'{member.name}: {match[2]!r} is not a CIFAR-10 class'
                )
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                pixels = _checked(archive, member, np.asarray(image.convert('RGB')))
            yield member.name, {'image': pixels, 'label': CLASS_NAMES.index(match[2])}
    elif match := _PICKLED_BATCH.search(member.name):
        if (match[1] == 'test_batch') == (split == 'test'):
            batch = pickle.load(tar.extractfile(member), encoding='bytes')
            images = batch[b'data'].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            labels = np.asarray(batch[b'labels'])
            integrity.check_labels(f'{archive}: {member.name}', labels, len(CLASS_NAMES))
            for i, (image, label) in enumerate(zip(images, labels)):
                yield f'{match[1]}/{i}', {'image': image, 'label': int(label)}


def _checked(archive, member: tarfile.TarInfo, image: np.ndarray) -> np.ndarray:
    if image.shape != (32, 32, 3):
        raise integrity.SourceFileError(
            archive, f'{member.name}: image of shape {image.shape}, expected (32, 32, 3)'
        )
    return image
