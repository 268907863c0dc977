"""The one command line: train, evaluate, sample or sweep an experiment config.

  python launch.py --config configs/vae_mnist.py --workdir runs/vae --config.lr=3e-4
  python launch.py --config configs/dcgan_mnist.py:minimax --workdir runs/gan --mode sample
  python launch.py --config configs/vae_mlp_mnist.py --workdir runs/sweeps/lr --mode sweep \
      --parallel 2
  python launch.py --config configs/vae_mlp_mnist.py --workdir /shared/lr --mode sweep \
      --executor slurm
  python launch.py ... --coordinator_address host0:1234 --num_processes 2 --process_id 0

Bad flags or config values print one line naming the key, the value and what is
allowed, and exit with status 2 before any data or compile work.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from experiments import evaluate, export, runtime, sample, train, workdir
from gen_models import distributed, xla_settings
from gen_models.checkpoints import CorruptCheckpointError
from gen_models.config import EXIT_USAGE, ConfigError
from sweeps import sweep

MODES = ('train', 'eval', 'sample', 'sweep', 'export')
SAVED_CONFIG = Path(__file__).resolve().parent / 'configs' / '_saved.py'

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, optionally with a variant: configs/x.py[:arg].'
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory of the run (created if needed).')
_MODE = flags.DEFINE_enum('mode', 'train', MODES, 'What to do with the config.')
_PARALLEL = flags.DEFINE_integer('parallel', 1, 'Sweep: trials run at once, each a process.')
_VECTORIZE = flags.DEFINE_integer(
    'vectorize',
    1,
    'Sweep: up to this many trials that differ only in traced hyperparameters (lr, loss '
    'weights) and the seed, trained as one vmapped program.',
)
_EXECUTOR = flags.DEFINE_enum(
    'executor',
    'local',
    sweep.EXECUTORS,
    'Sweep: where trials run: local (this machine: in process, --parallel or --vectorize) or '
    'slurm (a job array through submitit, resources in config.sweep.slurm).',
)
_DRY_RUN = flags.DEFINE_bool('dry_run', False, "Sweep: list the trials, don't run them.")
_DISTRIBUTED = flags.DEFINE_enum(
    'distributed',
    'auto',
    distributed.MODES,
    'Join a multi-process run: auto (if a flag below is set, or in a multi-process SLURM step, '
    'Open MPI job or TPU pod, or with $JAX_COORDINATOR_ADDRESS), on (e.g. TPU pod slices), off.',
)
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Multi-process: host:port of process 0 (others connect to it).'
)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Multi-process: how many.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Multi-process: this one, 0-based.')


def _usage_error(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _last_line(message: str) -> str:
    """A flag error that embeds a traceback, cut to its flag and final line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 else f'{lines[0].split(":")[0]}: {lines[-1]}'


def _saved_configs(argv: list[str]) -> list[str]:
    """`--config runs/x/config.json` read through configs/_saved.py (a saved run's config)."""
    out, args = [], iter(argv)
    for arg in args:
        value = arg.partition('=')[2] if arg.startswith('--config=') else None
        if arg == '--config':
            value = next(args, '')
        if value is not None and value.endswith('.json'):
            arg = f'--config={SAVED_CONFIG}:{value}'
        elif arg == '--config':
            arg = f'--config={value}'
        out.append(arg)
    return out


def _config_path(argv: list[str]) -> str:
    """The config file `--config` names (without its `:variant`), '' when none."""
    values = [a.partition('=')[2] for a in argv if a.startswith('--config=')]
    return values[-1].partition(':')[0] if values else ''


def _config_error(error: BaseException, path: str) -> str:
    """One line for a config file that does not load: its file and line, what went wrong."""
    if isinstance(error, SyntaxError):
        return f'--config: {error.filename}:{error.lineno}: {error.msg}'
    if isinstance(error, AttributeError) and 'get_config' in str(error):
        return f'--config: {path} defines no get_config(arg=None)'
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(path)]
    where = f'{path}:{frames[-1].lineno}' if frames else path
    return f'--config: {where}: {type(error).__name__}: {error}'


def _check_workdir(workdir: str, mode: str) -> None:
    """A workdir that could never hold a run: empty, a file, one that cannot be made (train
    and sweep make it here; the other modes need one that holds a run)."""
    if not workdir.strip():
        _usage_error('--workdir must name a folder (got an empty string)')
    path = Path(workdir)
    if path.exists() and not path.is_dir():
        _usage_error(f'--workdir={workdir} is a file, not a folder')
    if mode in ('train', 'sweep'):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            _usage_error(f'--workdir={workdir} cannot be made ({error.strerror})')
    if path.is_dir() and not os.access(path, os.W_OK):
        _usage_error(f'--workdir={workdir} is not writable')


def parse_flags(argv: list[str]):
    """Parses flags and loads the config; usage errors become one line and exit 2."""
    argv = _saved_configs(argv)
    path = _config_path(argv)
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # config_flags' own warnings: the error line says it
    try:
        flags.FLAGS(argv)
        if not path or _WORKDIR.value is None:
            _usage_error('--config and --workdir are required')
        config = _CONFIG.value
        if config is not None:
            config.to_dict()  # Touching a config that failed to load raises its error.
    except flags.Error as error:
        _usage_error(_last_line(str(error)))
    except (AttributeError, KeyError) as error:
        if 'get_config' in str(error):
            _usage_error(_config_error(error, path))
        _usage_error(f'unknown config key {error} (docs/configs.md lists every key)')
    except Exception as error:  # noqa: BLE001 - whatever a config file raises: one line
        _usage_error(_config_error(error, path))
    finally:
        logging.set_verbosity(verbosity)
    if not isinstance(config, ml_collections.ConfigDict):
        _usage_error(f'--config: {path}: get_config() returned {config!r}, not a ConfigDict')
    _check_workdir(_WORKDIR.value, _MODE.value)
    return config


def _print_results(results: dict) -> None:
    metrics = ', '.join(f'{k}={v:.4g}' for k, v in results['metrics'].items())
    print(f'step {results["step"]}: {metrics} ({_WORKDIR.value}/results.json)')


def main(argv: list[str]) -> None:
    config = parse_flags(argv)
    # Process-wide settings, before JAX starts its backend: XLA reads XLA_FLAGS once.
    if config.train.deterministic:
        xla_settings.request_deterministic_gpu_ops()  # same numbers run to run on GPUs
    try:
        distributed.initialize(
            _DISTRIBUTED.value,
            coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value,
        )
    except ValueError as error:
        _usage_error(f'--distributed: {error}')
    xla_settings.enable_compilation_cache()  # a rerun skips its compiles
    xla_settings.use_unrolled_threefry()  # faster compiles and random numbers on CPU
    try:
        if _MODE.value == 'train':
            _print_results(train.train_and_evaluate(config, _WORKDIR.value))
        elif _MODE.value == 'sweep':
            sys.exit(
                sweep.launch(
                    config,
                    flags.FLAGS['config'],
                    _WORKDIR.value,
                    parallel=_PARALLEL.value,
                    vectorize=_VECTORIZE.value,
                    executor=_EXECUTOR.value,
                    dry_run=_DRY_RUN.value,
                )
            )
        elif _MODE.value == 'eval':
            _print_results(evaluate.evaluate(config, _WORKDIR.value))
        elif _MODE.value == 'export':
            record = export.export(config, _WORKDIR.value)
            print(f'{record["folder"]}: {", ".join(record["files"])} (step {record["step"]})')
        else:
            for path in sample.sample(config, _WORKDIR.value):
                print(path)
    except (
        ConfigError,
        FileNotFoundError,
        runtime.IncompatibleCheckpointError,
        sweep.SweepError,
        workdir.WorkdirBusyError,
    ) as error:
        _usage_error(str(error))
    except train.TrainingInterrupted as error:
        logging.warning('%s', error)
        sys.exit(128 + error.signum)
    except (train.NonFiniteError, CorruptCheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    logging.set_verbosity(logging.WARNING)  # --verbosity=0 shows library INFO logs too.
    main(sys.argv)
