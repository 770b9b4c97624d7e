"""``CheckpointSaver``: what is written when, the commit protocol, rotation and which file a run resumes from.

The protocol, so that the files agree after a crash at any instant:

* An epoch end writes its state once and commits it under every name it is due for, ``best.pt`` FIRST, then
  ``epoch_N.pt``. A crash between the two renames leaves best.pt *newer* than the newest epoch file (never staler
  than the best epoch that file records), and ``best.pt`` is then the most advanced full-state checkpoint, which
  ``resume_from="auto"`` picks (it ranks best.pt with the others by the progress stored in the file).
* Commits run in the order of the saves on one background thread (``CheckpointManager``), so a step file of the
  next epoch is never on disk before the epoch end's files.
* Rotation (``keep_last_n``) ranks periodic files by the training progress they store (kept in ``index.json`` so no
  file is loaded for it) and keeps the most advanced ones: never by modification time, and never the file ``auto``
  resumes from.

The saver does not decide whether an epoch is the best: the caller passes ``is_best``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainforge.checkpoint.manager import (
    BEST,
    CheckpointManager,
    epoch_path,
    progress_of,
    step_path,
)
from trainforge.errors import CheckpointError

__all__ = ["CheckpointSaver", "due_names"]


def due_names(epoch: int, *, is_best: bool, final: bool, checkpoint_frequency: int, save_best: bool) -> list[str]:
    """The files an epoch end writes, in commit order (best.pt first; see the module docstring)."""
    names = [BEST] if is_best and save_best else []
    if epoch % checkpoint_frequency == 0 or final:
        names.append(epoch_path("", epoch).name)
    return names


class CheckpointSaver:
    """Writes a run's checkpoints into ``directory`` (None: writes nothing).

    Args:
        build: ``build(state, kind)`` returns the checkpoint dict, or None on a process that does not write (it is
            called on every process: gathering a sharded model is collective).
        on_saved: called with ``(state, path)`` once a file is saved (complete under its name when ``wait_each``).
        wait_each: wait for each commit before ``on_saved`` (someone observes CHECKPOINT_SAVED).
        on_error: ``"warn"``: a failed write is recorded in ``errors`` and warned about, training goes on;
            ``"stop"``: it is raised.
        barrier: called after every save (distributed runs wait for rank 0's write).
        run_id: the run's identity, recorded in the directory's index next to each file's progress.
    """

    def __init__(self, directory: str | Path | None, *, build: Callable[[Any, str], dict[str, Any] | None],
                 checkpoint_frequency: int = 1, keep_last_n: int | None = None, save_best: bool = True,
                 on_saved: Callable[[Any, Path], None] | None = None, wait_each: bool = False,
                 on_error: str = "warn", barrier: Callable[[], None] = lambda: None,
                 async_commit: bool = True, run_id: str | None = None) -> None:
        self.directory = Path(directory) if directory else None
        self.manager = CheckpointManager(self.directory, keep_last_n, async_commit=async_commit) \
            if self.directory is not None else None
        if self.manager is not None:
            self.manager.index.run_id = run_id  # the directory's owner, checked by the next fresh run
        self.build, self.on_saved, self.wait_each = build, on_saved, wait_each
        self.checkpoint_frequency, self.save_best = checkpoint_frequency, save_best
        self.on_error, self.barrier = on_error, barrier
        self.errors: list[str] = []

    # ------------------------------------------------------------ the loop's calls
    def epoch_end(self, state: Any, *, is_best: bool, final: bool) -> None:
        """After epoch ``state.epoch``: the epoch file (every ``checkpoint_frequency`` epochs and the last one) and
        ``best.pt`` (when ``is_best``), one serialization, committed best.pt first."""
        names = due_names(state.epoch, is_best=is_best, final=final,
                          checkpoint_frequency=self.checkpoint_frequency, save_best=self.save_best)
        if names:
            self._save(state, "epoch", names)

    def step(self, state: Any, *, is_best: bool = False, periodic: bool = True) -> None:
        """A mid-epoch checkpoint (``checkpoint_every_n_steps``, an interruption, a stop before the epoch's end):
        ``step_N.pt`` when ``periodic``, and ``best.pt`` (first) when ``is_best`` (a mid-epoch validation with
        ``eval_every_n_steps`` was the best so far), one serialization of the mid-epoch state."""
        names = ([BEST] if is_best and self.save_best else []) + ([step_path("", state.global_step).name]
                                                                   if periodic else [])
        if names:
            self._save(state, "step", names)

    def flush(self) -> None:
        """Wait for every queued commit (before FIT_END: the run's files are all in place when it ends)."""
        if self.manager is not None:
            self._report(self.manager.wait)

    def close(self) -> None:
        """Wait for the commits and stop the commit thread."""
        if self.manager is not None:
            self.manager.close()

    def abort(self) -> None:
        """The run is ending with an exception: its queued checkpoints reach the disk before the exception leaves
        ``train`` (the process may exit right after). A failed commit is recorded and warned about, never raised
        over the run's own exception."""
        if self.manager is None:
            return
        try:
            self.manager.close()
        except CheckpointError as exc:
            self.errors.append(str(exc))
            with contextlib.suppress(Warning):  # warnings turned into errors must not replace the run's exception
                warnings.warn(str(exc), stacklevel=3)

    # ------------------------------------------------------------ internals
    def _save(self, state: Any, kind: str, names: list[str]) -> None:
        if self.manager is None:
            return
        payload = self.build(state, kind)
        if payload is not None:
            manager = self.manager
            paths = [manager.directory / name for name in names]

            def write() -> None:
                manager.save(payload, paths, progress_of(state))  # fsync and renames go on on the commit thread
                if self.wait_each:  # CHECKPOINT_SAVED promises the file is complete under its final name
                    manager.wait()

            self._report(manager.check)  # an earlier commit that failed on the commit thread; this save goes on
            if self._report(write) and self.on_saved is not None:
                for path in paths:
                    self.on_saved(state, path)
        self.barrier()

    def _report(self, call: Callable[[], object]) -> bool:
        """Run a checkpoint call; its CheckpointError is recorded and warned about, or stops the run."""
        try:
            call()
        except CheckpointError as exc:  # training goes on; the user hears about it and in results
            self.errors.append(str(exc))
            if self.on_error == "stop":
                raise CheckpointError(f"{exc} Training stopped (on_checkpoint_error='stop'); resume with "
                                      "resume_from='auto' once the disk is fixed.") from exc
            warnings.warn(str(exc), stacklevel=4)
            return False
        return True
