"""What a run writes besides checkpoints: metrics.jsonl, TensorBoard events and JSON files.

`metrics.jsonl` holds one JSON object per logged step, the record reports and tests read;
TensorBoard event files in the same workdir are for watching a run. A resumed run rewinds
both to its checkpoint's step, so that no step appears twice.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorboardX

METRICS_FILE = 'metrics.jsonl'
_NON_FINITE = {'nan': math.nan, 'inf': math.inf, '-inf': -math.inf}


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Writes `obj` as indented JSON, atomically (a killed writer leaves the old file).

    NumPy and JAX arrays and scalars are written as (nested lists of) Python numbers.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, default=_array_to_list)
    _write_text_atomic(Path(path), text + '\n')


def read_metrics(workdir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of `workdir/metrics.jsonl` in file order; 'nan'/'inf' strings as floats."""
    return [
        {
            key: _NON_FINITE.get(value, value) if isinstance(value, str) else value
            for key, value in json.loads(line).items()
        }
        for line in _complete_lines(Path(workdir) / METRICS_FILE)
    ]


class MetricWriter:
    """Appends scalars to `workdir/metrics.jsonl` and TensorBoard, images to TensorBoard.

    Args:
      workdir: the run's folder (created if missing).
      resume_step: the step of the checkpoint a resumed run restarts from: records of later
        steps, logged before the run was killed, are dropped from metrics.jsonl and hidden
        in TensorBoard (`purge_step`). None: keep everything and append.
      enabled: False writes nothing (processes other than 0 of a multi-host run).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        resume_step: int | None = None,
        enabled: bool = True,
    ):
        self._enabled = enabled
        if not enabled:
            return
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / METRICS_FILE
        if path.exists():
            # Also drops a last line cut short by a kill, so that appends start on a new line.
            kept = [
                line
                for line in _complete_lines(path)
                if resume_step is None or json.loads(line)['step'] <= resume_step
            ]
            _write_text_atomic(path, ''.join(line + '\n' for line in kept))
        self._file = path.open('a', encoding='utf-8')
        self._tensorboard = tensorboardX.SummaryWriter(
            logdir=str(workdir),
            purge_step=None if resume_step is None else resume_step + 1,
            # tensorboardX names files by the second: keep a quick restart from overwriting.
            filename_suffix=f'.{time.time_ns()}',
        )

    def write_scalars(self, step: int, scalars: Mapping[str, Any], *, prefix: str = '') -> None:
        """Logs `scalars` (floats, numpy or JAX scalars) of `step` under `prefix/name`."""
        if not self._enabled:
            return
        values = {
            f'{prefix}/{name}' if prefix else name: float(value) for name, value in scalars.items()
        }
        if {'step', 'time'} & values.keys():
            raise ValueError(f"'step' and 'time' are reserved names: {sorted(values)}.")
        record = {'step': int(step), 'time': time.time()}
        record.update(
            {name: value if math.isfinite(value) else str(value) for name, value in values.items()}
        )
        # One write per complete line, flushed, so that a kill loses at most this record.
        self._file.write(json.dumps(record) + '\n')
        self._file.flush()
        for name, value in values.items():
            self._tensorboard.add_scalar(name, value, global_step=int(step))

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """Logs uint8 (H, W, C) images, C in {1, 3}, to TensorBoard."""
        if not self._enabled:
            return
        for name, image in images.items():
            self._tensorboard.add_image(
                name, np.asarray(image), global_step=int(step), dataformats='HWC'
            )

    def flush(self) -> None:
        if self._enabled:
            self._file.flush()
            self._tensorboard.flush()

    def close(self) -> None:
        if self._enabled:
            self._file.close()
            self._tensorboard.close()

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _complete_lines(path: Path) -> list[str]:
    """Newline-terminated, non-empty lines of `path`; a missing file has none."""
    if not path.exists():
        return []
    # The piece after the last newline is empty, or a record whose write was cut short.
    return [line for line in path.read_text(encoding='utf-8').split('\n')[:-1] if line]


def _array_to_list(value: Any) -> Any:
    if hasattr(value, '__array__'):
        return np.asarray(value).tolist()
    raise TypeError(f'Object of type {type(value).__name__} is not JSON serializable.')


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(text, encoding='utf-8')
    os.replace(tmp, path)
