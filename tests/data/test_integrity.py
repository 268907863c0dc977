"""Integrity of the data: modified or broken raw files are refused in one line naming the file,
broken prepared files name themselves and are repaired by `reprepare`, and stale temporary
folders are removed. Works on copies of ../shared/data in temporary folders."""

import functools
import gzip
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import time

import numpy as np
import pytest

import gen_models.data as gd
from gen_models.data import integrity
from gen_models.data.builders import GenModelsMnist, frey_faces

IMAGES, LABELS = 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'
IMAGE_BYTES = 28 * 28
IDX3_HEADER, IDX1_HEADER = 16, 8  # bytes before the data of an images / labels IDX file
TRAIN_FILE = 'gen_models_frey_faces-train.array_record-00000-of-00001'


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert '\n' not in message and len(message) < 1000, message
    return message


@pytest.fixture
def mnist_copy(shared_data, tmp_path):
    """A source folder holding a copy of the four MNIST files."""
    shutil.copytree(shared_data / 'mnist', tmp_path / 'src' / 'mnist')
    return tmp_path / 'src'


@pytest.fixture
def mnist_config(make_config, mnist_copy, tmp_path):
    return functools.partial(
        make_config, 'mnist', source_dir=str(mnist_copy), data_dir=str(tmp_path / 'tfds')
    )


def _rewrite(path, edit) -> None:
    """Replaces a gzip file by one holding edit(its decompressed bytes)."""
    data = edit(bytearray(gzip.decompress(path.read_bytes())))
    path.write_bytes(gzip.compress(data, compresslevel=1))


def _invert_first_50(data: bytearray) -> bytearray:
    end = IDX3_HEADER + 50 * IMAGE_BYTES
    data[IDX3_HEADER:end] = bytes(255 - b for b in data[IDX3_HEADER:end])
    return data


def _first(count: int, header: int, item_bytes: int):
    """An IDX edit keeping the first `count` items (and saying so in the header)."""

    def edit(data: bytearray) -> bytearray:
        data[4:8] = count.to_bytes(4, 'big')
        return data[: header + count * item_bytes]

    return edit


def test_a_modified_but_valid_gzip_is_refused_naming_the_file_and_both_digests(
    mnist_copy, mnist_config
):
    path = mnist_copy / 'mnist' / IMAGES
    _rewrite(path, _invert_first_50)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(integrity.SourceFileError) as error:
        gd.prepare(mnist_config())
    message = _one_line(error)
    assert message.startswith(f'{path}: sha256 is {actual}, expected ')
    assert all(digest in message for digest in GenModelsMnist.SHA256[IMAGES])
    assert 'config.dataset.verify_checksums=False' in message
    assert not list((mnist_copy.parent / 'tfds').rglob('*.array_record*'))


def test_the_override_prepares_modified_files(mnist_copy, mnist_config, shared_data):
    """A reduced copy (1,000 train and 100 test examples, the first 50 images inverted)."""
    folder = mnist_copy / 'mnist'
    _rewrite(folder / IMAGES, lambda d: _invert_first_50(_first(1000, IDX3_HEADER, IMAGE_BYTES)(d)))
    _rewrite(folder / LABELS, _first(1000, IDX1_HEADER, 1))
    _rewrite(folder / 't10k-images-idx3-ubyte.gz', _first(100, IDX3_HEADER, IMAGE_BYTES))
    _rewrite(folder / 't10k-labels-idx1-ubyte.gz', _first(100, IDX1_HEADER, 1))
    train = gd.load_split_array(mnist_config(verify_checksums=False), 'train')
    original = np.frombuffer(
        gzip.decompress((shared_data / 'mnist' / IMAGES).read_bytes()), np.uint8, offset=IDX3_HEADER
    ).reshape(-1, 28, 28, 1)[:1000]
    assert len(train['image']) == 1000
    np.testing.assert_array_equal(train['image'][:50], 255 - original[:50])
    np.testing.assert_array_equal(train['image'][50:], original[50:])


@pytest.mark.parametrize('damage', ['truncated', 'crc'])
def test_a_broken_gzip_is_one_line_naming_the_file(damage, mnist_copy, mnist_config):
    path = mnist_copy / 'mnist' / LABELS
    data = bytearray(path.read_bytes())
    if damage == 'truncated':
        data = data[: len(data) // 2]
    else:
        data[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    path.write_bytes(bytes(data))
    with pytest.raises(integrity.SourceFileError) as error:  # the checksum catches it first
        gd.prepare(mnist_config())
    assert _one_line(error).startswith(f'{path}: sha256 is ')
    with pytest.raises(integrity.SourceFileError) as error:
        gd.prepare(mnist_config(verify_checksums=False))
    message = _one_line(error)
    assert message.startswith(f'{path}: not a readable gzip file (')
    assert 'replace it with the canonical file' in message


def test_a_label_out_of_range_names_the_file_and_index(mnist_copy, mnist_config):
    path = mnist_copy / 'mnist' / LABELS

    def edit(data: bytearray) -> bytearray:
        data[IDX1_HEADER + 7] = 10
        return data

    _rewrite(path, edit)
    with pytest.raises(integrity.SourceFileError) as error:
        gd.prepare(mnist_config(verify_checksums=False))
    assert _one_line(error).startswith(f'{path}: label 10 at index 7 is out of range 0-9; ')


def test_a_cifar10_label_out_of_range_names_the_archive_member_and_index(make_config, tmp_path):
    blob = pickle.dumps({b'data': np.zeros((3, 3072), np.uint8), b'labels': [0, 1, 10]})
    archive = tmp_path / 'cifar10' / 'cifar-10-python.tar.gz'
    archive.parent.mkdir()
    with tarfile.open(archive, 'w:gz') as tar:
        member = tarfile.TarInfo('cifar-10-batches-py/data_batch_1')
        member.size = len(blob)
        tar.addfile(member, io.BytesIO(blob))
    config = make_config(
        'cifar10', source_dir=str(tmp_path), data_dir=str(tmp_path / 'tfds'), verify_checksums=False
    )
    with pytest.raises(integrity.SourceFileError) as error:
        gd.prepare(config)
    expected = f'{archive}: cifar-10-batches-py/data_batch_1: label 10 at index 2 is out of range'
    assert _one_line(error).startswith(expected)


def test_a_modified_frey_faces_copy_is_refused_and_the_override_prepares_it(
    make_config, shared_data, tmp_path
):
    frames = np.load(shared_data / 'small' / 'frey_faces.npy')
    (tmp_path / 'small').mkdir()
    np.save(tmp_path / 'small' / 'frey_faces.npy', 255 - frames)
    config = functools.partial(
        make_config, 'frey_faces', source_dir=str(tmp_path), data_dir=str(tmp_path / 'tfds')
    )
    with pytest.raises(integrity.SourceFileError) as error:
        gd.prepare(config())
    assert frey_faces.NPY_SHA256 in _one_line(error)
    test = gd.load_split_array(config(verify_checksums=False), 'test')
    np.testing.assert_array_equal(
        test['image'][..., 0], 255 - frames[frey_faces.split_indices()[1]]
    )


@pytest.fixture(scope='module')
def prepared_frey(tmp_path_factory, shared_data):
    """A data_dir in which Frey faces is prepared, to be copied by each test."""
    data_dir = tmp_path_factory.mktemp('pristine')
    gd.prepare(gd.DataSpec('frey_faces', str(data_dir), str(shared_data)))
    return data_dir


@pytest.fixture
def frey_config(make_config, prepared_frey, shared_data, tmp_path):
    """Configs of a copy of the prepared Frey faces; returns (make config, train file)."""
    shutil.copytree(prepared_frey, tmp_path / 'tfds')
    train_file = tmp_path / 'tfds' / 'gen_models_frey_faces' / '2.0.0' / TRAIN_FILE
    config = functools.partial(
        make_config, 'frey_faces', source_dir=str(shared_data), data_dir=str(tmp_path / 'tfds')
    )
    return config, train_file


def _damage(path, how: str) -> bytes:
    data = bytearray(path.read_bytes())
    if how == 'truncated':
        data = data[: len(data) // 2]
    else:  # bytes of one record's chunk, in the middle of the file
        data[len(data) // 2 : len(data) // 2 + 50] = bytes(50)
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.parametrize('how', ['corrupted', 'truncated'])
def test_a_broken_prepared_file_names_itself_and_reprepare_repairs_it(
    how, frey_config, shared_data
):
    config, train_file = frey_config
    _damage(train_file, how)
    with pytest.raises(integrity.PreparedDataError) as error:
        gd.load_split_array(config(), 'train')
    message = _one_line(error)
    assert message.startswith(
        f"config.dataset.name='frey_faces' is not allowed: {train_file} cannot be read ("
    )
    assert f'set config.dataset.reprepare=True for one run to rebuild {train_file.parent}' in (
        message
    )
    with pytest.raises(integrity.PreparedDataError, match=TRAIN_FILE):  # record by record
        next(gd.make_train_iterator(config(), batch_size=1769, seed=0, in_memory_bytes=0))
    train = gd.load_split_array(config(reprepare=True), 'train')
    frames = np.load(shared_data / 'small' / 'frey_faces.npy')
    np.testing.assert_array_equal(train['image'][..., 0], frames[frey_faces.split_indices()[0]])


def test_reprepare_rebuilds_once_per_process(frey_config):
    config, train_file = frey_config
    gd.prepare(config(reprepare=True))
    damaged = _damage(train_file, 'corrupted')
    gd.prepare(config(reprepare=True))  # a later call of the same run reuses the rebuilt data
    assert train_file.read_bytes() == damaged


def test_reprepare_refuses_a_dataset_prepared_outside_the_project(make_config, prepared_frey):
    config = make_config('gen_models_frey_faces', data_dir=str(prepared_frey), reprepare=True)
    with pytest.raises(ValueError, match='dataset.reprepare=True rebuilds the project datasets'):
        gd.prepare(config)


def test_prepared_data_is_reused_without_reading_the_raw_files(frey_config, tmp_path):
    config, _ = frey_config
    (tmp_path / 'small').mkdir()
    (tmp_path / 'small' / 'frey_faces.npy').write_bytes(b'not the canonical file')
    assert gd.dataset_info(config(source_dir=str(tmp_path))).num_train == 1769


def test_stale_incomplete_folders_are_removed_before_preparing(make_config, shared_data, tmp_path):
    parent = tmp_path / 'tfds' / 'gen_models_frey_faces'
    stale, live = parent / 'incomplete.AAAAAA_2.0.0', parent / 'incomplete.BBBBBB_2.0.0'
    for folder in (stale, live):
        (folder / 'shard').mkdir(parents=True)
        (folder / 'shard' / 'data').write_bytes(b'x')
    hours_ago = time.time() - 2 * 3600
    for path in [stale, *stale.rglob('*'), live, live / 'shard']:
        os.utime(path, (hours_ago, hours_ago))  # live's data file was written just now
    config = make_config('frey_faces', source_dir=str(shared_data), data_dir=str(tmp_path / 'tfds'))
    gd.prepare(config)
    assert not stale.exists() and live.exists()
    assert (parent / '2.0.0' / TRAIN_FILE).exists()
