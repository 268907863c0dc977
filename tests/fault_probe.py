"""Fault probes too long for CI: runs killed with SIGKILL and resumed, and checkpoints with
random bytes flipped, each compared with an uninterrupted run; prints the counts.

  python -m tests.fault_probe --kills 20 --flips 20 --workdir runs/fault_probe

A killed run passes when, resumed to the end, its final parameters, results.json metrics and
train records equal the uninterrupted run's. A flipped checkpoint passes when the rerun
notices it (it warns and falls back to the previous checkpoint) and ends with the same
numbers; it fails silently when it ends with other numbers and no warning.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'
TIMING = ('time', 'train/steps_per_second', 'train/images_per_second', 'train/input_wait_fraction')
FLAGS = [  # the MLP VAE of Kingma & Welling, 600 steps with a checkpoint every 5
    '--config=configs/vae_mlp_mnist.py',
    '--config.train.num_steps=600',
    '--config.train.batch_size=32',
    '--config.train.checkpoint_every=5',
    '--config.train.log_every=10',
    '--config.train.eval_every=600',
    '--config.train.sample_every=600',
    '--config.train.eval_examples=1000',
    '--config.train.progress_bar=False',
]


def _launch(workdir: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, 'launch.py', f'--workdir={workdir}', *FLAGS],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(workdir: Path, env: dict[str, str]) -> str:
    """Runs to the end; the run's stderr (warnings about checkpoints it skipped)."""
    process = _launch(workdir, env)
    _, stderr = process.communicate(timeout=1800)
    if process.returncode:
        raise RuntimeError(f'{workdir}: exit {process.returncode}: {stderr[-2000:]}')
    return stderr


def _outcome(workdir: Path) -> dict:
    """What must equal the uninterrupted run's: results.json metrics, train records and the
    sha256 of every array of the final checkpoint."""
    records = [line for line in (workdir / 'metrics.jsonl').read_text().splitlines() if line]
    final = max(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
    return {
        'metrics': json.loads((workdir / 'results.json').read_text())['metrics'],
        'records': [{k: v for k, v in json.loads(r).items() if k not in TIMING} for r in records],
        'checksums': json.loads(
            (workdir / 'checkpoints' / str(final) / 'checksums.json').read_text()
        ),
    }


def _kill_trial(workdir: Path, env: dict[str, str], rng: np.random.Generator) -> int:
    """Kills the run 1-2 times at random moments (some during checkpoint writes, which
    happen every 5 steps); returns how many kills landed."""
    kills = 0
    for _ in range(int(rng.integers(1, 3))):
        process = _launch(workdir, env)
        deadline = time.time() + 300
        while time.time() < deadline and not (workdir / 'metrics.jsonl').exists():
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.5, 6.0)))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    return kills


def _flip(path: Path, rng: np.random.Generator) -> None:
    data = bytearray(path.read_bytes())
    for position in rng.choice(len(data), size=int(rng.integers(1, 65)), replace=False):
        data[position] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kills', type=int, default=20)
    parser.add_argument('--flips', type=int, default=20)
    parser.add_argument('--workdir', type=Path, default=REPO / 'runs' / 'fault_probe')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    env = dict(os.environ, GEN_MODELS_DATA_DIR=str(SHARED_DATA), PYTHONUNBUFFERED='1')
    env.setdefault('TFDS_DATA_DIR', str(args.workdir / 'tfds'))
    rng = np.random.default_rng(args.seed)
    reference = args.workdir / 'reference'
    shutil.rmtree(args.workdir / 'trials', ignore_errors=True)
    if not (reference / 'results.json').is_file():
        _finish(reference, env)
    expected = _outcome(reference)
    counts = {'killed_runs': 0, 'kills': 0, 'identical': 0, 'different': 0}
    for index in range(args.kills):
        workdir = args.workdir / 'trials' / f'kill_{index}'
        counts['kills'] += _kill_trial(workdir, env, rng)
        counts['killed_runs'] += 1
        _finish(workdir, env)
        counts['identical' if _outcome(workdir) == expected else 'different'] += 1
    flips = {'flipped': 0, 'noticed_and_identical': 0, 'silently_different': 0, 'other': 0}
    newest = max(int(p.name) for p in (reference / 'checkpoints').iterdir() if p.name.isdigit())
    for index in range(args.flips):
        workdir = args.workdir / 'trials' / f'flip_{index}'
        shutil.copytree(reference, workdir)
        step_dir = workdir / 'checkpoints' / str(newest)
        _flip(
            max((p for p in step_dir.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size),
            rng,
        )
        (workdir / 'results.json').unlink()
        flips['flipped'] += 1
        stderr = _finish(workdir, env)
        noticed = f'checkpoint of step {newest}' in stderr
        same = _outcome(workdir) == expected
        key = (
            'noticed_and_identical'
            if noticed and same
            else ('silently_different' if not (noticed or same) else 'other')
        )
        flips[key] += 1
    print(json.dumps({'kill_trials': counts, 'byte_flips': flips}, indent=1))
    return 0 if counts['different'] == flips['silently_different'] == flips['other'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
