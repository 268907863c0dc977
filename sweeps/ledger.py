"""sweep.json, the truth about a sweep: its base config and every trial's state.

  sweepdir/sweep.json       the base config and every trial: id, overrides, status, error,
                            seconds and the command that runs it alone
  sweepdir/trials/<id>/     the trial's workdir (config.json, metrics.jsonl, checkpoints, ...)

A trial is 'done' when its results.json exists; a sweep folder holds one base config.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections

from experiments import logs
from gen_models import config as cfg
from gen_models import schema
from sweeps.expansion import SweepError, Trial

SWEEP_FILE = 'sweep.json'
TRIALS_DIR = 'trials'


def trial_dir(workdir: str | os.PathLike[str], trial_id: str) -> Path:
    return Path(workdir) / TRIALS_DIR / trial_id


def is_finished(workdir: str | os.PathLike[str], trial_id: str) -> bool:
    return (trial_dir(workdir, trial_id) / 'results.json').is_file()


def sweep_trials(workdir: str | os.PathLike[str]) -> list[tuple[dict[str, Any], Path]]:
    """(overrides, workdir) of every trial of a sweep folder, in sweep order."""
    ledger = json.loads((Path(workdir) / SWEEP_FILE).read_text())
    return [(trial['overrides'], trial_dir(workdir, trial['id'])) for trial in ledger['trials']]


def _as_json(tree: Any) -> Any:
    return json.loads(json.dumps(tree, sort_keys=True))


def _computed(base_config: dict[str, Any]) -> dict[str, Any]:
    """What decides a base config's numbers, for comparing a rerun with the sweep on disk: on
    today's schema (sweeps of older versions resume), without the `sweep` section (how trials
    are ranked and where they run, e.g. new SLURM resources for the rest of a sweep)."""
    computed = _as_json(schema.from_saved(base_config).to_dict())
    computed.pop('sweep')
    return computed


class Ledger:
    """sweep.json: the base config and each trial's state, rewritten atomically on change.

    A sweep folder holds one base config (SweepError otherwise); its trials are those
    of the latest run, each 'done' when its results.json exists, else 'pending' to start.
    """

    def __init__(
        self,
        workdir: Path,
        base: ml_collections.ConfigDict,
        trials: list[Trial],
        launcher: Any,
    ):
        self.path = workdir / SWEEP_FILE
        base_config = _as_json(base.to_dict())
        previous = json.loads(self.path.read_text()) if self.path.exists() else None
        saved = previous and _computed(previous['base_config'])
        if previous and saved != _computed(base_config):
            old, new = _flat(saved), _flat(_computed(base_config))
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise SweepError(
                f'{self.path} holds a sweep of another base config (it differs in '
                f'{", ".join(changed)}); use a new --workdir'
            )
        seconds = {t['id']: t['seconds'] for t in previous['trials']} if previous else {}
        self.header = {
            'config_file': launcher and launcher.config_file,
            'base_overrides': launcher and launcher.base_overrides,
            'base_config': base_config,
        }
        self.trials = {}
        for trial in trials:
            done = is_finished(workdir, trial.id)
            command = launcher and launcher.command(trial, trial_dir(workdir, trial.id))
            self.trials[trial.id] = {
                'id': trial.id,
                'overrides': trial.overrides,
                'status': 'done' if done else 'pending',
                'error': None,
                'seconds': seconds.get(trial.id) if done else None,
                'command': command and shlex.join(command),
            }

    def update(self, trial_id: str, **fields: Any) -> None:
        self.trials[trial_id].update(fields)
        self.write()

    def write(self) -> None:
        logs.write_json(self.path, {**self.header, 'trials': list(self.trials.values())})


def _flat(tree: Mapping[str, Any]) -> dict[str, Any]:
    return dict(cfg.flatten(tree))
