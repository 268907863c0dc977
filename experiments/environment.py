"""The facts about where and how a run ran, saved as `environment.json` to make it repeatable."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax

PACKAGES = (
    'jax',
    'jaxlib',
    'flax',
    'optax',
    'orbax-checkpoint',
    'grain',
    'tensorflow-datasets',
    'ml-collections',
    'numpy',
)


def collect_environment() -> dict[str, Any]:
    """Python, platform, package versions, JAX devices, git state, command line and time.

    Call it after `jax.distributed.initialize()` in multi-host runs: it queries the devices.
    """
    devices = jax.devices()
    return {
        'python': platform.python_version(),
        'platform': platform.platform(),
        'cpu': {'model': _cpu_model(), 'cores': os.cpu_count()},
        'hostname': socket.gethostname(),
        'packages': {name: _package_version(name) for name in PACKAGES},
        'jax_backend': jax.default_backend(),
        'device_count': len(devices),
        'local_device_count': jax.local_device_count(),
        'device_kinds': sorted({device.device_kind for device in devices}),
        'process_index': jax.process_index(),
        'process_count': jax.process_count(),
        'xla_flags': os.environ.get('XLA_FLAGS', ''),  # change kernels, hence numbers
        'git': _git_state(Path(__file__).resolve().parent),
        'argv': list(sys.argv),
        'timestamp_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }


def _cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_state(directory: Path) -> dict[str, Any] | None:
    """{'commit', 'dirty'} of the checkout holding `directory`; None without git or checkout."""
    try:
        commit = _git(directory, 'rev-parse', 'HEAD')
        status = _git(directory, 'status', '--porcelain')
    except (OSError, subprocess.SubprocessError):
        return None
    return {'commit': commit, 'dirty': bool(status)}


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ['git', '-C', str(directory), *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
