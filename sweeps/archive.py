"""A sweep's outcomes without its checkpoints, in a folder small enough to commit.

  python -m sweeps.archive save runs/dis/study docs/disentanglement/study
  python -m sweeps.archive restore docs/disentanglement/study runs/dis/study

`save` copies sweep.json (the base config, each trial's overrides and wall time) and each
finished trial's results.json, config.json and environment.json; the copy is a sweep folder
that analyses (`sweeps.report`, a reproduction's study) read as they read the original. `restore` puts
those files back into a sweep folder where they are missing, so that running the sweep
there again trains only the trials the archive lacks (a trial is done when its results.json
exists). Long studies thus accumulate over machines and sessions; files already present
are never overwritten, and every copy lands whole (written beside, then renamed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from sweeps.ledger import SWEEP_FILE, sweep_trials

KEPT_FILES = ('results.json', 'config.json', 'environment.json')


def copy_whole(source: Path, target: Path, replace: bool) -> bool:
    """Copies `source` to `target` atomically; False when `target` exists and is kept."""
    if target.exists() and not replace:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f'.{target.name}.{os.getpid()}.tmp')
    shutil.copyfile(source, partial)
    partial.replace(target)
    return True


def _finished(sweep_dir: Path) -> list[Path]:
    """Workdirs of the sweep's trials that wrote results.json."""
    return [
        workdir for _, workdir in sweep_trials(sweep_dir) if (workdir / KEPT_FILES[0]).is_file()
    ]


def _check_sweep_folder(folder: Path) -> None:
    if not (folder / SWEEP_FILE).is_file():
        raise FileNotFoundError(f'{folder} holds no {SWEEP_FILE}: not a sweep folder')


def save(
    sweep_dir: str | os.PathLike[str],
    archive_dir: str | os.PathLike[str],
    folder_files: Sequence[str] = (),
) -> int:
    """Copies the sweep's ledger (and `folder_files` beside it, where present) and its
    finished trials' files into `archive_dir`; folder files are replaced, trial files the
    archive holds kept. Returns how many finished trials the archive holds."""
    sweep_dir, archive_dir = Path(sweep_dir), Path(archive_dir)
    _check_sweep_folder(sweep_dir)
    for workdir in _finished(sweep_dir):
        for name in KEPT_FILES:
            target = archive_dir / workdir.relative_to(sweep_dir) / name
            if (workdir / name).is_file():
                copy_whole(workdir / name, target, replace=False)
    for name in (*folder_files, SWEEP_FILE):  # the ledger last: it names what the rest holds
        if (sweep_dir / name).is_file():
            copy_whole(sweep_dir / name, archive_dir / name, replace=True)
    return len(_finished(archive_dir))


def restore(
    archive_dir: str | os.PathLike[str],
    sweep_dir: str | os.PathLike[str],
    folder_files: Sequence[str] = (),
) -> int:
    """Copies the archive's files (trials', the ledger, `folder_files`) that `sweep_dir`
    lacks into it; returns how many trials were restored. A sweep folder of another base config is refused (the archive would
    claim its trials done)."""
    archive_dir, sweep_dir = Path(archive_dir), Path(sweep_dir)
    _check_sweep_folder(archive_dir)
    ledger = sweep_dir / SWEEP_FILE
    if ledger.is_file():
        ours, theirs = (
            json.loads(path.read_text())['base_config']
            for path in (archive_dir / SWEEP_FILE, ledger)
        )
        if ours != theirs:
            raise ValueError(
                f'{ledger} holds a sweep of another base config than {archive_dir}; '
                'restore into a new folder'
            )
    restored = 0
    for workdir in _finished(archive_dir):
        copied = [
            copy_whole(workdir / name, sweep_dir / workdir.relative_to(archive_dir) / name, False)
            for name in KEPT_FILES
            if (workdir / name).is_file()
        ]
        restored += copied[0]
    for name in (*folder_files, SWEEP_FILE):
        if (archive_dir / name).is_file():
            copy_whole(archive_dir / name, sweep_dir / name, replace=False)
    return restored


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=('save', 'restore'))
    parser.add_argument('source', type=Path, help='save: the sweep folder; restore: the archive')
    parser.add_argument('target', type=Path, help='save: the archive; restore: the sweep folder')
    args = parser.parse_args(argv)
    try:
        count = (save if args.command == 'save' else restore)(args.source, args.target)
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f'error: {error}\n')
    what = 'finished trials in' if args.command == 'save' else 'trials restored into'
    print(f'{count} {what} {args.target}')


if __name__ == '__main__':
    main()
