"""The builders that read source files: exact contents against the official checks."""

import hashlib
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest

import gen_models.data as gd
from gen_models.data import integrity
from gen_models.data.builders import frey_faces, olivetti_faces
from gen_models.data.config import SOURCE_DIR_ENV

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _idx_md5(images: np.ndarray) -> str:
    """md5 of the decompressed official IDX file these (n, 28, 28, 1) images come from."""
    header = struct.pack('>IIII', 0x0803, len(images), 28, 28)
    return hashlib.md5(header + images.tobytes()).hexdigest()


@pytest.fixture(scope='module')
def local(make_config, shared_data):
    return lambda name, **kw: make_config(name, source_dir=str(shared_data), **kw)


def test_mnist_is_exact(local):
    train = gd.load_split_array(local('mnist'), 'train')
    test = gd.load_split_array(local('mnist'), 'test')
    assert train['image'].shape == (60_000, 28, 28, 1) and train['label'].dtype == np.int32
    assert np.bincount(train['label']).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(test['label']).tolist() == MNIST_TEST_COUNTS
    assert _idx_md5(train['image']) == '6bbc9ace898e44ae57da46a324031adb'  # official order
    assert _idx_md5(test['image']) == '2646ac647ad5339dbf082846283269ea'
    info = gd.dataset_info(local('mnist'))
    assert info == gd.DatasetInfo((28, 28, 1), 10, 60_000, 10_000)


def test_fashion_mnist_is_exact(local):
    train = gd.load_split_array(local('fashion_mnist'), 'train')
    test = gd.load_split_array(local('fashion_mnist'), 'test')
    assert np.bincount(train['label']).tolist() == [6000] * 10
    assert np.bincount(test['label']).tolist() == [1000] * 10
    assert _idx_md5(train['image']) == 'f4a8712d7a061bf5bd6d2ca38dc4d50a'


def test_cifar10(local):
    train = gd.load_split_array(local('cifar10'), 'train')
    test = gd.load_split_array(local('cifar10'), 'test')
    assert train['image'].shape == (50_000, 32, 32, 3)
    assert np.bincount(train['label']).tolist() == [5000] * 10
    assert np.bincount(test['label']).tolist() == [1000] * 10
    # Per-channel statistics against the official data's (the JPEG copy's std is a bit lower).
    levels = np.arange(256) / 255
    counts = [np.bincount(train['image'][..., c].ravel(), minlength=256) for c in range(3)]
    mean = np.array([np.average(levels, weights=n) for n in counts])
    std = np.sqrt([np.average((levels - m) ** 2, weights=n) for m, n in zip(mean, counts)])
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=0.002)
    np.testing.assert_allclose(std, [0.2470, 0.2435, 0.2616], atol=0.004)
    assert len(np.unique(test['label'][:100])) == 10  # the stored order mixes the classes


def test_frey_faces(local, shared_data):
    frames = np.load(shared_data / 'small' / 'frey_faces.npy')
    train = gd.load_split_array(local('frey_faces'), 'train')
    test = gd.load_split_array(local('frey_faces'), 'test')
    assert train['image'].shape == (1769, 28, 20, 1) and test['image'].shape == (196, 28, 20, 1)
    train_frames, test_frames = frey_faces.split_indices()
    assert not set(train_frames) & set(test_frames)
    assert test_frames.min() < 196 and test_frames.max() > 1769  # drawn across the whole video
    np.testing.assert_array_equal(train['image'][..., 0], frames[train_frames])  # video order
    np.testing.assert_array_equal(test['image'][..., 0], frames[test_frames])
    stored = np.concatenate([train['image'], test['image']])
    assert (stored.min(), stored.max()) == (8, 238)
    assert not train['label'].any()
    assert gd.dataset_info(local('frey_faces')).num_classes == 0


def test_olivetti_faces_split_by_subject(local, shared_data):
    faces = np.load(shared_data / 'small' / 'olivetti_faces.npy')
    train = gd.load_split_array(local('olivetti_faces'), 'train')
    test = gd.load_split_array(local('olivetti_faces'), 'test')
    np.testing.assert_array_equal(train['image'][..., 0], faces[:300])  # subjects 0-29
    np.testing.assert_array_equal(test['image'][..., 0], faces[300:])  # subjects 30-39
    np.testing.assert_array_equal(train['label'], np.arange(300) // 10)
    np.testing.assert_array_equal(test['label'], 30 + np.arange(100) // 10)
    info = gd.dataset_info(local('olivetti_faces'))
    assert (info.image_shape, info.num_classes) == ((64, 64, 1), 40)


def test_a_modified_olivetti_copy_is_refused_by_its_faces_digest(
    make_config, shared_data, tmp_path
):
    faces = np.load(shared_data / 'small' / 'olivetti_faces.npy')
    (tmp_path / 'small').mkdir()
    np.save(tmp_path / 'small' / 'olivetti_faces.npy', faces[::-1])
    config = make_config('olivetti_faces', source_dir=str(tmp_path), data_dir=str(tmp_path / 'd'))
    with pytest.raises(integrity.SourceFileError, match=olivetti_faces.NPY_SHA256):
        gd.prepare(config)


def test_cifar10_from_the_official_python_archive(make_config, tmp_path):
    """A tiny archive in the official format: pickled (n, 3072) rows, channel-major."""
    rng = np.random.default_rng(0)
    batches = {
        name: (
            rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
            rng.integers(0, 10, n).tolist(),
        )
        for name, n in [('data_batch_1', 3), ('data_batch_2', 2), ('test_batch', 4)]
    }
    (tmp_path / 'cifar10').mkdir()
    with tarfile.open(tmp_path / 'cifar10' / 'cifar-10-python.tar.gz', 'w:gz') as tar:
        for name, (images, labels) in batches.items():
            blob = pickle.dumps({b'data': images.reshape(len(images), -1), b'labels': labels})
            member = tarfile.TarInfo(f'cifar-10-batches-py/{name}')
            member.size = len(blob)
            tar.addfile(member, io.BytesIO(blob))
    config = make_config(
        'cifar10',
        source_dir=str(tmp_path),
        data_dir=str(tmp_path / 'tfds'),
        verify_checksums=False,  # not the official archive's bytes
    )
    train = gd.load_split_array(config, 'train')
    expected = np.concatenate([batches[b][0] for b in ('data_batch_1', 'data_batch_2')])
    order = np.argsort([img.tobytes() for img in train['image']])
    want = np.argsort([img.tobytes() for img in expected.transpose(0, 2, 3, 1)])
    np.testing.assert_array_equal(train['image'][order], expected.transpose(0, 2, 3, 1)[want])
    labels = batches['data_batch_1'][1] + batches['data_batch_2'][1]
    np.testing.assert_array_equal(train['label'][order], np.array(labels)[want])
    assert len(gd.load_split_array(config, 'test')['image']) == 4


def test_missing_source_file_names_path_env_and_config_key(make_config, tmp_path):
    config = make_config('mnist', source_dir=str(tmp_path), data_dir=str(tmp_path / 'tfds'))
    with pytest.raises(FileNotFoundError) as error:
        gd.prepare(config)
    message = str(error.value)
    assert str(tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz') in message
    assert SOURCE_DIR_ENV in message and 'dataset.source_dir' in message
    assert not (tmp_path / 'tfds' / 'gen_models_mnist' / '1.0.0').exists()


def test_source_dir_falls_back_to_the_environment(make_config, shared_data, monkeypatch):
    monkeypatch.setenv(SOURCE_DIR_ENV, str(shared_data))
    assert gd.dataset_info(make_config('frey_faces', source_dir='')).num_train == 1769


def test_unknown_dataset_name(make_config):
    with pytest.raises(ValueError) as error:
        gd.dataset_info(make_config('no_such_dataset'))
    message = str(error.value)
    assert 'dataset.name' in message and 'no_such_dataset' in message
    assert all(name in message for name in gd.KNOWN_DATASETS)


def test_unprepared_tfds_dataset(make_config):
    with pytest.raises(ValueError, match='not prepared'):
        gd.dataset_info(make_config('cifar100'))


def test_a_prepared_tfds_dataset_by_its_tfds_name(local, make_config):
    """Any TFDS name works once prepared in data_dir; here, a project builder's own."""
    frey = gd.load_split_array(local('frey_faces'), 'test')
    generic = gd.load_split_array(make_config('gen_models_frey_faces'), 'test')
    np.testing.assert_array_equal(generic['image'], frey['image'])
    assert gd.dataset_info(make_config('gen_models_frey_faces', image_size=32)).image_shape == (
        32,
        32,
        1,
    )
