"""Olivetti faces: 400 grey 64x64 faces, ten of each of 40 subjects (AT&T Cambridge, 1992-94).

The split is by subject, as in scikit-learn's face-completion example: 'train' holds
subjects 0-29 (300 faces) and 'test' subjects 30-39 (100 faces), so a completion model is
scored on faces it never saw. Labels are the subject (0-39). Reads
`<source_dir>/small/olivetti_faces.npy` (uint8, (400, 64, 64), upright, subject-major), else
downloads Sam Roweis' `olivettifaces.mat` from scikit-learn's mirror (needs scipy to read).
"""

import hashlib

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from gen_models.data import integrity
from gen_models.data.builders import base

NUM_SUBJECTS = 40
FACES_PER_SUBJECT = 10
TRAIN_SUBJECTS = 30
SIDE = 64
_URL = 'https://ndownloader.figshare.com/files/5976027'
# sha256 of olivettifaces.mat at that address, as scikit-learn's fetch_olivetti_faces records it.
MAT_SHA256 = 'b612fb967f2dc77c9c62d3e1266e0c73d5fca46a4b8906c18e454d41af987794'
# sha256 of the project's canonical copy, ../shared/data/small/olivetti_faces.npy (computed
# from it), and of its faces as (400, 64, 64) uint8 bytes in C order, which the faces decoded
# from either file must match.
NPY_SHA256 = 'f4675846a7737863b5913460418a189c76b9a9d911df1098179bf8d67e254408'
FACES_SHA256 = 'a3f75007cc103363b61a63e06bec8ea4846407682ef6e7c9ae1eb9c1bd0e8a00'


def load_faces(path: epath.Path) -> np.ndarray:
    """The faces (400, 64, 64) uint8, upright, subject-major, from the .npy or the .mat."""
    try:
        faces = _read_faces(path)
    except (ValueError, OSError, EOFError, KeyError) as error:
        raise integrity.SourceFileError(path, f'cannot be read ({error})') from None
    expected = (NUM_SUBJECTS * FACES_PER_SUBJECT, SIDE, SIDE)
    if faces.shape != expected:
        raise integrity.SourceFileError(path, f'faces of shape {faces.shape}, expected {expected}')
    return faces.astype(np.uint8)


def _read_faces(path: epath.Path) -> np.ndarray:
    with path.open('rb') as f:
        if f.read(6) == b'\x93NUMPY':
            f.seek(0)
            return np.load(f)
        import scipy.io  # pylint: disable=g-import-not-at-top  (only for the download)

        f.seek(0)
        # 'faces' is (4096, 400): one column-major 64x64 face per column.
        return scipy.io.loadmat(f)['faces'].T.reshape(-1, SIDE, SIDE).transpose(0, 2, 1)


def subjects() -> np.ndarray:
    """The subject of each face, in source order."""
    return np.repeat(np.arange(NUM_SUBJECTS), FACES_PER_SUBJECT)


class GenModelsOlivettiFaces(base.SourceFileBuilder):
    """Olivetti faces (AT&T Laboratories Cambridge), 64x64x1, labels the 40 subjects."""

    VERSION = tfds.core.Version('1.0.0')

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    'image': tfds.features.Tensor(shape=(SIDE, SIDE, 1), dtype=np.uint8),
                    'label': tfds.features.ClassLabel(num_classes=NUM_SUBJECTS),
                }
            ),
            supervised_keys=('image', 'label'),
            homepage='https://www.cl.cam.ac.uk/research/dtg/attarchive/facedatabase.html',
            disable_shuffling=True,  # keep the source order
        )

    def _split_generators(self, dl_manager):
        relpaths = {'small/olivetti_faces.npy': (NPY_SHA256,)}
        path = self._fetch(dl_manager, relpaths, [_URL], (MAT_SHA256,))
        faces = load_faces(path)
        if self.verify_checksums:
            digest = hashlib.sha256(faces.tobytes()).hexdigest()
            integrity.verify(path, digest, (FACES_SHA256,), 'sha256 of the faces')
        labels = subjects()
        train = labels < TRAIN_SUBJECTS
        return {
            'train': self._generate_examples(faces, labels, np.flatnonzero(train)),
            'test': self._generate_examples(faces, labels, np.flatnonzero(~train)),
        }

    def _generate_examples(self, faces, labels, indices):
        for i in indices:
            yield int(i), {'image': faces[i, :, :, None], 'label': int(labels[i])}
