"""Where checkpoints go and which one is newest.

Names are predictable: ``epoch_N.pt`` (state after N completed epochs, 1-based), ``step_XXXXXXXX.pt``
(mid-epoch, by optimizer step) and ``best.pt``. Rotation (``keep_last_n``) only ever removes periodic files.
"""

from __future__ import annotations

import re
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from pathlib import Path
from typing import Any

import torch

from trainforge.checkpoint.io import commit_temporary, save_temporary
from trainforge.errors import CheckpointError

_EPOCH = re.compile(r"^epoch_(\d+)\.pt$")
_STEP = re.compile(r"^step_(\d+)\.pt$")
BEST = "best.pt"


def epoch_path(directory: str | Path, epoch: int) -> Path:
    return Path(directory) / f"epoch_{epoch}.pt"


def step_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step_{step:08d}.pt"


def is_checkpoint_name(name: str) -> bool:
    return bool(_EPOCH.match(name) or _STEP.match(name) or name == BEST)


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Every trainforge checkpoint file in ``directory`` (sorted by name)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and is_checkpoint_name(p.name))


def _progress(path: Path) -> tuple[int, int, int]:
    """(global_step, completed epochs, epoch-end flag) read from the file; memory-mapped, so cheap."""
    raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    state = raw.get("state", {}) if isinstance(raw, dict) else {}
    return int(state.get("global_step", -1)), int(state.get("epoch", -1)), int(state.get("batches_in_epoch", 0) == 0)


def _progress_or_unknown(path: Path) -> tuple[int, int, int]:
    try:
        return _progress(path)
    except Exception:  # unreadable: ranks first, so rotation removes it before any good file
        return (-1, -1, 0)


def ranked_checkpoints(directory: str | Path) -> list[Path]:
    """Periodic checkpoints (not ``best.pt``), most progress first; unreadable files are skipped with a warning."""
    ranked: list[tuple[tuple[int, int, int], Path]] = []
    for path in list_checkpoints(directory):
        if path.name == BEST:
            continue
        try:
            key = _progress(path)
        except Exception as exc:  # a corrupt file must not stop the search for a good one
            warnings.warn(f"Skipping unreadable checkpoint {str(path)!r}: {exc}", stacklevel=2)
            continue
        ranked.append((key, path))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [path for _, path in ranked]


def find_latest(directory: str | Path) -> Path | None:
    """The checkpoint with the most progress; unreadable files are skipped with a warning."""
    ranked = ranked_checkpoints(directory)
    return ranked[0] if ranked else None


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete ``.<checkpoint name>.*.tmp`` files a killed writer left behind (never a finished checkpoint)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    stale = [p for p in d.glob(".*.tmp") if p.is_file() and is_checkpoint_name(p.name[1:].split(".pt.", 1)[0] + ".pt")]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


class CheckpointManager:
    """Writes checkpoint files atomically and rotates periodic ones.

    ``save`` writes the bytes on the caller's thread; with ``async_commit`` (the default) the commit (fsync, rename,
    fsync of the directory, then rotation) runs on one background thread, in the order of the saves, so the
    training thread does not wait for the disk. ``wait()`` blocks until every commit is done and reports failed
    ones; a failure nobody waited for is reported by the next ``save``. ``async_commit=False`` commits inside
    ``save``. Call ``save``, ``wait`` and ``close`` from one thread (the training loop's).

    At most ``max_queued_commits`` commits wait at a time: when checkpoints come faster than the disk takes them,
    ``save`` waits for the oldest, instead of piling up temporary files until the disk is full.
    """

    def __init__(self, directory: str | Path, keep_last_n: int | None = None, *, async_commit: bool = True,
                 max_queued_commits: int = 2) -> None:
        self.directory = Path(directory)
        self.keep_last_n = keep_last_n
        self.async_commit = async_commit
        self.max_queued_commits = max(1, max_queued_commits)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[tuple[Path, Future[Path]]] = []  # commits not reported yet, in the order of the saves
        remove_stale_temporaries(self.directory)  # leftovers of a writer killed before its commit (see save)

    def save(self, payload: dict[str, Any], path: Path) -> Future[Path]:
        """Write ``payload`` to ``path`` atomically; returns a handle whose ``result()`` is ``path`` once committed.

        Returns when the bytes are in a temporary file next to ``path`` (``payload`` may change from then on); the
        file is under ``path``, complete and durable, once its commit is done (``wait()``, or the handle). A crash
        before that leaves the previous file and a temporary that the next ``CheckpointManager`` removes.

        Raises:
            CheckpointError: the bytes could not be written (nothing changed), the commit failed (only with
                ``async_commit=False``), or an earlier commit failed and was not reported yet (then nothing was
                written for this call; ``check()`` first to report earlier failures without losing this save).
        """
        self.check()
        path = Path(path)
        try:
            tmp = save_temporary(payload, path)
        except (OSError, RuntimeError) as exc:  # torch's C++ file writer reports open/write failures as RuntimeError
            raise CheckpointError(_failure(path, exc)) from exc
        if not self.async_commit:
            done: Future[Path] = Future()
            done.set_result(self._commit(tmp, path))
            return done
        handle = self._commit_thread().submit(self._commit, tmp, path)
        self._pending.append((path, handle))
        self._throttle()
        return handle

    def check(self) -> None:
        """Raise ``CheckpointError`` for commits that failed and were not reported yet, without waiting."""
        finished: list[tuple[Path, Future[Path]]] = []
        running: list[tuple[Path, Future[Path]]] = []
        for item in self._pending:
            (finished if item[1].done() else running).append(item)
        self._pending = running
        _raise_failures(finished)

    def wait(self) -> None:
        """Block until every queued commit is done; raise ``CheckpointError`` if any failed (each reported once)."""
        wait_all([handle for _, handle in self._pending])
        finished, self._pending = self._pending, []
        _raise_failures(finished)

    def close(self) -> None:
        """``wait()``, then stop the commit thread (the next ``save`` starts it again). Calling it twice is fine."""
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def _throttle(self) -> None:
        # Waits without raising: a failure among the oldest is reported by the next check, wait or save, so this
        # save (already queued) is never dropped because an earlier one failed.
        running = [handle for _, handle in self._pending if not handle.done()]
        if len(running) > self.max_queued_commits:
            wait_all(running[: len(running) - self.max_queued_commits])  # the oldest: commits finish in order

    def _commit_thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            # One worker: commits land in the order of the saves (an older file never replaces a newer one of the
            # same name, e.g. best.pt) and rotation sees the files in training order.
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainforge-ckpt")
        return self._executor

    def _commit(self, tmp: Path, path: Path) -> Path:
        """Make the bytes durable and put them under ``path``, then drop the oldest periodic files."""
        try:
            commit_temporary(tmp, path)  # removes the temporary if it fails
        except OSError as exc:
            raise CheckpointError(_failure(path, exc, committing=True)) from exc
        try:
            self._rotate()
        except OSError as exc:
            raise CheckpointError(f"Checkpoint {str(path)!r} was written, but removing older ones (keep_last_n="
                                  f"{self.keep_last_n}) failed: {exc}. Fix: check the permissions of "
                                  "checkpoint_dir, or delete old checkpoints by hand.") from exc
        return path

    def _rotate(self) -> None:
        if not self.keep_last_n:
            return
        periodic = [p for p in list_checkpoints(self.directory) if p.name != BEST]

        # Files are written in training order, so modification time ranks them by progress. Timestamps are coarse
        # (a clock tick is milliseconds), so files written within one tick are ranked by the progress they hold,
        # not by name order (where "epoch_10.pt" sorts before "epoch_9.pt").
        ranked = sorted(periodic, key=lambda p: (p.stat().st_mtime_ns, _progress_or_unknown(p)))
        for old in ranked[: max(len(ranked) - self.keep_last_n, 0)]:
            old.unlink(missing_ok=True)


def _failure(path: Path, exc: BaseException, committing: bool = False) -> str:
    where = " (while making it durable and renaming it into place, on the commit thread)" if committing else ""
    return (f"Could not write checkpoint {str(path)!r}: {exc}{where}. The previous checkpoint files are intact. "
            "Fix: free disk space or choose a writable checkpoint_dir.")


def _raise_failures(finished: list[tuple[Path, Future[Path]]]) -> None:
    """One ``CheckpointError`` for the failed commits among ``finished`` (the first in full, the others named)."""
    failed = [(path, exc) for path, handle in finished if (exc := handle.exception()) is not None]
    if not failed:
        return
    path, first = failed[0]
    error = first if isinstance(first, CheckpointError) else CheckpointError(
        f"Could not write checkpoint {str(path)!r}: {type(first).__name__}: {first} (on the commit thread). The "
        "previous checkpoint files are intact. Fix: check checkpoint_dir (disk space, permissions).")
    if len(failed) > 1:
        later = ", ".join(repr(str(p)) for p, _ in failed[1:])
        error = CheckpointError(f"{error} Later checkpoints failed too: {later}.")
    if error is first:
        raise error
    raise error from first
