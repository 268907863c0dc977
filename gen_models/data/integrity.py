"""Integrity of the data: digests of the raw source files, reads of the prepared files, and the
temporary folders a killed preparation leaves behind.

Each failure is one line naming the file and what to do: `SourceFileError` for a raw file
(found while preparing), `PreparedDataError` for a prepared array_record file (found while
reading it).
"""

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from etils import epath

from gen_models.config import ConfigError

REPLACE = 'replace it with the canonical file (delete a downloaded one to download it again)'
OVERRIDE = 'or set config.dataset.verify_checksums=False to prepare it as it is'
# An `incomplete.*` folder (where TFDS writes a dataset until it is complete) is stale once
# nothing in it has changed for this long. TFDS names the folder with a random suffix and
# records no owner pid, so idleness is the only sign that its writer is dead; preparing a
# project dataset, download included, takes minutes, so an idle hour means no live writer.
STALE_AFTER_S = 3600
# What a read of a broken prepared file raises: array_record's reader raises RuntimeError for
# corrupted, truncated and missing files (riegeli checks a hash of every chunk it reads).
_READ_ERRORS = (RuntimeError, OSError)


class SourceFileError(ValueError):
    """A raw source file that is not the canonical one or cannot be decoded; one line."""

    def __init__(self, path: Any, problem: str, remedy: str = REPLACE):
        super().__init__(f'{path}: {problem}; {remedy}')
        self.path = path


class PreparedDataError(ConfigError):
    """A prepared file of dataset `name` that cannot be read; one line saying how to repair it."""

    def __init__(self, name: str, path: str, error: Exception, remedy: str):
        super().__init__(
            'dataset.name', name, f'{path} cannot be read ({_one_line(error)}); {remedy}'
        )
        self.path = path


def _one_line(error: Exception) -> str:
    return ' '.join(str(error).split())


def file_sha256(path: epath.Path) -> str:
    """The hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open('rb') as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Any, actual: str, accepted: Sequence[str], what: str = 'sha256') -> None:
    """SourceFileError unless digest `actual` of `path` is one of the `accepted` ones."""
    if actual not in accepted:
        expected = ' or '.join(accepted)
        raise SourceFileError(
            path, f'{what} is {actual}, expected {expected}', f'{REPLACE}, {OVERRIDE}'
        )


def check_labels(path: Any, labels: np.ndarray, num_classes: int) -> None:
    """SourceFileError naming the first label outside [0, num_classes) and its index."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise SourceFileError(
            path, f'label {labels[i]} at index {i} is out of range 0-{num_classes - 1}'
        )


class CheckedSource:
    """A split's random-access source whose read errors become a `PreparedDataError` naming
    the prepared file that failed, instead of array_record's message, which names none.

    `filenames` and `takes` are the split's files and how many of its examples each holds, in
    order (TFDS' file instructions); `error(path, exception)` makes the error to raise.
    """

    def __init__(
        self,
        source: Any,
        filenames: Sequence[str],
        takes: Sequence[int],
        error: Callable[[str, Exception], Exception],
    ):
        self._source, self._filenames, self._error = source, list(filenames), error
        self._ends = np.cumsum(takes)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        try:
            return self._source.__getitems__(indices)
        except _READ_ERRORS as error:
            raise self._located(indices, error) from None

    def _located(self, indices: Sequence[int], error: Exception) -> Exception:
        """The error naming the file that fails, found by reading the examples one by one."""
        for index in indices:
            try:
                self._source[index]
            except _READ_ERRORS as failure:
                return self._error(self._filename(index), failure)
        return self._error(', '.join(sorted({self._filename(i) for i in indices})), error)

    def _filename(self, index: int) -> str:
        return self._filenames[int(np.searchsorted(self._ends, index, side='right'))]


def remove_stale_incomplete(folder: epath.Path) -> None:
    """Deletes the `incomplete.*` folders (and files) in `folder` that are stale (see
    STALE_AFTER_S); a dataset's lie beside its version folders."""
    for path in folder.glob('incomplete.*'):
        try:
            if time.time() - _last_change(path) < STALE_AFTER_S:
                continue
            if path.is_dir():
                path.rmtree()
            else:
                path.unlink()
        except FileNotFoundError:  # removed or renamed meanwhile by another process
            continue
        logging.info('removed %s, left behind by a preparation that did not finish', path)


def _last_change(path: epath.Path) -> float:
    """The newest modification time of `path` and everything under it."""
    times = [path.stat().mtime]
    for folder, dirnames, filenames in path.walk():
        times += [(folder / name).stat().mtime for name in dirnames + filenames]
    return max(times)
