"""Training-step throughput and compile time of experiment configs on this machine.

  python -m experiments.benchmark --configs dcgan_mnist,vae_mnist,vae_mlp_mnist \
      --batch_size 64 --out runs/benchmark.json

Runs the real jitted, data-parallel train step on synthetic uint8 batches of the
dataset's shape (so data loading is excluded; the train loop logs input wait
separately). Compile time is lowering + compilation; throughput is the median over
repeats of timed blocks of steps, after warm-up. Prints a Markdown table.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import statistics
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from gen_models import parallel
from gen_models.models import build_model

_CONFIGS = flags.DEFINE_list(
    'configs', ['dcgan_mnist', 'vae_mnist', 'vae_mlp_mnist'], 'Config modules under configs/.'
)
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Global batch size.')
_STEPS = flags.DEFINE_integer('steps', 20, 'Steps per timed block.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed blocks; the median is reported.')
_OUT = flags.DEFINE_string('out', None, 'Optional JSON output path.')

NATIVE_SHAPES = {
    'mnist': (28, 28, 1),
    'fashion_mnist': (28, 28, 1),
    'cifar10': (32, 32, 3),
    'frey_faces': (28, 20, 1),
}


@dataclasses.dataclass(frozen=True)
class SyntheticInfo:
    """The dataset facts a model needs, without touching the data."""

    image_shape: tuple[int, int, int]
    num_classes: int = 10


def benchmark_config(name: str, batch_size: int, steps: int, repeats: int) -> dict:
    """Compile seconds and steady-state images/s of one config's train step."""
    config = importlib.import_module(f'configs.{name}').get_config()
    config.train.batch_size = batch_size
    shape = NATIVE_SHAPES.get(config.dataset.name, (config.dataset.shapes_resolution,) * 2 + (1,))
    model = build_model(config, SyntheticInfo(shape))
    mesh = parallel.make_mesh()
    rng = np.random.default_rng(0)
    batch = parallel.shard_batch(
        {
            'image': rng.integers(0, 256, (batch_size, *shape), dtype=np.uint8),
            'label': rng.integers(0, 10, (batch_size,), dtype=np.int32),
        },
        mesh,
    )
    state = parallel.replicate(jax.jit(model.init)(jax.random.key(0), batch), mesh)
    step = parallel.train_step(model.train_step, mesh)
    key = jax.random.key(1)

    start = time.perf_counter()
    compiled = step.lower(state, batch, key).compile()
    compile_seconds = time.perf_counter() - start
    for _ in range(3):
        state, metrics = compiled(state, batch, key)
    jax.block_until_ready(state)
    block_seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = compiled(state, batch, key)
        jax.block_until_ready((state, metrics))
        block_seconds.append(time.perf_counter() - start)
    step_seconds = statistics.median(block_seconds) / steps
    return {
        'config': name,
        'batch_size': batch_size,
        'image_shape': list(shape),
        'compile_seconds': compile_seconds,
        'step_ms': 1e3 * step_seconds,
        'images_per_second': batch_size / step_seconds,
        'devices': f'{jax.device_count()} x {jax.devices()[0].device_kind}',
    }


def markdown_table(rows: list[dict]) -> str:
    lines = [
        '| config | batch | img/s | ms/step | compile s | devices |',
        '|---|---|---|---|---|---|',
    ]
    lines += [
        f'| {r["config"]} | {r["batch_size"]} | {r["images_per_second"]:.0f} | '
        f'{r["step_ms"]:.1f} | {r["compile_seconds"]:.2f} | {r["devices"]} |'
        for r in rows
    ]
    return '\n'.join(lines)


def main(argv):
    del argv
    rows = [
        benchmark_config(name, _BATCH.value, _STEPS.value, _REPEATS.value)
        for name in _CONFIGS.value
    ]
    print(markdown_table(rows))
    if _OUT.value:
        Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
        Path(_OUT.value).write_text(json.dumps(rows, indent=2))


if __name__ == '__main__':
    app.run(main)
