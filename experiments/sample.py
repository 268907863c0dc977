"""sample(config, workdir): sample grids (and reconstructions) of the newest checkpoint."""

from __future__ import annotations

from pathlib import Path

import ml_collections

from experiments import runtime


def sample(config: ml_collections.ConfigDict, workdir: str | Path) -> list[Path]:
    """Writes PNG grids to `workdir/samples/*_final_<step>.png`; returns their paths."""
    workdir = Path(workdir)
    run = runtime.prepare(config)
    state, step = runtime.restore_latest(run, workdir)
    return runtime.save_samples(run, state, workdir, f'final_{step:07d}')
