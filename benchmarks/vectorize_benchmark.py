"""Vectorised trials against one trial at a time: trial-steps per second of K vmapped trials.

  python -m benchmarks.vectorize_benchmark --configs vae_mlp_mnist,burda_iwae:vae,dcgan_mnist \
      --batch_size 0 --trials 1,4,8,16,32 --steps 20 --repeats 3 --out runs/vectorize.json

For each config and K, K trials that differ in their learning rate (a traced key) train as
the one vmapped program a `--vectorize K` sweep runs (`experiments/programs.py`), on one
fixed stacked batch already on the devices; K = 1 is the plain step a sequential sweep
runs. The figure is trial-steps per second (K x group steps per second) and its ratio to
K = 1: above 1, vectorising pays off. Each repeat times every K once, in alternating order,
so load from other processes hits all alike; medians over repeats.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax.sharding import NamedSharding, PartitionSpec

from benchmarks import benchmark
from experiments import programs, runtime
from gen_models import config as cfg
from gen_models import data, parallel, xla_settings
from gen_models.models import DATA_AXIS

# --configs, --batch_size (per trial; 0: the config's own), --steps (group steps per timed
# block), --repeats and --out are benchmarks.benchmark's flags.
_TRIALS = flags.DEFINE_list('trials', ['1', '4', '8', '16', '32'], 'Group sizes K.')
FLAGS = flags.FLAGS


def _group_step(config, size: int):
    """(step, state) of `size` trials of `config` at learning rates lr * 1.01^i, and a fixed
    batch: the plain step for one trial, the vmapped one for more."""
    run = runtime.prepare(config)
    batch = next(
        data.make_train_iterator(config.dataset, batch_size=config.train.batch_size, seed=0)
    )
    mesh = run.mesh
    if size == 1:
        step_fn, state = runtime.train_step(run), runtime.initial_state(run)
        batch = parallel.shard_batch(batch, mesh)
        return (lambda s: step_fn(s, batch, run.keys['train'])[0]), state
    configs = [cfg.apply_overrides(config, {'lr': config.lr * 1.01**i}) for i in range(size)]
    compiled = programs.programs(config, run.info, mesh)
    states = [runtime.initial_state(run) for _ in configs]
    state = jax.device_put(
        jax.tree.map(lambda *xs: jnp.stack(xs), *states), NamedSharding(mesh, PartitionSpec())
    )
    sharding = NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))
    stacked = {
        k: jax.make_array_from_process_local_data(sharding, np.stack([v] * size))
        for k, v in batch.items()
    }
    keys = jnp.stack([run.keys['train']] * size)
    hparams = jax.tree.map(
        lambda *xs: jnp.stack(xs), *[programs.hyperparameters(c) for c in configs]
    )
    return (lambda s: compiled.vmapped_train_step(s, stacked, keys, hparams)[0]), state


def _time(step, state, num_steps: int) -> tuple[float, Any]:
    start = time.perf_counter()
    for _ in range(num_steps):
        state = step(state)
    jax.block_until_ready(state)
    return time.perf_counter() - start, state


def measure(name: str, config, sizes: list[int], steps: int, repeats: int) -> list[dict]:
    """Trial-steps per second of each group size of `config` (named `name` in the rows)."""
    groups = {size: list(_group_step(config, size)) for size in sizes}
    for group in groups.values():  # compile and warm up
        _, group[1] = _time(group[0], group[1], 2)
    seconds: dict[int, list[float]] = {size: [] for size in sizes}
    for repeat in range(repeats):
        for size in sizes if repeat % 2 == 0 else reversed(sizes):
            elapsed, groups[size][1] = _time(groups[size][0], groups[size][1], steps)
            seconds[size].append(elapsed)
    base = steps / statistics.median(seconds[sizes[0]])
    return [
        {
            'config': name,
            'trials': size,
            'batch_size': config.train.batch_size,
            'trial_steps_per_second': size * steps / statistics.median(seconds[size]),
            'vs_one_at_a_time': size * steps / statistics.median(seconds[size]) / base,
        }
        for size in sizes
    ]


def markdown_table(rows: list[dict]) -> str:
    lines = [
        '| config | K trials | batch/trial | trial-steps/s | vs one at a time |',
        '|---|---|---|---|---|',
    ]
    lines += [
        f'| {r["config"]} | {r["trials"]} | {r["batch_size"]} | {r["trial_steps_per_second"]:.1f} '
        f'| {r["vs_one_at_a_time"]:.2f}x |'
        for r in rows
    ]
    return '\n'.join(lines)


def main(argv):
    del argv
    xla_settings.enable_compilation_cache()  # as launch.py runs
    xla_settings.use_unrolled_threefry()  # the CPU lowering launch.py trains with
    sizes = sorted(int(k) for k in _TRIALS.value)
    rows = [
        row
        for name in FLAGS.configs
        for row in measure(
            name, benchmark.load_config(name, FLAGS.batch_size), sizes, FLAGS.steps, FLAGS.repeats
        )
    ]
    print(markdown_table(rows))
    if FLAGS.out:
        Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
        facts = benchmark.machine_facts('')
        result = {'rows': rows, 'machine': facts, 'command': ' '.join(sys.argv)}
        Path(FLAGS.out).write_text(json.dumps(result, indent=2))


if __name__ == '__main__':
    app.run(main)
