"""Golden numbers: tiny runs of every shipped config, recorded once and compared after changes.

  python -m tests.golden.golden record                  # writes tests/golden/results/*.json
  python -m tests.golden.golden compare                 # reruns, names every number that moved
  python -m tests.golden.golden compare --only dcgan    # configs whose name contains 'dcgan'

Each run is `launch.py` in a subprocess, as a user runs it: every config file and variant for
20 steps on small batches (`TINY`), then `--mode eval` where the config names `eval.metrics`,
plus one vectorised sweep. A golden file holds what must not move: results.json (without wall
times), the train records of metrics.jsonl and the sha256 of every sample grid. A refactor
compares equal to the bit on the machine that recorded the files; any difference is printed
as key: recorded -> now.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GOLDEN_DIR = Path(__file__).resolve().parent / 'results'
SHARED_DATA = REPO.parent / 'shared' / 'data'
NUM_STEPS = 20
# Values that measure the machine, not the computation.
TIMING_KEYS = frozenset(
    {
        'time',
        'compile_seconds',
        'train/steps_per_second',
        'train/images_per_second',
        'train/input_wait_fraction',
    }
)
TINY = {
    'train.num_steps': NUM_STEPS,
    'train.log_every': 5,
    'train.eval_every': NUM_STEPS,
    'train.checkpoint_every': 10,
    'train.sample_every': NUM_STEPS,
    'train.eval_examples': 64,
    'train.eval_batch_size': 32,
    'train.progress_bar': False,
    'eval.num_samples': 32,
    'eval.reference_examples': 32,
    'eval.kid_subset_size': 16,
    'eval.kid_subsets': 10,
    'eval.iwae_samples': 20,
    'eval.iwae_chunk': 10,
}
SWEEP_RUN = ('vae_mlp_mnist', None)
SWEEP_VECTORIZE = 4


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f'_golden_{name}', REPO / 'configs' / f'{name}.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _variants(module) -> list[str | None]:
    """The file's variants (what `check_variant` allows); the default only if it differs."""
    try:
        module.get_config('\0')
    except ValueError as error:
        allowed = list(getattr(error, 'allowed', ()))
    else:
        raise SystemExit(f'{module.__name__} accepts any variant')
    if not allowed:
        return [None]
    default = module.get_config().to_dict()
    same = any(module.get_config(v).to_dict() == default for v in allowed)
    return allowed if same else [None, *allowed]


def runs() -> list[tuple[str, str | None]]:
    """(config name, variant) of every shipped config."""
    names = sorted(p.stem for p in (REPO / 'configs').glob('*.py') if not p.stem.startswith('_'))
    names = [n for n in names if n != 'default']
    return [(name, variant) for name in names for variant in _variants(_load(name))]


def run_id(name: str, variant: str | None) -> str:
    return name if variant is None else f'{name}__{variant}'


def _overrides(name: str, variant: str | None) -> dict[str, Any]:
    """TINY plus what the config needs: a batch of 8 per D update, eval.every at the end."""
    config = _load(name).get_config(variant)
    n_critic = config.model.get('n_critic', 1)
    overrides = {**TINY, 'train.batch_size': 8 * n_critic}
    if config.eval.get('every', 0):
        overrides['eval.every'] = NUM_STEPS
    return overrides


def _flags(overrides: dict[str, Any]) -> list[str]:
    return [f'--config.{key}={value!r}' for key, value in overrides.items()]


def _launch(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open('a') as out:
        code = subprocess.run(
            [sys.executable, str(REPO / 'launch.py'), *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
    if code:
        raise RuntimeError(f'launch.py {" ".join(args)} exited {code}; see {log}')


def _strip(tree: Any) -> Any:
    """`tree` without timing values (at any depth)."""
    if isinstance(tree, dict):
        return {k: _strip(v) for k, v in tree.items() if k not in TIMING_KEYS}
    return tree


def _train_records(workdir: Path) -> list[dict[str, Any]]:
    lines = (workdir / 'metrics.jsonl').read_text().splitlines()
    return [_strip(json.loads(line)) for line in lines if line.strip()]


def _images(workdir: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((workdir / 'samples').glob('*.png'))
    }


def _results(workdir: Path) -> dict[str, Any]:
    results = json.loads((workdir / 'results.json').read_text())
    return _strip(results)


def record_run(name: str, variant: str | None, root: Path, env: dict[str, str]) -> dict[str, Any]:
    """Trains (and evaluates) one config tiny in `root/<id>`; returns what must not move."""
    workdir = root / run_id(name, variant)
    config_arg = f'configs/{name}.py' + (f':{variant}' if variant else '')
    common = [f'--config={config_arg}', f'--workdir={workdir}', *_flags(_overrides(name, variant))]
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / 'golden.log'
    _launch(['--mode=train', *common], env, log)
    golden = {
        'train': _results(workdir),
        'records': _train_records(workdir),
        'images': _images(workdir),
    }
    if _load(name).get_config(variant).eval.metrics:
        _launch(['--mode=eval', *common], env, log)
        golden['eval'] = _results(workdir)
    return golden


def record_sweep(root: Path, env: dict[str, str]) -> dict[str, Any]:
    """The sweep of SWEEP_RUN vectorised in groups of SWEEP_VECTORIZE: each trial's results."""
    name, variant = SWEEP_RUN
    workdir = root / f'sweep_{name}'
    overrides = {**TINY, 'train.batch_size': 8}
    args = [
        '--mode=sweep',
        f'--config=configs/{name}.py',
        f'--workdir={workdir}',
        f'--vectorize={SWEEP_VECTORIZE}',
        *_flags(overrides),
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    _launch(args, env, workdir / 'golden.log')
    return {
        trial.name: {'train': _results(trial), 'records': _train_records(trial)}
        for trial in sorted((workdir / 'trials').iterdir())
    }


def _environment(data_dir: str) -> dict[str, str]:
    env = dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONUNBUFFERED='1')
    env['GEN_MODELS_DATA_DIR'] = str(SHARED_DATA)
    return env


def _differences(recorded: Any, now: Any, path: str = '') -> list[str]:
    if isinstance(recorded, dict) and isinstance(now, dict):
        out = []
        for key in sorted(recorded.keys() | now.keys(), key=str):
            where = f'{path}.{key}' if path else str(key)
            if key not in now:
                out.append(f'{where}: {recorded[key]!r} -> absent')
            elif key not in recorded:
                out.append(f'{where}: absent -> {now[key]!r}')
            else:
                out.extend(_differences(recorded[key], now[key], where))
        return out
    if isinstance(recorded, list) and isinstance(now, list) and len(recorded) == len(now):
        return [
            d
            for i, (a, b) in enumerate(zip(recorded, now))
            for d in _differences(a, b, f'{path}[{i}]')
        ]
    return [] if recorded == now else [f'{path}: {recorded!r} -> {now!r}']


def _jobs(only: str | None) -> list[tuple[str, Any]]:
    jobs: list[tuple[str, Any]] = [
        (run_id(n, v), (n, v)) for n, v in runs() if only is None or only in run_id(n, v)
    ]
    if only is None or only in 'sweep':
        jobs.append((f'sweep_{SWEEP_RUN[0]}', None))
    return jobs


def _run_job(job, root: Path, env: dict[str, str]) -> dict[str, Any]:
    return record_sweep(root, env) if job is None else record_run(*job, root, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=('record', 'compare', 'list'))
    parser.add_argument('--only', help='runs whose id contains this string')
    parser.add_argument('--golden', type=Path, default=GOLDEN_DIR, help='golden files folder')
    parser.add_argument('--workdir', type=Path, help='where runs go (default: a temp folder)')
    parser.add_argument('--data_dir', help='prepared TFDS data (default: <workdir>/tfds)')
    parser.add_argument('--jobs', type=int, default=1, help='runs at once')
    args = parser.parse_args(argv)
    jobs = _jobs(args.only)
    if args.command == 'list':
        print('\n'.join(name for name, _ in jobs))
        return 0
    root = args.workdir or Path(tempfile.mkdtemp(prefix='golden_'))
    env = _environment(args.data_dir or str(root / 'tfds'))
    # The first run prepares the datasets it needs before parallel runs could race to.
    first = _run_job(jobs[0][1], root, env)
    moved = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(_run_job, job, root, env) for name, job in jobs[1:]}
        for name, _ in jobs:
            try:
                now = futures[name].result() if name in futures else first
            except RuntimeError as error:
                print(f'{name}: FAILED: {error}')
                moved += 1
                continue
            path = args.golden / f'{name}.json'
            if args.command == 'record':
                args.golden.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(now, indent=1, sort_keys=True) + '\n')
                print(f'{name}: recorded')
                continue
            recorded = json.loads(path.read_text()) if path.is_file() else None
            diffs = ['no golden file'] if recorded is None else _differences(recorded, now)
            moved += bool(diffs)
            print(f'{name}: ' + ('identical' if not diffs else f'{len(diffs)} differences'))
            for line in diffs[:40]:
                print(f'  {line}')
    print(f'runs in {root}')
    return 1 if moved else 0


if __name__ == '__main__':
    sys.exit(main())
