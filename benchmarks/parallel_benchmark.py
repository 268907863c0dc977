"""What data parallelism costs: one config's train step on 1, 2, 4, 8 ... devices.

  python -m benchmarks.parallel_benchmark --config dcgan_mnist --devices 1,2,4,8 \
      --batch_size 64 --out runs/parallel_benchmark.json

Each device count runs in its own subprocess on forced CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N, read when JAX starts; the flag does not
change the number of GPUs or TPUs a process sees). Forced CPU devices share the machine's
cores, so this shows the overhead of splitting a step, not a speed-up.

Per device count, for the default shard_map backend: compile seconds (lowering + compilation;
no persistent cache), images/s (median over timed blocks of steps on one real batch, so input
is excluded), and the step time split into communication (the step's collective ops, timed
in a profiler trace of a few more steps from the moment the last device arrives) and the rest
(compute and dispatch), plus the time a device spends at collectives waiting for the last one
(on forced CPU devices, mostly the other devices' compute on the shared cores). Prints a Markdown table; `--out` writes JSON.
"""

from __future__ import annotations

import collections
import gzip
import importlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
from absl import app, flags

from experiments import runtime
from gen_models import data, parallel, xla_settings

_CONFIG = flags.DEFINE_string('config', 'dcgan_mnist', 'Config module under configs/.')
_DEVICES = flags.DEFINE_list('devices', ['1', '2', '4', '8'], 'Device counts to measure.')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Global batch size, split over the devices.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Steps per timed block (and profiled steps).')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed blocks; the median is reported.')
_OUT = flags.DEFINE_string('out', None, 'Optional JSON output path.')
_CHILD = flags.DEFINE_bool('child', False, "Internal: measure on this process's devices.")

COLLECTIVE = re.compile(
    r'^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<type>.*?)\s'
    r'(?P<op>all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)(?:-start)?\(',
    re.MULTILINE,
)
ARRAY_TYPE = re.compile(r'\b([a-z]+\d*)\[([\d,]*)\]')
DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'bf16': 2, 'f16': 2, 'f32': 4, 's32': 4, 'u32': 4}


def collectives(hlo_text: str) -> dict[str, int]:
    """{instruction name: bytes of its result} for the collective ops of a compiled program."""
    found = {}
    for match in COLLECTIVE.finditer(hlo_text):
        found[match['name']] = sum(
            DTYPE_BYTES.get(dtype, 8) * math.prod(int(d) for d in dims.split(',') if d)
            for dtype, dims in ARRAY_TYPE.findall(match['type'])
        )
    return found


def collective_seconds(trace_dir: str, names: set[str], num_devices: int) -> tuple[float, float]:
    """(exchange, waiting): summed over the traced collectives called `names` in a perfetto
    trace. Every instance of a collective runs once per device and ends when the last device
    has arrived: the shortest of its `num_devices` durations (the last arrival's) is the
    exchange itself, the mean excess of the others is time spent waiting for that device."""
    (path,) = Path(trace_dir).rglob('*perfetto_trace.json.gz')
    with gzip.open(path) as file:
        trace = json.load(file)
    events = trace['traceEvents'] if isinstance(trace, dict) else trace
    durations = collections.defaultdict(list)
    for event in sorted(events, key=lambda e: e.get('ts', 0)):
        if event.get('ph') == 'X' and event['name'] in names:
            durations[event['name']].append(1e-6 * event['dur'])
    exchange = waiting = 0.0
    for series in durations.values():
        for start in range(0, len(series), num_devices):
            instance = series[start : start + num_devices]
            exchange += min(instance)
            waiting += statistics.mean(instance) - min(instance)
    return exchange, waiting


def measure(config_name: str, batch_size: int, steps: int, repeats: int) -> dict[str, Any]:
    """Compile time, throughput and communication share of the train step on all devices."""
    config = importlib.import_module(f'configs.{config_name}').get_config()
    config.train.batch_size = batch_size
    run = runtime.prepare(config)
    host_batch = next(
        data.make_train_iterator(config.dataset, batch_size=batch_size, seed=config.seed)
    )
    batch = parallel.shard_batch(host_batch, run.mesh)
    state, key = runtime.initial_state(run), run.keys['train']
    start = time.perf_counter()
    step = parallel.train_step(run.model.train_step, run.mesh).lower(state, batch, key).compile()
    compile_seconds = time.perf_counter() - start

    def run_steps(state, count):
        for _ in range(count):
            state, metrics = step(state, batch, key)
        return jax.block_until_ready((state, metrics))[0]

    state = run_steps(state, 3)
    block_seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        state = run_steps(state, steps)
        block_seconds.append(time.perf_counter() - start)
    step_seconds = statistics.median(block_seconds) / steps
    ops = collectives(step.as_text())
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            run_steps(state, steps)
        exchange, waiting = collective_seconds(trace_dir, set(ops), jax.device_count())
    return {
        'config': config_name,
        'devices': jax.device_count(),
        'device_kind': jax.devices()[0].device_kind,
        'batch_size': batch_size,
        'compile_seconds': compile_seconds,
        'step_ms': 1e3 * step_seconds,
        'images_per_second': batch_size / step_seconds,
        'collectives_per_step': len(ops),
        'collective_megabytes_per_step': sum(ops.values()) / 1e6,
        'communication_ms': 1e3 * exchange / steps,
        'waiting_at_collectives_ms': 1e3 * waiting / steps,
        'compute_and_other_ms': 1e3 * (step_seconds - exchange / steps),
    }


def measure_in_subprocess(num_devices: int) -> dict[str, Any]:
    """`measure` in a fresh process on `num_devices` forced host devices."""
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={num_devices}')
    args = [
        sys.executable,
        '-m',
        'benchmarks.parallel_benchmark',
        '--child',
        f'--config={_CONFIG.value}',
        f'--batch_size={_BATCH.value}',
        f'--steps={_STEPS.value}',
        f'--repeats={_REPEATS.value}',
    ]
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f'{num_devices} devices failed:\n{result.stderr}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        '| devices | batch/device | img/s | ms/step | compile s | collectives/step (MB) '
        '| communication ms (%) | waiting at collectives ms | compute + other ms |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    lines += [
        f'| {r["devices"]} | {r["batch_size"] // r["devices"]} | {r["images_per_second"]:.0f} '
        f'| {r["step_ms"]:.1f} | {r["compile_seconds"]:.2f} | {r["collectives_per_step"]} '
        f'({r["collective_megabytes_per_step"]:.2f}) | {r["communication_ms"]:.1f} '
        f'({100 * r["communication_ms"] / r["step_ms"]:.0f}%) '
        f'| {r["waiting_at_collectives_ms"]:.1f} | {r["compute_and_other_ms"]:.1f} |'
        for r in rows
    ]
    return '\n'.join(lines)


def main(argv):
    del argv
    if _CHILD.value:
        xla_settings.use_unrolled_threefry()  # the CPU lowering launch.py trains with
        print(json.dumps(measure(_CONFIG.value, _BATCH.value, _STEPS.value, _REPEATS.value)))
        return
    rows = [measure_in_subprocess(int(count)) for count in _DEVICES.value]
    print(markdown_table(rows))
    if _OUT.value:
        Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
        Path(_OUT.value).write_text(json.dumps(rows, indent=2))


if __name__ == '__main__':
    app.run(main)
