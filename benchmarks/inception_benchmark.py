"""Throughput of the FID Inception: the Flax port against its PyTorch twin, same network,
same images.

  python -m benchmarks.inception_benchmark --batch_size 32 --image_size 32 --repeats 5 \
      --out runs/inception_benchmark.json

Times the whole map from uint8 (N, H, W, C) images to pool3 features, resize to 299
included, as FID and KID run it: `gen_models.nets.inception.feature_fn` (what
`metrics.features.inception_net` serves), and `benchmarks.torch_inception` in PyTorch eager
at each of `--torch_threads` intra-op thread counts, and (`--torchvision`) what a PyTorch user
would pick instead: `torchvision.models.inception_v3` (its pool features, channels-last, the
same resize), with untrained weights since nothing is downloaded, so its speed is compared
and its features are not. `--jax_variants` adds the port compiled
the ways it was not chosen, to show what each choice is worth: `ynnpack` (XLA:CPU's default
YNNPACK convolutions instead of Eigen's) and `closed_over` (weights as constants of the program
instead of arguments). After warm-up, timed blocks of `--steps` batches rotate over all rows,
the order reversed every other repeat, so load from other processes hits all alike; figures
are medians over blocks, `vs torch` the median over repeats of the fastest torch row's time
over the port's in the same repeat. Every row's features are checked against the port's on
the benchmark's images. Prints a Markdown table and the wall time of a 50k-sample FID
(50k generated + 50k reference images) at each rate; `--out` writes JSON with the machine
facts.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from absl import flags

from benchmarks import benchmark
from experiments import logs
from gen_models import xla_settings
from gen_models.nets import inception

JAX_VARIANTS = ('ynnpack', 'closed_over')
FID_IMAGES = 100_000  # a 50k-sample FID: 50k generated and 50k reference images
_SIZE = flags.DEFINE_integer('image_size', 32, 'Side of the square input images.')
_CHANNELS = flags.DEFINE_enum('channels', '3', ['1', '3'], 'Input channels (1: grey).')
_JAX_VARIANTS = flags.DEFINE_list(
    'jax_variants', list(JAX_VARIANTS), f'Other compilations of the port to time: {JAX_VARIANTS}.'
)
_TORCHVISION = flags.DEFINE_bool(
    'torchvision', True, "Also time torchvision's inception_v3 at each --torch_threads count."
)
_WEIGHTS = flags.DEFINE_string('weights', '', "FID Inception .npz ('': the default path).")
FLAGS = flags.FLAGS
# Flags shared with benchmarks.benchmark (batch_size, steps, repeats, warmup, torch,
# torch_threads, out), with this benchmark's defaults where they differ: a step is a batch.
DEFAULTS = {'batch_size': 32, 'steps': 1, 'warmup': 1}


class Row(NamedTuple):
    """A timed way of computing the features: `prepare` runs untimed before each block;
    `same_network` rows have the port's weights, so their features are compared."""

    features: Callable[[np.ndarray], np.ndarray]
    prepare: Callable[[], None] = lambda: None
    facts: dict[str, Any] = {}
    same_network: bool = True


def random_images(batch_size: int, image_size: int, channels: int, seed: int = 0) -> np.ndarray:
    """Uniform random uint8 (batch, size, size, channels) images."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch_size, image_size, image_size, channels), dtype=np.uint8)


def _compiled_row(jitted, args: tuple, images: np.ndarray) -> Row:
    """A jitted function of (*args, images), lowered and compiled here (seconds kept)."""
    start = time.perf_counter()
    lowered = jitted.lower(*args, images)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    facts = {
        'lower_seconds': lowered_at - start,
        'compile_seconds': time.perf_counter() - lowered_at,
    }
    return Row(lambda batch: np.asarray(compiled(*args, batch)), facts=facts)


def jax_rows(params: dict, images: np.ndarray, variants: list[str]) -> dict[str, Row]:
    """The port as `inception.feature_fn` compiles it, and each of `variants`."""
    unknown = set(variants) - set(JAX_VARIANTS)
    if unknown:
        raise ValueError(f'unknown --jax_variants {sorted(unknown)}: allowed {JAX_VARIANTS}')
    model = inception.FIDInception()
    features = lambda p, x: model.apply({'params': p}, inception.preprocess(x))  # noqa: E731
    options = inception.compiler_options()
    rows = {'jax': _compiled_row(inception.feature_fn(), (params,), images)}
    if 'ynnpack' in variants:
        rows['jax, YNNPACK convs'] = _compiled_row(jax.jit(features), (params,), images)
    if 'closed_over' in variants:
        closed_over = jax.jit(lambda x: features(params, x), compiler_options=options)
        rows['jax, weights closed over'] = _compiled_row(closed_over, (), images)
    return rows


def _threads(n: int) -> str:
    return f'{n} thread{"s" if n > 1 else ""}'


def torch_rows(weights_path: str, thread_counts: list[int]) -> dict[str, Row]:
    """The PyTorch twin at each intra-op thread count (one model for all)."""
    import torch

    from benchmarks import torch_inception

    model = torch_inception.TorchInception(weights_path)
    return {
        f'torch ({_threads(n)})': Row(
            lambda batch: model(batch).numpy(), lambda n=n: torch.set_num_threads(n)
        )
        for n in thread_counts
    }


def torchvision_rows(thread_counts: list[int]) -> dict[str, Row]:
    """`torchvision.models.inception_v3` at each thread count: untrained (no download),
    its 2048 pool features (no classifier), channels-last, after the twin's resize."""
    import torch
    import torchvision

    from benchmarks import torch_inception

    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, init_weights=False, transform_input=False
    )
    net.fc = torch.nn.Identity()
    net = net.eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def features(batch: np.ndarray) -> np.ndarray:
        return net(torch_inception.preprocess(torch.as_tensor(batch))).numpy()

    return {
        f'torchvision inception_v3 ({_threads(n)})': Row(
            features, lambda n=n: torch.set_num_threads(n), same_network=False
        )
        for n in thread_counts
    }


def time_rows(
    rows: dict[str, Row], images: np.ndarray, steps: int, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds of each timed block of `steps` batches by row, after `warmup` batches per
    row; blocks rotate over the rows, the order reversed every other repeat."""
    for row in rows.values():
        row.prepare()
        for _ in range(warmup):
            row.features(images)
    names = list(rows)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            rows[name].prepare()
            start = time.perf_counter()
            for _ in range(steps):
                rows[name].features(images)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def summarise(
    rows: dict[str, Row], seconds: dict[str, list[float]], images: np.ndarray, steps: int
) -> list[dict[str, Any]]:
    """A dict per row: img/s, ms per batch, 50k-sample FID minutes, its features' largest
    difference from the port's (None for another network), its facts; the port's row also
    gets `vs_torch`, relative to the fastest PyTorch row."""
    reference = rows['jax'].features(images)
    result = []
    for name, row in rows.items():
        rate = len(images) * steps / statistics.median(seconds[name])
        result.append(
            {
                'framework': name,
                'images_per_second': rate,
                'batch_ms': 1e3 / rate * len(images),
                'fid_50k_minutes': FID_IMAGES / rate / 60,
                'max_abs_diff_vs_jax': (
                    float(np.abs(row.features(images) - reference).max())
                    if row.same_network
                    else None
                ),
                'block_seconds': seconds[name],
                **row.facts,
            }
        )
    torch_names = [name for name in rows if name.startswith('torch')]
    if torch_names:
        fastest = min(torch_names, key=lambda name: statistics.median(seconds[name]))
        result[0]['vs_torch'] = statistics.median(
            t / j for j, t in zip(seconds['jax'], seconds[fastest])
        )
        result[0]['vs_torch_of'] = fastest
    return result


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One line per row."""
    lines = [
        '| framework | img/s | ms/batch | vs torch | lower + compile s | 50k FID min | '
        'max abs diff vs jax |',
        '|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        lines.append(
            f'| {r["framework"]} | {r["images_per_second"]:.2f} | {r["batch_ms"]:.0f} | '
            f'{benchmark.vs_torch_cell(r)} | {benchmark.compile_cell(r)} | '
            f'{r["fid_50k_minutes"]:.0f} | '
            f'{_difference_cell(r["max_abs_diff_vs_jax"])} |'
        )
    return '\n'.join(lines)


def _difference_cell(difference: float | None) -> str:
    return 'other weights' if difference is None else f'{difference:.1e}'


def run_benchmark(
    batch_size: int,
    image_size: int,
    channels: int = 3,
    steps: int = 1,
    repeats: int = 5,
    warmup: int = 1,
    torch_threads: list[str] | None = None,
    jax_variants: list[str] | None = None,
    weights: str = '',
    torchvision: bool = False,
) -> dict[str, Any]:
    """Rows of the port (and `jax_variants`) and of the torch twin (and `torchvision`'s
    inception_v3) at `torch_threads` (None or empty: JAX alone), plus the machine facts
    they are relative to."""
    path = inception.inception_path(weights)
    if not path.is_file():
        raise FileNotFoundError(f'FID Inception weights not found at {path} (see --weights)')
    thread_counts, torch_note = (
        benchmark.torch_thread_counts(torch_threads) if torch_threads else ([], '')
    )
    if torch_threads and not thread_counts:
        print(f'inception_benchmark: skipping PyTorch: {torch_note}', file=sys.stderr)
    images = random_images(batch_size, image_size, channels)
    load_before = os.getloadavg()[0]
    rows = jax_rows(inception.load_params(path), images, jax_variants or [])
    if thread_counts:
        rows.update(torch_rows(str(path), thread_counts))
        if torchvision and importlib.util.find_spec('torchvision') is None:
            print('inception_benchmark: skipping torchvision: not installed', file=sys.stderr)
        elif torchvision:
            rows.update(torchvision_rows(thread_counts))
    seconds = time_rows(rows, images, steps, repeats, warmup)
    return {
        'rows': summarise(rows, seconds, images, steps),
        'load_average_before_after': [load_before, os.getloadavg()[0]],
        'machine': benchmark.machine_facts(torch_note),
        'command': ' '.join(sys.argv),
        'settings': {
            'batch_size': batch_size,
            'image_shape': list(images.shape[1:]),
            'steps': steps,
            'repeats': repeats,
            'warmup': warmup,
            'compiler_options': inception.compiler_options(),
        },
    }


def main(argv):
    del argv
    xla_settings.enable_compilation_cache()  # compile seconds with a warm cache, as reruns see
    xla_settings.use_unrolled_threefry()  # the CPU lowering launch.py trains with
    result = run_benchmark(
        FLAGS.batch_size,
        _SIZE.value,
        int(_CHANNELS.value),
        FLAGS.steps,
        FLAGS.repeats,
        FLAGS.warmup,
        FLAGS.torch_threads if FLAGS.torch else [],
        _JAX_VARIANTS.value,
        _WEIGHTS.value,
        _TORCHVISION.value,
    )
    print(markdown_table(result['rows']))
    print(f'load average before, after: {result["load_average_before_after"]}')
    if FLAGS.out:
        logs.write_json(Path(FLAGS.out), result)


if __name__ == '__main__':
    benchmark.run_main(main, DEFAULTS)
