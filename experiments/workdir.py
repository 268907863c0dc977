"""An exclusive lock on a run's workdir: two launches never write into one.

`<workdir>/lock` names its holder (host, pid, command, start time, SLURM job) and is locked
with `fcntl.flock` while the run lives; the kernel releases it however the process ends, so
a killed run leaves no stale lock on a local disk. Where flock is not coherent across hosts
(some shared filesystems), the file's contents decide: the holder touches the file every
HEARTBEAT_SECONDS, and a lock another host touched within STALE_SECONDS is held. In a
multi-host run process 0 takes the lock for the whole job and tells the others whether it
got it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

LOCK_FILE = 'lock'
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0


class WorkdirBusyError(RuntimeError):
    """Another live run holds the workdir; the message names it."""


def _holder() -> dict[str, Any]:
    return {
        'host': socket.gethostname(),
        'pid': os.getpid(),
        'command': ' '.join(sys.argv),
        'since': time.strftime('%Y-%m-%d %H:%M:%S'),
        'slurm_job': os.environ.get('SLURM_JOB_ID'),
    }


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return 'another process'
    return f'pid {holder["pid"]} on {holder["host"]} since {holder["since"]} ({holder["command"]})'


def _read(file) -> dict[str, Any] | None:
    file.seek(0)
    try:
        return json.loads(file.read() or 'null')
    except json.JSONDecodeError:
        return None


def _busy(workdir: Path, holder: dict[str, Any] | None) -> WorkdirBusyError:
    return WorkdirBusyError(
        f'{workdir} is in use by {_describe(holder)}: wait for that run to end, or use another '
        '--workdir'
    )


def _held_elsewhere(holder: dict[str, Any] | None, path: Path) -> bool:
    """Whether a lock file we could flock still belongs to a live run on another host."""
    if not holder or holder.get('host') == socket.gethostname():
        return False  # flock is authoritative on one host: its holder has ended
    return time.time() - path.stat().st_mtime < STALE_SECONDS


def _acquire(workdir: Path):
    """The open, flocked lock file with our name in it; WorkdirBusyError when held."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_FILE
    while True:
        file = open(path, 'a+', encoding='utf-8')  # noqa: SIM115 - held for the run's lifetime
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(file)
            file.close()
            raise _busy(workdir, holder) from None
        # A holder that was ending may have unlinked the file we opened: lock the current one.
        if path.exists() and os.fstat(file.fileno()).st_ino == path.stat().st_ino:
            break
        file.close()
    holder = _read(file)
    if _held_elsewhere(holder, path):
        file.close()
        raise _busy(workdir, holder)
    file.seek(0)
    file.truncate()
    file.write(json.dumps(_holder()))
    file.flush()
    return file


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        with contextlib.suppress(OSError):
            os.utime(path)


def _agree(ok: bool) -> bool:
    """Process 0's answer, on every process of a multi-host run."""
    if jax.process_count() == 1:
        return ok
    return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


@contextlib.contextmanager
def lock(workdir: str | os.PathLike[str]) -> Iterator[None]:
    """Holds `workdir` for the block; WorkdirBusyError (naming the holder) when another run
    does."""
    workdir = Path(workdir)
    lead = jax.process_index() == 0
    file, error = None, None
    if lead:
        try:
            file = _acquire(workdir)
        except WorkdirBusyError as busy:
            error = busy
    if not _agree(error is None):
        raise error or _busy(workdir, None)
    stop = threading.Event()
    if file is not None:
        threading.Thread(target=_heartbeat, args=(workdir / LOCK_FILE, stop), daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        if file is not None:
            with contextlib.suppress(OSError):
                (workdir / LOCK_FILE).unlink()
            file.close()
