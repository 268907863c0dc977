"""Frey Face: 1,965 grey 28x20 frames of Brendan Frey's face from one video (no labels).

The split is random and fixed: 'test' holds 196 frames (10%) drawn by a seeded permutation and
'train' the other 1,769, each in video order. Neighbouring frames of a video are near copies, so a
random split measures fit to the same face and poses, as Kingma & Welling's test curves do; a
contiguous split (the last 10% as test) would hold out poses never seen in training. Reads
`<source_dir>/small/frey_faces.npy` (uint8, (1965, 28, 20)), else downloads Sam Roweis'
`frey_rawface.mat` (needs scipy to read).
"""

import hashlib

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from gen_models.data import integrity
from gen_models.data.builders import base

NUM_FRAMES = 1965
NUM_TEST = 196
SPLIT_SEED = 0
_URL = 'https://cs.nyu.edu/~roweis/data/frey_rawface.mat'
# sha256 of the project's canonical copy, ../shared/data/small/frey_faces.npy (computed from it).
NPY_SHA256 = '2177ea074dc1d5ce35294c687dfce79ced65db6d7b745d95a2e1757fcfbe41c0'
# sha256 of that copy's frames as (1965, 28, 20) uint8 bytes in C order (computed from it).
# No digest of the downloaded frey_rawface.mat is published, so the frames decoded from
# either file are checked against this one.
FRAMES_SHA256 = '2438ba4f0d2a6bd8bac43de756141eaa33c8d248dd613d464bdb1210d9b7af78'


def load_frames(path: epath.Path) -> np.ndarray:
    """Reads the frames (1965, 28, 20) uint8 from the .npy copy or the original .mat file."""
    try:
        frames = _read_frames(path)
    except (ValueError, OSError, EOFError) as error:
        raise integrity.SourceFileError(path, f'cannot be read ({error})') from None
    if frames.shape != (NUM_FRAMES, 28, 20):
        raise integrity.SourceFileError(
            path, f'frames of shape {frames.shape}, expected ({NUM_FRAMES}, 28, 20)'
        )
    return frames.astype(np.uint8)


def _read_frames(path: epath.Path) -> np.ndarray:
    with path.open('rb') as f:
        if f.read(6) == b'\x93NUMPY':
            f.seek(0)
            return np.load(f)
        import scipy.io  # pylint: disable=g-import-not-at-top  (only for the download)

        f.seek(0)
        # 'ff' is (560, 1965): one row-major 28x20 frame per column.
        return scipy.io.loadmat(f)['ff'].T.reshape(-1, 28, 20)


class GenModelsFreyFaces(base.SourceFileBuilder):
    """Frey Face (used by Kingma & Welling 2013), 28x20x1, unlabeled."""

    VERSION = tfds.core.Version('2.0.0')
    RELEASE_NOTES = {
        '1.0.0': 'Contiguous split: the last 196 frames are the test split.',
        '2.0.0': 'Random split: 196 test frames chosen by a seeded permutation.',
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    'image': tfds.features.Tensor(shape=(28, 20, 1), dtype=np.uint8),
                }
            ),
            homepage='https://cs.nyu.edu/~roweis/data.html',
            disable_shuffling=True,  # keep the source order
        )

    def _split_generators(self, dl_manager):
        path = self._fetch(dl_manager, {'small/frey_faces.npy': (NPY_SHA256,)}, [_URL], ())
        frames = load_frames(path)
        if self.verify_checksums:
            digest = hashlib.sha256(frames.tobytes()).hexdigest()
            integrity.verify(path, digest, (FRAMES_SHA256,), 'sha256 of the frames')
        train, test = split_indices()
        return {
            'train': self._generate_examples(frames, train),
            'test': self._generate_examples(frames, test),
        }

    def _generate_examples(self, frames, indices):
        for i in indices:
            yield int(i), {'image': frames[i, :, :, None]}


def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of the train and test splits, each sorted (video order)."""
    test = np.sort(np.random.default_rng(SPLIT_SEED).permutation(NUM_FRAMES)[:NUM_TEST])
    return np.setdiff1d(np.arange(NUM_FRAMES), test), test
