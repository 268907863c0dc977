"""Runs a hyperparameter sweep: expands its trials, runs the pending ones, reports.

  python launch.py --mode sweep --config configs/x.py --workdir runs/sweeps/x [--parallel N]
  python launch.py --mode sweep ... --executor slurm      # one job array (sweeps/slurm.py)

Running a sweep again skips finished trials (those with results.json) and resumes the others
from their checkpoints; a failing trial is recorded with its error and the others go on. On
disk: `sweeps/ledger.py` (sweep.json, trials/<id>/) and `sweeps/report.py` (summary.csv,
summary.md, plots/).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from experiments import workdir as workdir_lock
from gen_models.sweep_algebra import Overrides
from sweeps import executors, report, slurm
from sweeps.expansion import SweepError, Trial, expand, load_sweep
from sweeps.ledger import SWEEP_FILE, Ledger, is_finished

EXECUTORS = ('local', 'slurm')


def run_sweep(
    base: ml_collections.ConfigDict,
    sweep: Sequence[Overrides],
    workdir: str | os.PathLike[str],
    *,
    parallel: int = 1,
    vectorize: int = 1,
    executor: str = 'local',
    launcher: executors.Launcher | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Runs the unfinished trials of `sweep` over `base` in `workdir`; returns id -> status.

    `parallel > 1` needs a `launcher`: trials then run as that many `launch.py` processes.
    `vectorize > 1` trains up to that many trials that differ only in shape-free
    hyperparameters in one program. `executor='slurm'` submits the trials as a SLURM job
    array (one task per trial or vectorised group) and follows them until they have ended.
    Writes the report (summary.csv, summary.md, plots/).
    """
    workdir = Path(workdir)
    trials = expand(base, sweep)
    if parallel < 1 or vectorize < 1 or (parallel > 1 and vectorize > 1):
        raise SweepError(
            f'parallel={parallel}, vectorize={vectorize}: both >= 1, and at most one above 1'
        )
    if parallel > 1 and launcher is None:
        raise SweepError('parallel trials run as launch.py processes and need a launcher')
    if executor not in EXECUTORS:
        raise SweepError(f'executor {executor!r} is not one of {EXECUTORS}')
    if executor == 'slurm':
        if parallel > 1:
            raise SweepError(
                '--parallel starts local processes; with --executor slurm, '
                'sweep.slurm.array_parallelism caps the tasks running at once'
            )
        slurm.check(base, trials, workdir, vectorize, log)
    workdir.mkdir(parents=True, exist_ok=True)
    with workdir_lock.lock(workdir):  # one command at a time runs a sweep folder
        return _run_locked(base, trials, workdir, parallel, vectorize, executor, launcher, log)


def _run_locked(
    base: ml_collections.ConfigDict,
    trials: list[Trial],
    workdir: Path,
    parallel: int,
    vectorize: int,
    executor: str,
    launcher: executors.Launcher | None,
    log: Callable[[str], None],
) -> dict[str, str]:
    """`run_sweep` under the workdir's lock: the ledger, the pending trials, the report."""
    ledger = Ledger(workdir, base, trials, launcher)
    if executor == 'slurm':
        slurm.keep_jobs(ledger)
    ledger.write()
    pending = [t for t in trials if ledger.trials[t.id]['status'] != 'done']
    log(f'{len(trials)} trials, {len(trials) - len(pending)} finished, {len(pending)} to run')
    if executor == 'slurm':
        slurm.run(base, pending, workdir, ledger, vectorize, log)
    elif parallel > 1:
        executors.run_processes(pending, workdir, ledger, launcher, parallel, log)
    elif vectorize > 1:
        executors.run_vectorized(base, pending, workdir, ledger, vectorize, log)
    else:
        executors.run_in_process(base, pending, workdir, ledger, log)
    for path in report.write_report(workdir):
        log(f'wrote {path}')
    return {trial_id: record['status'] for trial_id, record in ledger.trials.items()}


def launch(
    base: ml_collections.ConfigDict,
    config_flag: Any,
    workdir: str,
    *,
    parallel: int = 1,
    vectorize: int = 1,
    executor: str = 'local',
    dry_run: bool = False,
) -> int:
    """`launch.py --mode sweep`: runs (or with `dry_run` lists) the config file's sweep;
    returns the exit status, 1 when a trial failed."""
    from ml_collections import config_flags

    launcher = executors.Launcher(
        config_flags.get_config_filename(config_flag),
        dict(config_flags.get_override_values(config_flag)),
    )
    sweep = load_sweep(launcher.config_file)
    if dry_run and executor == 'slurm':
        slurm.dry_run(base, expand(base, sweep), Path(workdir), vectorize)
        return 0
    if dry_run:
        for trial in expand(base, sweep):
            state = 'finished' if is_finished(workdir, trial.id) else 'to run'
            print(f'{trial.id}\t{state}\t{json.dumps(trial.overrides)}')
        return 0
    statuses = run_sweep(
        base,
        sweep,
        workdir,
        parallel=parallel,
        vectorize=vectorize,
        executor=executor,
        launcher=launcher,
    )
    failed = [trial_id for trial_id, status in statuses.items() if status == 'failed']
    if failed:
        print(
            f'error: {len(failed)} trials failed: {", ".join(failed)} (see {workdir}/{SWEEP_FILE})',
            file=sys.stderr,
        )
    return 1 if failed else 0
