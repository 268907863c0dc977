"""Splits kept in memory yield the batches that reading records yields, byte for byte;
`transform` runs ahead of the consumer on a background thread."""

import threading

import pytest

import gen_models.data as gd
from gen_models.data import pipeline
from tests.data.test_pipeline import assert_same_batches, take

RECORDS = {'in_memory_bytes': 0}  # never keep a split in memory: read records


@pytest.fixture(scope='module')
def small(make_config):
    """'shapes' cut to 1000 train and 100 test examples: 8 batches of 120 cross an epoch."""
    return make_config('shapes', train_split='train[:1000]', eval_split='test[:100]')


def test_the_split_fits_in_memory(small):
    arrays = pipeline._decoded_split(pipeline.DataSpec.from_config(small), 'train[:1000]')
    assert arrays['image'].shape == (1000, 28, 28, 1) and not arrays['image'].flags.writeable


@pytest.mark.parametrize('start_step, process_index, process_count', [(0, 0, 1), (7, 1, 2)])
def test_train_batches_from_memory_equal_those_from_records(
    small, start_step, process_index, process_count
):
    def batches(**options):
        return take(
            gd.make_train_iterator(
                small,
                batch_size=120,
                seed=5,
                start_step=start_step,
                process_index=process_index,
                process_count=process_count,
                **options,
            ),
            10,
        )

    assert_same_batches(batches(), batches(**RECORDS))


@pytest.mark.parametrize('num_examples, batch_size', [(None, 32), (70, 64)])
def test_eval_batches_and_split_arrays_from_memory_equal_those_from_records(
    small, num_examples, batch_size
):
    def batches(**options):
        return list(
            gd.make_eval_iterator(
                small, batch_size=batch_size, num_examples=num_examples, **options
            )
        )

    assert_same_batches(batches(), batches(**RECORDS))
    split = gd.load_split_array(small, 'test[:100]', num_examples)
    assert {'image', 'label', 'shape', 'scale', 'rotation'} <= set(split)
    assert_same_batches(
        [split], [gd.load_split_array(small, 'test[:100]', num_examples, **RECORDS)]
    )


def test_transform_runs_ahead_on_a_background_thread(small):
    threads = []

    def transform(batch):
        threads.append(threading.get_ident())
        return batch['label'].sum()

    iterator = gd.make_train_iterator(small, batch_size=8, seed=0, prefetch=2, transform=transform)
    plain = take(gd.make_train_iterator(small, batch_size=8, seed=0), 3)
    assert take(iterator, 3) == [b['label'].sum() for b in plain]
    assert threading.get_ident() not in threads
