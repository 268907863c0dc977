"""The checkpoint with the best value of one evaluation metric, kept beside the newest ones.

`eval.keep_best` names a value of `eval.metrics` (e.g. 'parzen_validation', 'fid'); each
evaluation during training that improves it (in the direction `eval.keep_best_mode`) saves
the state to `<workdir>/best_checkpoint/` and records its step and value in
`<workdir>/best_checkpoint.json`; `--mode eval --config.eval.checkpoint=best` evaluates it.
Choosing by a validation metric (not a test one) keeps the reported test figure honest.

The checkpoint is written before its record, so a kill between the two leaves the previous
record; the resumed run reaches the same step with the same value and writes it again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jax

from experiments import logs, runtime
from gen_models.checkpoints import Checkpointer

DIRECTORY = 'best_checkpoint'
RECORD_FILE = 'best_checkpoint.json'


def _checkpointer(workdir: Path) -> Checkpointer:
    return Checkpointer(workdir / DIRECTORY, max_to_keep=1, finite=True)


def read_record(workdir: Path) -> dict[str, Any] | None:
    """{'step', 'metric', 'value', 'mode'} of the kept checkpoint, or None."""
    path = workdir / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class BestCheckpoint:
    """Saves a state whenever `metric` beats the best value so far (resumes from the record)."""

    def __init__(self, workdir: Path, metric: str, mode: str):
        self._workdir = workdir
        self._metric, self._mode = metric, mode
        self._checkpointer = _checkpointer(workdir)
        record = read_record(workdir)
        kept = record and record['metric'] == metric and record['mode'] == mode
        self._best = record['value'] if kept else None

    def offer(self, step: int, values: dict[str, float], state: Any) -> bool:
        """Keeps `state` if `values[metric]` is finite and better than the best so far."""
        value = values[self._metric]
        better = self._best is None or (
            value > self._best if self._mode == 'max' else value < self._best
        )
        if not (math.isfinite(value) and better):
            return False
        self._checkpointer.save(step, state)  # on every process, as Orbax needs
        if jax.process_index() == 0:
            logs.write_json(
                self._workdir / RECORD_FILE,
                {'step': step, 'metric': self._metric, 'value': value, 'mode': self._mode},
            )
        self._best = value
        return True

    def close(self) -> None:
        self._checkpointer.close()


def restore(run: runtime.Run, workdir: Path) -> tuple[Any, int]:
    """The kept best checkpoint of `workdir`; FileNotFoundError when there is none."""
    with _checkpointer(workdir) as manager:
        restored = runtime.restore(run, manager)
    if restored is None:
        raise FileNotFoundError(
            f'no checkpoint in {workdir / DIRECTORY}: train with eval.keep_best set (and '
            'eval.every > 0) to keep one'
        )
    return restored
