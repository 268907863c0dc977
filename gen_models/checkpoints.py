"""Checkpoints of a training state: save, keep the newest N, restore the newest sound one.

A thin layer over `orbax.checkpoint.CheckpointManager`. Orbax writes each step into
`<step>.orbax-checkpoint-tmp` and renames it to `<step>` only once complete, so a process
killed mid-write never leaves a folder that is taken for a checkpoint. On top of that this
class gives a resumable training loop synchronous saves and a restore that skips unreadable
checkpoints, and it guards the arrays' contents: each save records the sha256 of every array
in `<step>/checksums.json`, and a restore whose arrays differ from them (or, for training
states, hold NaN or Inf) is treated like an unreadable checkpoint (a warning naming the
arrays, then the previous one). A save may carry `extra`, JSON the caller needs to resume exactly (`<step>/extra.json`).
Multi-host runs work as Orbax does (every process makes the same calls; process 0 writes the
sidecar files); nothing is sharded or replicated here: restore into a target that already
has the wanted placement.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

State = TypeVar('State')
CHECKSUMS_FILE = 'checksums.json'
EXTRA_FILE = 'extra.json'


class CheckpointMismatchError(ValueError):
    """A checkpoint's arrays differ in name, shape or dtype from those of the restore target."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint's array data differ from the checksums written with it, or are not finite."""


def _host_arrays(tree: Any) -> dict[str, np.ndarray]:
    """'a/b/c' -> this process's copy of every array leaf of a pytree (replicated arrays whole)."""
    flat = ocp.tree.to_flat_dict(ocp.tree.serialize_tree(tree, keep_empty_nodes=True))
    arrays = {}
    for path, leaf in flat.items():
        if hasattr(leaf, 'addressable_data'):
            leaf = leaf.addressable_data(0)
        if hasattr(leaf, 'shape'):
            arrays['/'.join(path)] = np.asarray(leaf)
    return arrays


def array_checksums(tree: Any) -> dict[str, str]:
    """sha256 of every array of `tree` (dtype, shape and bytes), by path."""
    checksums = {}
    for path, value in _host_arrays(tree).items():
        value = np.ascontiguousarray(value)
        digest = hashlib.sha256(f'{value.dtype}:{value.shape}:'.encode())
        digest.update(value.tobytes())
        checksums[path] = digest.hexdigest()
    return checksums


def non_finite_arrays(tree: Any) -> list[str]:
    """Paths of the floating-point arrays of `tree` that hold a NaN or an Inf."""
    return [
        path
        for path, value in _host_arrays(tree).items()
        if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value))
    ]


def _array_signatures(tree: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """'a/b/c' -> (shape, dtype) for every array of a (serialised) pytree or its metadata."""
    return {
        '/'.join(path): (tuple(leaf.shape), np.dtype(leaf.dtype))
        for path, leaf in ocp.tree.to_flat_dict(tree).items()
        if hasattr(leaf, 'shape')  # Not the empty containers kept as leaves.
    }


def _describe(signature: tuple[tuple[int, ...], np.dtype] | None) -> str:
    return 'absent' if signature is None else f'{signature[1]}{list(signature[0])}'


class Checkpointer:
    """Saves and restores pytrees of arrays (e.g. a `flax.struct.dataclass` TrainState)."""

    def __init__(
        self, directory: str | os.PathLike[str], *, max_to_keep: int = 3, finite: bool = False
    ):
        """`finite`: a restored state with NaN or Inf counts as corrupt (training states are
        never saved so; other trees may hold them on purpose)."""
        self._finite = finite
        path = epath.Path(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            # save() returns once the checkpoint is complete and renamed into place.
            enable_async_checkpointing=False,
            # Remove `<step>.orbax-checkpoint-tmp` folders left behind by a killed writer.
            cleanup_tmp_directories=True,
        )
        # TensorStore needs an absolute path; the handler lets `item_metadata` read the tree.
        self._manager = ocp.CheckpointManager(
            path if path.is_absolute() else path.absolute(),
            options=options,
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    @property
    def directory(self) -> epath.Path:
        return self._manager.directory

    def save(self, step: int, state: Any, extra: dict[str, Any] | None = None) -> None:
        """Writes `state` as the checkpoint of `step`, with the checksums of its arrays and
        `extra` (JSON) beside it; returns once all is complete on disk.

        Checkpoints of `step` or later are deleted first: they belong to a history this run has
        gone back on (it resumed from an older step, e.g. because they were unreadable), and
        Orbax would otherwise skip saving any step not newer than all existing ones.
        """
        for stale in sorted(s for s in self._manager.all_steps() if s >= step):
            logging.warning(
                'Deleting the checkpoint of step %d in %s: %s.',
                stale,
                self.directory,
                'replaced by a new one of that step'
                if stale == step
                else f'newer than step {step}',
            )
            self._manager.delete(stale)
        # force=True: the caller decides when to save; Orbax's interval policy does not apply.
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        if jax.process_index() == 0:
            self._write_json(step, CHECKSUMS_FILE, array_checksums(state))
            if extra is not None:
                self._write_json(step, EXTRA_FILE, extra)

    def extra(self, step: int) -> dict[str, Any] | None:
        """The `extra` saved with the checkpoint of `step`, or None."""
        return self._read_json(step, EXTRA_FILE)

    def _write_json(self, step: int, name: str, obj: Any) -> None:
        """Writes `<step>/<name>` atomically (a killed writer leaves no partial file)."""
        path = self.directory / str(step) / name
        tmp = path.parent / f'.{name}.{os.getpid()}.tmp'
        tmp.write_text(json.dumps(obj, sort_keys=True))
        tmp.rename(path)

    def _read_json(self, step: int, name: str) -> Any:
        path = self.directory / str(step) / name
        return json.loads(path.read_text()) if path.exists() else None

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None; it may still be unreadable."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of all complete checkpoints, ascending."""
        return sorted(self._manager.all_steps())

    def restore(self, target: State, step: int | None = None) -> tuple[State, int] | None:
        """Restores a checkpoint into the structure, shapes and dtypes of `target`.

        Args:
          target: a pytree like the saved state, e.g. a freshly initialised TrainState.
          step: the step to restore (its errors propagate); None: the newest checkpoint that
            can be read, skipping unreadable newer ones (corrupt or missing files) with a
            warning.

        Returns:
          (state, step), or None when there is no checkpoint at all.

        Raises:
          FileNotFoundError: `step` is given and has no checkpoint.
          CheckpointMismatchError: the checkpoint's arrays differ from `target`'s in name,
            shape or dtype (found from its metadata, before any array's data is read).
          CorruptCheckpointError: `step` is given and its arrays differ from their checksums
            or are not finite.
          Exception: the newest checkpoint's error when none can be read, rather than a
            silent start from scratch.
        """
        if step is not None:
            return self._restore(target, step), step
        first_error = None
        for candidate in sorted(self._manager.all_steps(), reverse=True):
            try:
                return self._restore(target, candidate), candidate
            except Exception as error:  # pylint: disable=broad-except  # Try an older one.
                logging.warning(
                    'Cannot restore the checkpoint of step %d in %s (%s: %s); trying an older one.',
                    candidate,
                    self.directory,
                    type(error).__name__,
                    error,
                )
                first_error = first_error or error
        if first_error is not None:
            raise first_error
        return None

    def _restore(self, target: State, step: int) -> State:
        self._check_matches(target, step)
        state = self._manager.restore(step, args=ocp.args.StandardRestore(target))
        self._check_contents(state, step)
        return state

    def _check_contents(self, state: Any, step: int) -> None:
        """CorruptCheckpointError when the restored arrays differ from their checksums or, with
        `finite`, hold NaN/Inf. Checkpoints of earlier versions have no checksums."""
        where = f'the checkpoint of step {step} in {self.directory}'
        recorded = self._read_json(step, CHECKSUMS_FILE)
        if recorded is not None:
            restored = array_checksums(state)
            differing = sorted(
                k for k in recorded.keys() | restored.keys() if recorded.get(k) != restored.get(k)
            )
            if differing:
                raise CorruptCheckpointError(
                    f'{where}: {len(differing)} arrays differ from the checksums written with '
                    f'it (corrupt files?), e.g. {", ".join(differing[:3])}'
                )
        bad = non_finite_arrays(state) if self._finite else []
        if bad:
            raise CorruptCheckpointError(
                f'{where} holds NaN or Inf in {len(bad)} arrays, e.g. {", ".join(bad[:3])}'
            )

    def _check_matches(self, target: State, step: int) -> None:
        saved = _array_signatures(dict(self._manager.item_metadata(step)))
        wanted = _array_signatures(ocp.tree.serialize_tree(target, keep_empty_nodes=True))
        # Shallowest first: parameters before the optimiser moments nested deeper that mirror them.
        differing = sorted(
            (k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k)),
            key=lambda name: (name.count('/'), name),
        )
        if differing:
            examples = '; '.join(
                f'{k}: saved {_describe(saved.get(k))}, wanted {_describe(wanted.get(k))}'
                for k in differing[:3]
            )
            raise CheckpointMismatchError(
                f'{len(differing)} of {len(wanted)} arrays of step {step} differ from the '
                f'target, e.g. {examples}'
            )

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
