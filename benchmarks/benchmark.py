"""Training throughput of experiment configs, against the same nets in PyTorch eager.

  python -m benchmarks.benchmark --configs dcgan_mnist,vae_mnist,vae_mlp_mnist \
      --batch_size 64 --out runs/benchmark.json
  python -m benchmarks.benchmark --compute_dtypes float32,bfloat16 --steps_per_call 1,4 \
      --torch=false   # one row per config, compute dtype and steps per call

Each row times the compiled call training runs (`train.steps_per_call` K steps, fed as
training feeds it: the host pipeline, or batches gathered on the devices with
`--device_data_bytes`), in train steps; the torch twin runs beside the float32, K = 1 row.

For each config, the real jitted data-parallel train step runs on batches from the
config's real input pipeline (so input wait is measured as in training) and, unless
`--torch=false` or torch is missing, the twin model of `benchmarks.torch_reference` runs
on batches from an identical pipeline, at each of `--torch_threads` intra-op thread counts
(on a shared machine one thread can be much faster than torch's default), on the torch
device `--torch_device` (`cuda`: the GPU twin, with TF32 matmuls and convolutions as XLA
uses for float32 by default on GPUs, timed to `torch.cuda.synchronize`). After warm-up,
timed blocks of steps rotate over JAX and the torch variants, the order reversed every
other repeat, so load from other processes hits all alike. Figures are medians over
blocks; `vs torch` is the median over repeats of the fastest torch variant's step time
over JAX's in the same repeat. Reported per model: images/s, ms/step, seconds to trace
(lower) and to compile the step (near 0 from a warm persistent cache), the fraction of
step time the input pipeline costs (the step fed by the pipeline against the same step fed
one fixed batch, in alternating blocks), and GFLOP/s (XLA's count of the step's FLOPs, the same
work for both frameworks) against the float32 matmul rate measured in the same run.
Prints a Markdown table; `--out` writes JSON with the machine, versions and load average.
"""

from __future__ import annotations

import importlib
import itertools
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from experiments import batches, logs, programs, runtime
from gen_models import data, schema, xla_settings

TORCH_DEVICES = ('cpu', 'cuda')
_CONFIGS = flags.DEFINE_list(
    'configs', ['dcgan_mnist', 'vae_mnist', 'vae_mlp_mnist'], 'Config modules under configs/.'
)
_BATCH = flags.DEFINE_integer(
    'batch_size', 64, "Global batch size of every config; 0 keeps each config's own."
)
_STEPS = flags.DEFINE_integer('steps', 20, 'Steps per timed block.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed blocks per framework; medians reported.')
_WARMUP = flags.DEFINE_integer('warmup', 5, 'Untimed steps per framework before timing.')
_TORCH = flags.DEFINE_bool('torch', True, 'Also time the PyTorch eager twin (needs torch).')
_TORCH_THREADS = flags.DEFINE_list(
    'torch_threads',
    ['1', 'default'],
    "Intra-op thread counts to time torch with ('default': torch's own choice); the JAX "
    'speed-up is relative to the fastest.',
)
_TORCH_DEVICE = flags.DEFINE_enum(
    'torch_device', 'cpu', TORCH_DEVICES, 'Torch device the twin runs on (batches moved there).'
)
_MATMUL_SIDE = flags.DEFINE_integer(
    'matmul_side', 1024, 'Side of the square float32 matmul the step rates are compared with.'
)
_COMPUTE_DTYPES = flags.DEFINE_list(
    'compute_dtypes', ['float32'], 'train.compute_dtype values: one row per config and value.'
)
_STEPS_PER_CALL = flags.DEFINE_list(
    'steps_per_call',
    ['1'],
    'train.steps_per_call values K: one row per config and K (--steps and --warmup are '
    'multiples of every K).',
)
_DEVICE_DATA_BYTES = flags.DEFINE_integer(
    'device_data_bytes', 0, 'train.device_data_bytes of every row (0: batches read on the host).'
)
_OUT = flags.DEFINE_string('out', None, 'Optional JSON output path.')

Block = Callable[[int], tuple[float, float]]


class Blocks(NamedTuple):
    """A framework's train step timed on its input pipeline and on one fixed batch: the
    difference is the time the pipeline costs the step (async dispatch lets next() overlap
    the previous step, so the time spent inside next() alone overstates it)."""

    pipeline: Block
    fixed_batch: Block


MATMUL_SIDE = 1024


def _timed_block(step: Callable[[Any], None], batches: Iterator, sync: Callable[[], None]) -> Block:
    """A function running n steps on batches from `batches`: (seconds, seconds in next())."""

    def run(num_steps: int) -> tuple[float, float]:
        start = time.perf_counter()
        wait = 0.0
        for _ in range(num_steps):
            wait_start = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - wait_start
            step(batch)
        sync()
        return time.perf_counter() - start, wait

    return run


def _blocks(
    step: Callable[[Any], None], batches: Iterator, fixed_batch: Any, sync: Callable[[], None]
) -> Blocks:
    return Blocks(
        _timed_block(step, batches, sync), _timed_block(step, itertools.repeat(fixed_batch), sync)
    )


def matmul_gflops(side: int = MATMUL_SIDE, repeats: int = 10) -> float:
    """This machine's float32 matmul rate through XLA: median of `repeats` products."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((side, side)), jnp.float32)
    matmul = jax.jit(jnp.dot)
    jax.block_until_ready(matmul(a, a))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(matmul(a, a))
        seconds.append(time.perf_counter() - start)
    return 2 * side**3 / statistics.median(seconds) / 1e9


def load_config(name: str, batch_size: int):
    """configs/<name>.py[:variant] with the benchmark's batch size (0: the config's own) and
    no evaluation metrics: only train steps are timed, so no metric's files (the FID
    Inception weights, say) need to be present."""
    module, _, variant = name.partition(':')
    config = importlib.import_module(f'configs.{module}').get_config(variant or None)
    config.eval.metrics, config.eval.keep_best = (), ''
    if batch_size:
        config.train.batch_size = batch_size
    return config


def jax_block(config) -> tuple[Blocks, dict[str, Any]]:
    """The config's compiled train call (`train.steps_per_call` steps) fed as training feeds
    it (its input pipeline, or batches gathered on the devices with `train.device_data_bytes`)
    and by one fixed call's batches already on the devices, and compile facts (per step)."""
    run = runtime.prepare(config)
    calls = batches.batches(config, [config.seed], run.mesh, start_step=0)
    state = runtime.initial_state(run)
    key, hparams = run.keys['train'], programs.hyperparameters(config)
    step_fn = programs.programs(config, run.info, run.mesh).train_step
    fixed_batch = next(calls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        start = time.perf_counter()
        lowered = step_fn.lower(state, fixed_batch, key, hparams)
        lowered_at = time.perf_counter()
        compiled = lowered.compile()
        compiled_at = time.perf_counter()
    cost = compiled.cost_analysis()
    holder = {'state': state}

    def step(batch):
        holder['state'], _ = compiled(holder['state'], batch, key, hparams)

    facts = {
        'lower_seconds': lowered_at - start,
        'compile_seconds': compiled_at - lowered_at,
        # XLA counts a loop's body once: with K steps per call, this is one step's count.
        'flops_per_step': float((cost[0] if isinstance(cost, list) else cost)['flops']),
        'donation_warnings': sum('donated' in str(w.message) for w in caught),
        'image_shape': list(run.info.image_shape),
    }
    sync = lambda: jax.block_until_ready(holder['state'])  # noqa: E731
    blocks = _blocks(step, calls, fixed_batch, sync)
    steps = config.train.steps_per_call
    return Blocks(*(_in_steps(block, steps) for block in blocks)), facts


def _in_steps(block: Block, steps_per_call: int) -> Block:
    """A block of calls of `steps_per_call` steps, asked for in steps (a multiple of it)."""
    return lambda num_steps: block(num_steps // steps_per_call)


def torch_blocks(
    config, image_shape, thread_counts: list[int], device: str = 'cpu'
) -> dict[str, Blocks]:
    """The PyTorch eager twin's train step on `device`, fed by an identical input pipeline
    and by one fixed batch, a pair of block functions per intra-op thread count (one model,
    trained on by all of them)."""
    import torch

    from benchmarks import torch_reference

    on_gpu = device == 'cuda'
    if on_gpu:
        torch.set_float32_matmul_precision('high')  # TF32, as XLA's default on GPUs
    model = torch_reference.build(config, image_shape, device)
    batches = data.make_train_iterator(
        config.dataset,
        batch_size=config.train.batch_size,
        seed=config.seed,
        transform=lambda batch: torch_reference.to_torch_images(batch['image']).to(device),
    )
    sync = torch.cuda.synchronize if on_gpu else lambda: None
    blocks = _blocks(model.train_step, batches, next(batches), sync)
    label = 'torch' if device == 'cpu' else f'torch {device}'

    def with_threads(threads: int, block: Block) -> Block:
        def run_with_threads(num_steps: int) -> tuple[float, float]:
            torch.set_num_threads(threads)
            return block(num_steps)

        return run_with_threads

    return {
        f'{label} ({n} thread{"s" if n > 1 else ""})': Blocks(
            *(with_threads(n, block) for block in blocks)
        )
        for n in thread_counts
    }


def _summary(
    blocks: list[tuple[float, float]],
    fixed_blocks: list[tuple[float, float]],
    steps: int,
    batch_size: int,
) -> dict[str, Any]:
    step_seconds = statistics.median(seconds for seconds, _ in blocks) / steps
    return {
        'images_per_second': batch_size / step_seconds,
        'step_ms': 1e3 * step_seconds,
        'input_wait_fraction': max(
            0.0,
            statistics.median(
                1 - fixed / piped for (piped, _), (fixed, _) in zip(blocks, fixed_blocks)
            ),
        ),
        'in_next_fraction': statistics.median(wait / seconds for seconds, wait in blocks),
        'fixed_batch_step_ms': 1e3 * statistics.median(s for s, _ in fixed_blocks) / steps,
        'block_step_ms': [1e3 * seconds / steps for seconds, _ in blocks],
    }


def benchmark_config(
    name: str,
    config,
    steps: int,
    repeats: int,
    warmup: int,
    torch_threads: list[int],
    torch_device: str = 'cpu',
) -> list[dict[str, Any]]:
    """One row per framework (and torch thread count) for `config`, labelled `name`; timed
    blocks rotate over the frameworks, each fed by its pipeline and by a fixed batch,
    reversing the order every other repeat."""
    batch_size = config.train.batch_size
    jax_blocks, facts = jax_block(config)
    blocks = {'jax': jax_blocks}
    if torch_threads:
        blocks.update(torch_blocks(config, facts['image_shape'], torch_threads, torch_device))
    timings = {framework: Blocks([], []) for framework in blocks}
    for framework_blocks in blocks.values():
        framework_blocks.pipeline(warmup)
    runs = [(framework, kind) for framework in blocks for kind in Blocks._fields]
    for repeat in range(repeats):
        for framework, kind in runs if repeat % 2 == 0 else runs[::-1]:
            getattr(timings[framework], kind).append(getattr(blocks[framework], kind)(steps))
    rows = []
    for framework, framework_timings in timings.items():
        summary = _summary(*framework_timings, steps, batch_size)
        rows.append(
            {
                'config': name,
                'framework': framework,
                'batch_size': batch_size,
                'image_shape': facts['image_shape'],
                **summary,
                'gflops': facts['flops_per_step'] * summary['images_per_second'] / batch_size / 1e9,
            }
        )
    rows[0].update(facts)
    if torch_threads:
        piped = {framework: t.pipeline for framework, t in timings.items()}
        fastest = min(list(blocks)[1:], key=lambda f: statistics.median(s for s, _ in piped[f]))
        rows[0]['vs_torch'] = statistics.median(
            torch_seconds / jax_seconds
            for (jax_seconds, _), (torch_seconds, _) in zip(piped['jax'], piped[fastest])
        )
        rows[0]['vs_torch_of'] = fastest
    return rows


def vs_torch_cell(row: dict[str, Any]) -> str:
    """A table cell: the row's speed over torch's ('' for torch's own rows)."""
    return f'{row["vs_torch"]:.2f}x' if 'vs_torch' in row else ''


def compile_cell(row: dict[str, Any]) -> str:
    """A table cell: lowering + compile seconds of a jax row ('-' for torch's)."""
    if 'compile_seconds' not in row:
        return '-'
    return f'{row["lower_seconds"]:.2f} + {row["compile_seconds"]:.2f}'


def run_main(main: Callable[[list[str]], None], defaults: dict[str, Any]) -> None:
    """`app.run(main)` with this module's shared flags defaulting to `defaults`."""
    for flag, default in defaults.items():
        flags.FLAGS.set_default(flag, default)
    app.run(main)


def markdown_table(rows: list[dict[str, Any]], matmul_rate: float) -> str:
    """One line per (config, framework)."""
    lines = [
        '| config | framework | img/s | ms/step | ms/step, fixed batch | vs torch | '
        f'trace + compile s | input wait | GFLOP/s | of matmul ({matmul_rate:.0f} GFLOP/s) |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        lines.append(
            f'| {r["config"]} | {r["framework"]} | {r["images_per_second"]:.0f} | '
            f'{r["step_ms"]:.1f} | {r["fixed_batch_step_ms"]:.1f} | {vs_torch_cell(r)} | '
            f'{compile_cell(r)} | '
            f'{100 * r["input_wait_fraction"]:.1f}% | {r["gflops"]:.1f} | '
            f'{100 * r["gflops"] / matmul_rate:.0f}% |'
        )
    return '\n'.join(lines)


def torch_thread_counts(requested: list[str], device: str = 'cpu') -> tuple[list[int], str]:
    """Thread counts to time torch with ('default' = torch's own), and a note on torch;
    no counts when torch is not installed. Raises ValueError when `device` is not usable."""
    if device not in TORCH_DEVICES:
        raise ValueError(f'--torch_device={device!r}: allowed {", ".join(TORCH_DEVICES)}')
    try:
        import torch
    except ImportError:
        return [], "torch is not installed (pip install -e '.[bench]')"
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError(
            f"--torch_device=cuda: torch {torch.__version__} sees no CUDA device; use 'cpu'"
        )
    default = torch.get_num_threads()
    counts = sorted({default if n == 'default' else int(n) for n in requested})
    return counts, f'torch {torch.__version__} on {device} (default {default} threads)'


def machine_facts(torch_note: str) -> dict[str, Any]:
    """CPU, versions, devices and XLA flags that timings are relative to."""
    return {
        'cpu_count': os.cpu_count(),
        'processor': platform.processor() or platform.machine(),
        'jax': jax.__version__,
        'devices': f'{jax.device_count()} x {jax.devices()[0].device_kind}',
        'torch': torch_note or None,
        'xla_flags': os.environ.get('XLA_FLAGS', ''),
    }


def twin_threads(config, thread_counts: list[int]) -> list[int]:
    """The torch thread counts to time beside `config`: the float32 twin (one step per call)
    runs beside the float32, one-step-per-call row of each config only."""
    plain = config.train.compute_dtype == 'float32' and config.train.steps_per_call == 1
    return thread_counts if plain else []


def run_benchmark(
    configs: dict[str, Any],
    steps: int,
    repeats: int,
    warmup: int,
    torch_threads: list[str],
    torch_device: str = 'cpu',
    matmul_side: int = MATMUL_SIDE,
) -> dict[str, Any]:
    """Rows of every config (by label) plus the machine facts they are relative to. `torch_threads`:
    thread counts to time the torch twin with (see --torch_threads); empty for none."""
    thread_counts, torch_note = (
        torch_thread_counts(torch_threads, torch_device) if torch_threads else ([], '')
    )
    if torch_threads and not thread_counts:
        print(f'benchmark: skipping PyTorch: {torch_note}', file=sys.stderr)
    load_before = os.getloadavg()
    matmul_rate = matmul_gflops(matmul_side)
    rows = [
        row
        for name, config in configs.items()
        for row in benchmark_config(
            name, config, steps, repeats, warmup, twin_threads(config, thread_counts), torch_device
        )
    ]
    return {
        'rows': rows,
        'matmul_gflops': matmul_rate,
        'load_average_before_after': [load_before[0], os.getloadavg()[0]],
        'machine': machine_facts(torch_note),
        'command': ' '.join(sys.argv),
        'settings': {
            'steps': steps,
            'repeats': repeats,
            'warmup': warmup,
            'torch_device': torch_device,
            'matmul_side': matmul_side,
        },
    }


def variants(
    names: list[str],
    batch_size: int,
    compute_dtypes: list[str],
    steps_per_call: list[int],
    device_data_bytes: int = 0,
) -> dict[str, Any]:
    """label -> config of every (config, compute dtype, K), labelled by what differs from
    float32 and one step per call, e.g. 'dcgan_mnist [bfloat16, K=4]'."""
    configs = {}
    for name, dtype, steps in itertools.product(names, compute_dtypes, steps_per_call):
        config = load_config(name, batch_size)
        config.train.update(
            compute_dtype=dtype, steps_per_call=steps, device_data_bytes=device_data_bytes
        )
        for interval in schema.STEP_INTERVALS:  # rounded up to multiples of K; not timed
            parent, _, key = interval.partition('.')
            config[parent][key] = -(-config[parent][key] // steps) * steps
        schema.validate(config)  # a bad value: one line naming the key, before any compile
        notes = [dtype] if dtype != 'float32' else []
        notes += [f'K={steps}'] if steps > 1 else []
        configs[f'{name} [{", ".join(notes)}]' if notes else name] = config
    return configs


def main(argv):
    del argv
    steps_per_call = [int(k) for k in _STEPS_PER_CALL.value]
    for flag in (_STEPS, _WARMUP):
        if any(flag.value % k for k in steps_per_call):
            raise app.UsageError(
                f'--{flag.name}={flag.value}: a multiple of every --steps_per_call'
            )
    configs = variants(
        _CONFIGS.value,
        _BATCH.value,
        _COMPUTE_DTYPES.value,
        steps_per_call,
        _DEVICE_DATA_BYTES.value,
    )
    if all(config.train.deterministic for config in configs.values()):
        xla_settings.request_deterministic_gpu_ops()  # as launch.py trains them
    xla_settings.enable_compilation_cache()  # compile seconds with a warm cache, as reruns see
    xla_settings.use_unrolled_threefry()  # the CPU lowering launch.py trains with
    result = run_benchmark(
        configs,
        _STEPS.value,
        _REPEATS.value,
        _WARMUP.value,
        _TORCH_THREADS.value if _TORCH.value else [],
        _TORCH_DEVICE.value,
        _MATMUL_SIDE.value,
    )
    print(markdown_table(result['rows'], result['matmul_gflops']))
    if _OUT.value:
        logs.write_json(Path(_OUT.value), result)


if __name__ == '__main__':
    app.run(main)
