"""Deterministic grain input pipelines yielding host-local numpy batches.

Both iterators are grain `MapDataset`s over steps, each mapped to its batch's example
indices (for training, a slice of `EpochOrder`'s stream of per-epoch permutations), so the
content of every batch is a pure function of (dataset, seed, step) and of nothing else: not
of the step the run started at, nor of the number of reading threads, nor of where the
examples are read from. A split whose decoded examples fit in `in_memory_bytes` (MNIST,
CIFAR-10) is decoded once per process and kept in memory as numpy arrays, and batches are
gathered from them by index (decoding array_record records costs milliseconds per batch,
a gather microseconds); larger splits are read record by record on `num_threads` background
threads. Batches are made `prefetch` batches ahead, and `transform` (e.g. the transfer to the
devices) runs ahead on one more background thread, which also gathers in-memory batches.

Multi-host: the global batch of a step holds `batch_size` examples; host p of P gets its
p-th contiguous slice of `batch_size // P` examples, so the hosts' batches concatenated in
process order are the global batch of a one-process run.
"""

import functools
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grain
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from gen_models.data import datasets
from gen_models.data.config import DataSpec

Batch = dict[str, np.ndarray]
# Splits whose decoded examples take at most this many bytes are kept in memory.
IN_MEMORY_BYTES = 256 * 2**20
ITERATOR_KEYS = ('image', 'label')


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes a (H, W, C) uint8 image to (size, size, C), without cropping.

    Uses PIL's bilinear filter channel by channel; PIL widens the filter when shrinking, so
    downsampling is antialiased. The aspect ratio is not kept.
    """
    if image.shape[:2] == (size, size):
        return image
    return np.stack(
        [
            np.asarray(
                Image.fromarray(image[:, :, c]).resize((size, size), Image.Resampling.BILINEAR)
            )
            for c in range(image.shape[2])
        ],
        axis=-1,
    )


def _example_fn(
    features: Mapping[str, Any], image_size: int, keep_factors: bool
) -> Callable[[dict], dict]:
    """Maps a decoded record to {'image' uint8 (H, W, C), 'label' int32 (0 if unlabeled)},
    plus, if keep_factors, every other fixed-shape numeric feature in its own dtype."""
    has_label = 'label' in features
    factors = {
        k: np.dtype(f.np_dtype)
        for k, f in features.items()
        if keep_factors
        and k not in ('image', 'label')
        and isinstance(f, tfds.features.Tensor)
        and None not in f.shape
    }

    def fn(record: dict) -> dict:
        image = np.asarray(record['image'], np.uint8)
        example = {
            'image': resize(image, image_size) if image_size else image,
            'label': np.int32(record['label'] if has_label else 0),
        }
        example.update((k, np.asarray(record[k], dtype)) for k, dtype in factors.items())
        return example

    return fn


def _batch_reader(
    source, example_fn: Callable[[dict], dict], num_real: int | None = None
) -> Callable[[np.ndarray], Batch]:
    """Reads the examples at an ascending batch of indices and stacks them.

    With num_real, indices >= num_real are padding: zero examples, and a float32 'mask'
    (1 for real, 0 for padding) is added.
    """
    padding = {k: np.zeros_like(v) for k, v in example_fn(source[0]).items()}

    def read(indices: np.ndarray) -> Batch:
        real = indices if num_real is None else indices[indices < num_real]
        examples = [example_fn(r) for r in source.__getitems__(real.tolist())]
        examples += [padding] * (len(indices) - len(real))
        batch = {k: np.stack([e[k] for e in examples]) for k in padding}
        if num_real is not None:
            batch['mask'] = (indices < num_real).astype(np.float32)
        return batch

    return read


def _gather_reader(
    arrays: Mapping[str, np.ndarray], num_real: int | None = None
) -> Callable[[np.ndarray], Batch]:
    """`_batch_reader` over a decoded split in memory: the same batches, gathered by index."""

    def read(indices: np.ndarray) -> Batch:
        if num_real is None:
            return {k: arrays[k][indices] for k in ITERATOR_KEYS}
        padded = indices >= num_real
        batch = {k: arrays[k][np.where(padded, 0, indices)] for k in ITERATOR_KEYS}
        for value in batch.values():
            value[padded] = 0
        batch['mask'] = (~padded).astype(np.float32)
        return batch

    return read


def _read_all(source, example_fn: Callable[[dict], dict], num: int) -> dict[str, np.ndarray]:
    """The first `num` examples of `source`, decoded on background threads and stacked."""
    reader = _batch_reader(source, example_fn)
    chunks = list(
        grain.MapDataset.range(num)
        .batch(1024)
        .map(reader)
        .to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2))
    )
    if not chunks:
        return {k: v[:0] for k, v in reader(np.zeros(1, np.int64)).items()}
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


@functools.lru_cache(maxsize=4)
def _decoded_split(spec: DataSpec, split: str) -> dict[str, np.ndarray]:
    """Every example of the split with all its fixed-shape features, decoded once per
    process; read-only, as every iterator over the split shares it."""
    source, features = _open(spec, split)
    arrays = _read_all(source, _example_fn(features, spec.image_size, True), len(source))
    for value in arrays.values():
        value.flags.writeable = False
    return arrays


def _split_reader(
    spec: DataSpec,
    split: str,
    in_memory_bytes: int,
    num_examples: int | None = None,
    masked: bool = False,
) -> tuple[Callable[[np.ndarray], Batch], int, bool]:
    """A batch reader of 'image' and 'label' over the split, gathering from memory when the
    decoded split fits in `in_memory_bytes`, the number of examples it reads
    (`num_examples`, or all) and whether it gathers from memory. If masked, indices from that
    number on are padding and batches get a 'mask' (see `_batch_reader`)."""
    source, features = _open(spec, split)
    num = _num_examples(num_examples, source)
    num_real = num if masked else None
    if _decoded_bytes(source, features, spec) <= in_memory_bytes:
        return _gather_reader(_decoded_split(spec, split), num_real), num, True
    reader = _batch_reader(source, _example_fn(features, spec.image_size, False), num_real)
    return reader, num, False


def _decoded_bytes(source, features, spec: DataSpec) -> int:
    """Bytes the whole split takes decoded, from the size of its first example."""
    example = _example_fn(features, spec.image_size, True)(source[0])
    return len(source) * sum(value.nbytes for value in example.values())


def _open(spec: DataSpec, split: str):
    """The split's random-access source and its features."""
    builder = datasets.prepare(spec)
    source = datasets.open_checked(spec, builder, split)
    datasets.image_shape(builder, spec.image_size)  # validates the image feature
    return source, builder.info.features


def _host_batch_size(batch_size: int, process_index: int, process_count: int) -> int:
    if batch_size <= 0 or batch_size % process_count:
        raise ValueError(
            f'batch_size={batch_size} must be a positive multiple of process_count={process_count}'
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f'process_index={process_index} not in [0, {process_count})')
    return batch_size // process_count


class EpochOrder:
    """The stream of a split's example indices, epoch after epoch, each epoch a permutation
    drawn from (seed, epoch) alone; a batch's indices are one slice of it, computed in one
    go (one permutation per epoch, kept while in use) rather than example by example.
    Safe to call from several reading threads."""

    def __init__(self, num: int, seed: int):
        self.num = num
        self.seed = seed
        self._permutations: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._permutations:
                if len(self._permutations) > 1:  # batches move forward: drop the oldest epoch
                    del self._permutations[min(self._permutations)]
                rng = np.random.default_rng([self.seed, epoch])
                self._permutations[epoch] = rng.permutation(self.num)
            return self._permutations[epoch]

    def indices(self, start: int, size: int) -> np.ndarray:
        """The example indices at positions [start, start + size) of the epoch stream."""
        epoch, offset = divmod(start, self.num)
        if offset + size <= self.num:  # within one epoch
            return self.permutation(epoch)[offset : offset + size]
        epochs, offsets = np.divmod(np.arange(start, start + size), self.num)
        return np.concatenate(
            [self.permutation(e)[offsets[epochs == e]] for e in np.unique(epochs)]
        )


def _num_examples(num_examples: int | None, source) -> int:
    if num_examples is None:
        return len(source)
    if not 0 <= num_examples <= len(source):
        raise ValueError(f'num_examples={num_examples} but the split has {len(source)}')
    return num_examples


def _iterate(
    batches: grain.MapDataset,
    num_threads: int,
    prefetch: int,
    transform: Callable[[Batch], Any] | None,
) -> Iterator:
    """Batches made on `num_threads` threads and `transform`ed on one more, each `prefetch`
    batches ahead of the consumer. num_threads=0 makes and transforms them on that one
    thread (for batches gathered from memory, where more threads only add hand-offs)."""
    dataset = batches.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    )
    if transform is not None:
        dataset = dataset.map(transform)
    if transform is not None or num_threads == 0:
        dataset = grain.experimental.ThreadPrefetchIterDataset(
            dataset, prefetch_buffer_size=prefetch
        )
    return iter(dataset)


def _step_indices(
    num_examples: int, batch_size: int, seed: int, process_index: int, process_count: int
) -> Callable[[int], np.ndarray]:
    """step -> the example indices of this host's slice of the global train batch at `step`
    (epochs reshuffled from `seed`): what the batch at a step depends on, and nothing else."""
    host_batch = _host_batch_size(batch_size, process_index, process_count)
    order = EpochOrder(num_examples, seed)
    first = host_batch * process_index  # position of this host's slice in a global batch
    return lambda step: order.indices(step * batch_size + first, host_batch)


def make_train_iterator(
    dataset_config: Any,
    *,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    num_threads: int = 2,
    prefetch: int = 4,
    transform: Callable[[Batch], Any] | None = None,
    in_memory_bytes: int = IN_MEMORY_BYTES,
) -> Iterator[Batch]:
    """Infinite shuffled batches {'image': uint8 (b, H, W, C), 'label': int32 (b,)} of the
    train split; batch_size is global and b = batch_size // process_count. Reshuffled every
    epoch; batches run across epoch boundaries.

    The batch at step s depends only on (dataset, seed, s): starting at start_step=s yields
    the batches a run started at 0 yields from its s-th on. seed: a non-negative int.
    transform: applied to every batch ahead of time on a background thread (e.g. the
    transfer to the devices); the iterator then yields its results. in_memory_bytes: the
    largest decoded split kept in memory (0: always read records).
    """
    if start_step < 0:
        raise ValueError(f'start_step={start_step} must be >= 0')
    spec = DataSpec.from_config(dataset_config)
    reader, num, in_memory = _split_reader(spec, spec.train_split, in_memory_bytes)
    step_indices = _step_indices(num, batch_size, seed, process_index, process_count)
    indices = grain.MapDataset.range(start_step, sys.maxsize).map(step_indices)
    threads = 0 if in_memory else num_threads
    return _iterate(indices.map(reader), threads, prefetch, transform)


def train_indices(
    dataset_config: Any,
    *,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[np.ndarray]:
    """The example indices of `make_train_iterator`'s batches, step after step: batch s of
    the train split is `train_split_arrays(...)[key][indices]` for the s-th array yielded
    (this host's slice of the global batch), so a copy of the split on the devices yields
    the same batches without reading anything per step."""
    spec = DataSpec.from_config(dataset_config)
    source, _ = _open(spec, spec.train_split)
    step_indices = _step_indices(len(source), batch_size, seed, process_index, process_count)
    step = start_step
    while True:
        yield step_indices(step)
        step += 1


def train_split_arrays(dataset_config: Any, max_bytes: int) -> dict[str, np.ndarray] | None:
    """The decoded train split's 'image' and 'label' arrays when they take at most
    `max_bytes` (what `make_train_iterator` gathers its batches from), else None."""
    spec = DataSpec.from_config(dataset_config)
    source, features = _open(spec, spec.train_split)
    if _decoded_bytes(source, features, spec) > min(max_bytes, IN_MEMORY_BYTES):
        return None
    arrays = _decoded_split(spec, spec.train_split)
    return {k: arrays[k] for k in ITERATOR_KEYS}


def make_eval_iterator(
    dataset_config: Any,
    *,
    batch_size: int,
    split: str | None = None,
    num_examples: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    in_memory_bytes: int = IN_MEMORY_BYTES,
) -> Iterator[Batch]:
    """One pass, in the split's fixed order, over `split` (default: the config's eval split)
    or its first num_examples.

    batch_size is global, as in training: each host yields b = batch_size // process_count.
    Every batch is full size: the last global batch is padded with zero examples, and a
    float32 'mask' (b,) marks real examples with 1, so metrics can be exact.
    """
    host_batch = _host_batch_size(batch_size, process_index, process_count)
    spec = DataSpec.from_config(dataset_config)
    reader, num_real, in_memory = _split_reader(
        spec, split or spec.eval_split, in_memory_bytes, num_examples, masked=True
    )
    num_padded = -(-num_real // batch_size) * batch_size
    indices = (
        grain.MapDataset.range(num_padded)
        .batch(host_batch)
        .slice(slice(process_index, None, process_count))
    )
    return _iterate(indices.map(reader), 0 if in_memory else 2, prefetch=4, transform=None)


def load_split_array(
    dataset_config: Any,
    split: str,
    num_examples: int | None = None,
    in_memory_bytes: int = IN_MEMORY_BYTES,
) -> dict[str, np.ndarray]:
    """A whole split (or its first num_examples) in memory, in the split's fixed order:
    'image' and 'label' as the iterators yield them, plus the dataset's other fixed-shape
    features (e.g. the ground-truth factors of 'shapes'). Read-only views of the process's
    decoded split when that fits in `in_memory_bytes`."""
    spec = DataSpec.from_config(dataset_config)
    source, features = _open(spec, split)
    num = _num_examples(num_examples, source)
    if _decoded_bytes(source, features, spec) <= in_memory_bytes:
        return {k: v[:num] for k, v in _decoded_split(spec, split).items()}
    return _read_all(source, _example_fn(features, spec.image_size, True), num)
