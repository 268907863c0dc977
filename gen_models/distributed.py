"""Multi-process start-up: `jax.distributed.initialize()` from flags or the cluster environment.

A multi-host run starts one process per host (or per GPU) running the same command; before
JAX touches a device, each must join the others through a coordinator (process 0's
host:port). `initialize` decides whether this process is part of such a run and starts JAX's
distributed runtime if so; JAX fills in what the flags leave out from the environment
(SLURM, Open MPI, Cloud TPU, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax

MODES = ('auto', 'on', 'off')


def detect_cluster(environ: Mapping[str, str] = os.environ) -> str | None:
    """The multi-process environment this process was started in, or None.

    Only environments with more than one process count: a single-task SLURM step or a batch
    script (which runs once, before any `srun`) trains on its own.
    """
    if environ.get('JAX_COORDINATOR_ADDRESS'):
        return 'JAX_COORDINATOR_ADDRESS'
    if 'SLURM_STEP_NODELIST' in environ and int(environ.get('SLURM_STEP_NUM_TASKS', '1')) > 1:
        return 'SLURM'
    if int(environ.get('OMPI_COMM_WORLD_SIZE', '1')) > 1:
        return 'Open MPI'
    if len(environ.get('TPU_WORKER_HOSTNAMES', '').split(',')) > 1:
        return 'TPU pod'
    return None


def initialize(
    mode: str = 'auto',
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> bool:
    """Joins this process to a multi-process run when one is asked for; True if it did.

    mode 'auto' initializes when any argument is given or `detect_cluster` finds a
    multi-process environment; 'on' always does (e.g. on a TPU pod slice, where JAX reads the
    topology from the TPU metadata); 'off' never does. Must run before any JAX computation.

    Raises:
      ValueError: unknown mode, arguments with mode 'off', or (from JAX) what is neither given
        nor found in the environment.
    """
    if mode not in MODES:
        raise ValueError(f'distributed mode {mode!r} is not one of {MODES}')
    given = {
        name: value
        for name, value in (
            ('coordinator_address', coordinator_address),
            ('num_processes', num_processes),
            ('process_id', process_id),
        )
        if value is not None
    }
    if mode == 'off':
        if given:
            raise ValueError(f'distributed mode off contradicts {", ".join(sorted(given))}')
        return False
    if mode == 'auto' and not given and detect_cluster(environ) is None:
        return False
    jax.distributed.initialize(**given)
    return True
