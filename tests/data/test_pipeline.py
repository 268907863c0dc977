"""The grain pipelines: batches as pure functions of (dataset, seed, step), exact eval."""

import itertools

import numpy as np
import pytest

import gen_models.data as gd
from gen_models.data import pipeline


def take(iterator, n):
    return list(itertools.islice(iterator, n))


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k].dtype == y[k].dtype
            np.testing.assert_array_equal(x[k], y[k])


@pytest.fixture(scope='module')
def shapes28(make_config):
    return make_config('shapes')


@pytest.fixture(scope='module')
def small(make_config):
    """'shapes' cut to 1000 train and 196 test examples, for short epochs."""
    return make_config('shapes', train_split='train[:1000]', eval_split='test[:196]')


def test_train_batches_shapes_and_dtypes(shapes28):
    batch = next(gd.make_train_iterator(shapes28, batch_size=8, seed=0))
    assert batch['image'].shape == (8, 28, 28, 1) and batch['image'].dtype == np.uint8
    assert batch['label'].shape == (8,) and batch['label'].dtype == np.int32
    assert set(batch) == {'image', 'label'}


def test_unlabeled_datasets_get_zero_labels(make_config, shared_data):
    frey = make_config('frey_faces', source_dir=str(shared_data))
    batch = next(gd.make_train_iterator(frey, batch_size=8, seed=0))
    assert batch['image'].shape == (8, 28, 20, 1)
    assert batch['label'].dtype == np.int32 and not batch['label'].any()


def test_same_seed_same_batches_other_seed_other_batches(shapes28):
    a = take(gd.make_train_iterator(shapes28, batch_size=16, seed=3), 5)
    b = take(gd.make_train_iterator(shapes28, batch_size=16, seed=3, num_threads=0), 5)
    assert_same_batches(a, b)  # independent of the reading threads too
    c = take(gd.make_train_iterator(shapes28, batch_size=16, seed=4), 5)
    assert not np.array_equal(a[0]['image'], c[0]['image'])


def test_neighbouring_seeds_do_not_share_epochs(small):
    """Epoch e of seed s is not epoch e - 1 of seed s + 1 (as with a reseed by s + e)."""
    per_epoch = 25  # batches of 40 in an epoch of 1000
    a = take(gd.make_train_iterator(small, batch_size=40, seed=0), 2 * per_epoch)
    b = take(gd.make_train_iterator(small, batch_size=40, seed=1), per_epoch)
    assert not np.array_equal(a[per_epoch]['image'], b[0]['image'])


def test_each_epoch_is_a_new_permutation(small):
    per_epoch = 25  # batches of 40 in an epoch of 1000
    batches = take(gd.make_train_iterator(small, batch_size=40, seed=0), 2 * per_epoch)
    epochs = [
        np.concatenate([b['image'] for b in batches[e * per_epoch : (e + 1) * per_epoch]])
        for e in range(2)
    ]
    everything = gd.load_split_array(small, 'train[:1000]')['image']
    key = lambda images: sorted(image.tobytes() for image in images)
    assert key(epochs[0]) == key(everything) == key(epochs[1])
    assert not np.array_equal(epochs[0], epochs[1])


@pytest.mark.parametrize('start, size', [(0, 7), (5, 7), (8, 3), (3, 25)])
def test_epoch_order_slices_the_concatenated_epochs(start, size):
    """Slices within an epoch, across a boundary and longer than two epochs."""
    order = pipeline.EpochOrder(10, seed=5)
    stream = np.concatenate(
        [np.random.default_rng([5, epoch]).permutation(10) for epoch in range(4)]
    )
    np.testing.assert_array_equal(order.indices(start, size), stream[start : start + size])


def test_start_step_resumes_the_same_stream(small):
    """Steps 10..19 of batch 64 cross the end of the first epoch (1000 examples)."""
    full = take(gd.make_train_iterator(small, batch_size=64, seed=7), 20)
    resumed = take(gd.make_train_iterator(small, batch_size=64, seed=7, start_step=10), 10)
    assert_same_batches(full[10:], resumed)


def test_hosts_slices_concatenate_to_the_global_batch(shapes28):
    one = take(gd.make_train_iterator(shapes28, batch_size=24, seed=1, start_step=3), 4)
    hosts = [
        take(
            gd.make_train_iterator(
                shapes28, batch_size=24, seed=1, start_step=3, process_index=p, process_count=3
            ),
            4,
        )
        for p in range(3)
    ]
    for step, batch in enumerate(one):
        for k in batch:
            np.testing.assert_array_equal(
                np.concatenate([hosts[p][step][k] for p in range(3)]), batch[k]
            )
    assert hosts[0][0]['image'].shape[0] == 8


def test_batch_size_must_split_over_hosts(shapes28):
    with pytest.raises(ValueError, match='multiple of'):
        gd.make_train_iterator(shapes28, batch_size=10, seed=0, process_count=3)


@pytest.mark.parametrize(
    'num_examples, batch_size, hosts', [(None, 64, 1), (None, 64, 2), (100, 32, 4), (3, 16, 4)]
)
def test_eval_covers_every_example_once(small, num_examples, batch_size, hosts):
    reference = gd.load_split_array(small, 'test[:196]')['image']
    n = len(reference) if num_examples is None else num_examples
    per_host = [
        list(
            gd.make_eval_iterator(
                small,
                batch_size=batch_size,
                num_examples=num_examples,
                process_index=p,
                process_count=hosts,
            )
        )
        for p in range(hosts)
    ]
    assert len({len(batches) for batches in per_host}) == 1  # hosts step together
    steps = [
        {k: np.concatenate([per_host[p][s][k] for p in range(hosts)]) for k in per_host[0][s]}
        for s in range(len(per_host[0]))
    ]
    assert all(s['image'].shape[0] == batch_size for s in steps)
    images = np.concatenate([s['image'] for s in steps])
    mask = np.concatenate([s['mask'] for s in steps])
    assert mask.dtype == np.float32 and len(mask) == -(-n // batch_size) * batch_size
    np.testing.assert_array_equal(mask, np.arange(len(mask)) < n)
    np.testing.assert_array_equal(images[:n], reference[:n])  # fixed order, each once
    assert not images[n:].any()


def test_eval_split_option_and_bounds(shapes28):
    batches = list(gd.make_eval_iterator(shapes28, batch_size=500, split='train[:1000]'))
    assert len(batches) == 2 and all(b['mask'].all() for b in batches)
    with pytest.raises(ValueError, match='num_examples'):
        gd.make_eval_iterator(shapes28, batch_size=8, num_examples=2001)


def test_resize_to_a_square(small, make_config):
    resized = make_config('shapes', image_size=20, train_split='train[:1000]')
    assert gd.dataset_info(resized).image_shape == (20, 20, 1)
    batch = next(gd.make_train_iterator(resized, batch_size=4, seed=0))
    assert batch['image'].shape == (4, 20, 20, 1) and batch['image'].dtype == np.uint8
    shrunk = gd.load_split_array(resized, 'test', 50)['image'].astype(float)
    native = gd.load_split_array(small, 'test', 50)['image'].astype(float)
    np.testing.assert_allclose(
        shrunk.mean((1, 2, 3)), native.mean((1, 2, 3)), rtol=0.05
    )  # a resize keeps the area fraction of each shape
    flat = np.full((28, 20, 3), 77, np.uint8)  # not square: stretched, not cropped
    np.testing.assert_array_equal(pipeline.resize(flat, 16), np.full((16, 16, 3), 77))
