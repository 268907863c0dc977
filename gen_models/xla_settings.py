"""Process-wide JAX and XLA settings, each switched on by a function an entry point calls.

Importing the library changes nothing in JAX: `launch.py`, the benchmarks and the tests'
conftest call these, each for the reason its docstring gives.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

import jax
from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir

from gen_models.threefry import threefry2x32

DETERMINISTIC_GPU_FLAG = '--xla_gpu_deterministic_ops'
COMPILATION_CACHE_ENV = 'GEN_MODELS_COMPILATION_CACHE'
DEFAULT_COMPILATION_CACHE = '~/.cache/gen_models/jax_compilation_cache'


def use_unrolled_threefry() -> None:
    """Lowers `threefry2x32_p` (every `jax.random` draw, split and fold_in of threefry keys)
    on CPU to `gen_models.threefry.threefry2x32`: bit-identical values, with compiles 3-5x
    and random-number work 2x faster than JAX's own CPU lowering (a loop XLA cannot fuse).
    It replaces the lowering for every later compile in the process."""
    mlir.register_lowering(
        threefry2x32_p, mlir.lower_fun(threefry2x32, multiple_results=True), platform='cpu'
    )


def request_deterministic_gpu_ops(environ: MutableMapping[str, str] = os.environ) -> None:
    """Adds `--xla_gpu_deterministic_ops=true` to XLA_FLAGS unless they already set that flag
    (so `=false` there opts out). XLA:GPU otherwise picks kernels that accumulate in a
    varying order (atomics), and two runs of one config and seed drift apart in the 6th digit
    within 50 steps. XLA reads its flags when JAX's backend starts: call this before any
    device is touched. CPU kernels are deterministic with or without it."""
    flags = environ.get('XLA_FLAGS', '')
    if DETERMINISTIC_GPU_FLAG not in flags:
        environ['XLA_FLAGS'] = f'{flags} {DETERMINISTIC_GPU_FLAG}=true'.strip()


def enable_compilation_cache(directory: str | None = None) -> Path:
    """Turns on JAX's persistent compilation cache, so repeated runs skip compiles.

    Location: `directory`, else $GEN_MODELS_COMPILATION_CACHE, else
    ~/.cache/gen_models/jax_compilation_cache. Every program is cached, however fast
    its compile, since CPU runs of small models compile in about a second.
    """
    path = Path(
        os.path.expanduser(
            directory or os.environ.get(COMPILATION_CACHE_ENV) or DEFAULT_COMPILATION_CACHE
        )
    )
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update('jax_compilation_cache_dir', str(path))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
    return path
