"""evaluate(config, workdir): eval metrics of the newest checkpoint into results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_collections

from experiments import runtime


def evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Evaluates the newest readable checkpoint of `workdir`; writes and returns results."""
    workdir = Path(workdir)
    run = runtime.prepare(config)
    state, step = runtime.restore_latest(run, workdir)
    metrics = runtime.evaluate_state(run, state)
    return runtime.write_results(run, workdir, step, {f'eval/{k}': v for k, v in metrics.items()})
