"""A throwaway single-node SLURM cluster on this machine, for trying `--executor slurm` and
for its tests.

  python -m sweeps.local_slurm start /tmp/slurm    # prints: export SLURM_CONF=/tmp/slurm/slurm.conf
  python -m sweeps.local_slurm stop /tmp/slurm     # cancels its jobs, stops its daemons

Everything lives in the folder: slurm.conf, a munge key, the state, spool, log and pid files
of slurmctld, slurmd and munged, except munged's socket, in /tmp/local_slurm-<hash of the
folder>/ (munged wants every folder above its socket open to all). Ports are picked free,
so it runs beside another one. Needs root (SlurmUser=root) and the Debian packages slurmctld, slurmd,
slurm-client and munge (SLURM 22.05 on Debian 12).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROGRAMS = ('munged', 'mungekey', 'slurmctld', 'slurmd', 'sbatch', 'srun', 'squeue', 'sinfo')
PACKAGES = 'slurmctld slurmd slurm-client munge'
DAEMONS = ('slurmd', 'slurmctld', 'munged')  # stopped in this order
PARTITION = 'debug'
# Seconds a requeued job waits before it may start again (SLURM's default is 120).
CRED_EXPIRE_S = 5


def missing() -> str | None:
    """Why a local cluster cannot start here, or None."""
    absent = [name for name in PROGRAMS if shutil.which(name) is None]
    if absent:
        return f'{", ".join(absent)} not on PATH (apt-get install {PACKAGES})'
    if os.geteuid() != 0:
        return 'the local cluster runs its daemons as root (SlurmUser=root)'
    return None


def _socket_dir(directory: Path) -> Path:
    return Path('/tmp') / f'local_slurm-{hashlib.sha1(bytes(directory)).hexdigest()[:12]}'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    """80% of this machine's memory: slurmd refuses a node that claims more than it has."""
    return int(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**20 * 0.8)


def write_config(directory: Path, cpus: int) -> Path:
    """slurm.conf for one node `localhost` with `cpus` CPUs and one partition, every path in
    `directory`."""
    for sub in ('state', 'spool', 'log'):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    lines = {
        'ClusterName': 'local',
        'SlurmctldHost': 'localhost',
        'SlurmctldPort': _free_port(),
        'SlurmdPort': _free_port(),
        'SlurmUser': 'root',
        'AuthType': 'auth/munge',
        'CredType': 'cred/munge',
        'AuthInfo': f'socket={_socket_dir(directory) / "munge.socket"},cred_expire={CRED_EXPIRE_S}',
        'ProctrackType': 'proctrack/linuxproc',
        'TaskPlugin': 'task/none',
        'SelectType': 'select/cons_tres',
        'SelectTypeParameters': 'CR_Core',
        'MpiDefault': 'none',
        'ReturnToService': 2,
        'SlurmdParameters': 'config_overrides',  # the CPUs asked for, even above the cores
        'StateSaveLocation': directory / 'state',
        'SlurmdSpoolDir': directory / 'spool',
        'SlurmctldPidFile': directory / 'slurmctld.pid',
        'SlurmdPidFile': directory / 'slurmd.pid',
        'SlurmctldLogFile': directory / 'log' / 'slurmctld.log',
        'SlurmdLogFile': directory / 'log' / 'slurmd.log',
    }
    text = ''.join(f'{key}={value}\n' for key, value in lines.items()) + (
        f'NodeName=localhost CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN\n'
        f'PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n'
    )
    conf = directory / 'slurm.conf'
    conf.write_text(text)
    return conf


def _running(directory: Path, daemon: str) -> int | None:
    """The pid of `daemon` from its pid file in `directory`, if that process is alive."""
    try:
        pid = int((directory / f'{daemon}.pid').read_text())
        command = Path(f'/proc/{pid}/cmdline').read_bytes()
    except (OSError, ValueError):
        return None
    return pid if daemon.encode() in command else None


def _call(command: list[str]) -> None:
    """Runs a start-up command; RuntimeError with its last line of output if it fails."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        lines = (result.stderr + result.stdout).strip().splitlines() or ['(no output)']
        raise RuntimeError(f'{command[0]} failed: {lines[-1]}')


def _start_munged(directory: Path) -> None:
    key = directory / 'munge.key'
    _socket_dir(directory).mkdir(mode=0o755, exist_ok=True)
    if not key.exists():
        _call(['mungekey', '--create', f'--keyfile={key}'])
    _call(
        [
            'munged',
            f'--socket={_socket_dir(directory) / "munge.socket"}',
            f'--key-file={key}',
            f'--pid-file={directory / "munged.pid"}',
            f'--log-file={directory / "log" / "munged.log"}',
            f'--seed-file={directory / "munged.seed"}',
        ]
    )


def _wait_until_idle(conf: Path, timeout_s: float = 60) -> None:
    env = {**os.environ, 'SLURM_CONF': str(conf)}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = subprocess.run(
            ['sinfo', '--noheader', '--format=%t'], env=env, capture_output=True, text=True
        ).stdout.strip()
        if state == 'idle':
            return
        time.sleep(0.2)
    log = (conf.parent / 'log' / 'slurmd.log').read_text(errors='replace').splitlines()[-5:]
    raise RuntimeError(f'the local node is not idle after {timeout_s:.0f} s: ' + ' | '.join(log))


def start(directory: str | os.PathLike[str], cpus: int | None = None) -> Path:
    """Starts (or finds running) the cluster in `directory`; returns its slurm.conf."""
    directory = Path(directory).absolute()
    reason = missing()
    if reason:
        raise RuntimeError(f'cannot start a local SLURM: {reason}')
    conf = directory / 'slurm.conf'
    if _running(directory, 'slurmctld') and _running(directory, 'slurmd'):
        return conf
    stop(directory)
    conf = write_config(directory, cpus or os.cpu_count() or 1)
    _start_munged(directory)
    for daemon in ('slurmctld', 'slurmd'):
        _call([daemon, '-f', str(conf)])
    _wait_until_idle(conf)
    return conf


def stop(directory: str | os.PathLike[str], timeout_s: float = 30) -> None:
    """Cancels the cluster's jobs and stops its daemons (by the pids in their pid files)."""
    directory = Path(directory).absolute()
    if _running(directory, 'slurmctld'):
        env = {**os.environ, 'SLURM_CONF': str(directory / 'slurm.conf')}
        subprocess.run(['scancel', '--user', str(os.geteuid())], env=env, capture_output=True)
    for daemon in DAEMONS:
        pid = _running(directory, daemon)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _running(directory, daemon) == pid and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(directory, daemon) == pid:
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(_socket_dir(directory), ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('action', choices=('start', 'stop'))
    parser.add_argument('directory', help='folder of the cluster (created if needed)')
    parser.add_argument('--cpus', type=int, default=None, help='CPUs of the node (all)')
    args = parser.parse_args(argv)
    try:
        if args.action == 'start':
            conf = start(args.directory, args.cpus)
            print(f'local SLURM running, partition {PARTITION!r}; in your shell:', file=sys.stderr)
            print(f'export SLURM_CONF={conf}')
        else:
            stop(args.directory)
    except RuntimeError as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
