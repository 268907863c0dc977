"""Checkpoints of a training state: save, keep the newest N, restore the newest readable one.

A thin layer over `orbax.checkpoint.CheckpointManager`. Orbax writes each step into
`<step>.orbax-checkpoint-tmp` and renames it to `<step>` only once complete, so a process
killed mid-write never leaves a folder that is taken for a checkpoint. On top of that this
class gives a resumable training loop synchronous saves and a restore that skips unreadable
checkpoints. Multi-host runs work as Orbax does (every process makes the same calls); nothing
is sharded or replicated here: restore into a target that already has the wanted placement.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import orbax.checkpoint as ocp
from absl import logging
from etils import epath

State = TypeVar('State')


class Checkpointer:
    """Saves and restores pytrees of arrays (e.g. a `flax.struct.dataclass` TrainState)."""

    def __init__(self, directory: str | os.PathLike[str], *, max_to_keep: int = 3):
        path = epath.Path(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            # save() returns once the checkpoint is complete and renamed into place.
            enable_async_checkpointing=False,
            # Remove `<step>.orbax-checkpoint-tmp` folders left behind by a killed writer.
            cleanup_tmp_directories=True,
        )
        # TensorStore needs an absolute path.
        self._manager = ocp.CheckpointManager(
            path if path.is_absolute() else path.absolute(), options=options
        )

    @property
    def directory(self) -> epath.Path:
        return self._manager.directory

    def save(self, step: int, state: Any) -> None:
        """Writes `state` as the checkpoint of `step`; returns once it is complete on disk.

        Checkpoints of `step` or later are deleted first: they belong to a history this run has
        gone back on (it resumed from an older step, e.g. because they were unreadable), and
        Orbax would otherwise skip saving any step not newer than all existing ones.
        """
        for stale in sorted(s for s in self._manager.all_steps() if s >= step):
            logging.warning(
                'Deleting the checkpoint of step %d in %s: superseded by step %d.',
                stale,
                self.directory,
                step,
            )
            self._manager.delete(stale)
        # force=True: the caller decides when to save; Orbax's interval policy does not apply.
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

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
          Exception: the newest checkpoint's error when none can be read (e.g. `target` does
            not match what was saved), rather than a silent start from scratch.
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
        return self._manager.restore(step, args=ocp.args.StandardRestore(target))

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
