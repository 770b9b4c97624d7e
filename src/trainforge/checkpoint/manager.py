"""Where checkpoints go and which one is newest.

Names are predictable: ``epoch_N.pt`` (state after N completed epochs, 1-based), ``step_XXXXXXXX.pt``
(mid-epoch, by optimizer step) and ``best.pt``. Rotation (``keep_last_n``) only ever removes periodic files, the
ones with the least training progress (stored in the file and in ``index.json``), never by modification time.
What is written when is ``saver.CheckpointSaver``'s decision; this module writes and commits.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from pathlib import Path
from typing import Any

import torch

from trainforge.checkpoint.io import commit_temporary, save_temporary
from trainforge.errors import CheckpointError
from trainforge.safe_paths import inside

_EPOCH = re.compile(r"^epoch_(\d+)\.pt$")
_STEP = re.compile(r"^step_(\d+)\.pt$")
BEST = "best.pt"
# The sidecar index: each committed file's progress, so rotation and ``auto`` rank files without reading them.
INDEX = "index.json"
# Tests only: the name of a crash point (see ``crash_point``) at which the process kills itself.
CRASH_ENV = "TRAINFORGE_TEST_CRASH_AT"

Progress = tuple[int, int, int]  # (global_step, completed epochs, 1 at an epoch end else 0)
UNKNOWN: Progress = (-1, -1, 0)


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


def crash_point(name: str) -> None:
    """Tests only: SIGKILL this process at a named point of the commit protocol.

    ``TRAINFORGE_TEST_CRASH_AT`` is ``<point>`` or ``<point>#<n>`` (the n-th time it is reached), e.g.
    ``commit:best.pt#2``; ``trace:<file>`` appends every point reached to ``file`` instead. Unset: one dict lookup.
    """
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    _crash_counts[name] = seen = _crash_counts.get(name, 0) + 1
    if wanted.startswith("trace:"):
        with open(wanted[len("trace:"):], "a", encoding="utf-8") as trace:
            trace.write(f"{name}#{seen}\n")
    elif wanted in (name, f"{name}#{seen}"):
        os.kill(os.getpid(), signal.SIGKILL)


_crash_counts: dict[str, int] = {}


def progress_of(state: Any) -> Progress:
    """The progress a checkpoint of ``state`` (a TrainState or its dict) records."""
    get = state.get if isinstance(state, dict) else lambda k, d=None: getattr(state, k, d)
    return int(get("global_step", -1)), int(get("epoch", -1)), int(get("batches_in_epoch", 0) == 0)


def read_progress(path: Path) -> Progress:
    """The progress stored in the file itself (memory-mapped load: tensors are not read)."""
    raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return progress_of(raw.get("state", {}) if isinstance(raw, dict) else {})


class ProgressIndex:
    """``index.json``: name -> progress, size and mtime of each committed checkpoint, and the run's id.

    An entry counts only while the file's size and mtime match it; any other file (written before the index
    existed, copied in, edited by hand, or committed by a run killed before it updated the index) is read once.
    The index is an optimisation, never the truth: losing it costs reads, not correctness, so it is replaced
    atomically but without fsync.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / INDEX
        self.run_id: str | None = None
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self.path.read_text())
            self.run_id = data.get("run_id") if isinstance(data.get("run_id"), str) else None
            self.entries = {k: v for k, v in data.get("files", {}).items() if isinstance(v, dict)}
        except (OSError, ValueError, AttributeError):
            pass

    def progress(self, path: Path) -> Progress | None:
        """The progress of ``path`` (from the index, else read from the file); None when it is unreadable."""
        try:
            st = path.stat()
        except OSError:
            return None
        entry = self.entries.get(path.name)
        if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            return tuple(entry["progress"])  # type: ignore[return-value]
        try:
            found = read_progress(path)
        except Exception:  # a corrupt file must not stop the search for a good one
            return None
        self.entries[path.name] = {"progress": list(found), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        return found

    def record(self, path: Path, progress: Progress) -> None:
        st = path.stat()
        self.entries[path.name] = {"progress": list(progress), "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def save(self) -> None:
        present = {p.name for p in list_checkpoints(self.path.parent)}
        self.entries = {k: v for k, v in self.entries.items() if k in present}
        tmp = self.path.with_name(f".{INDEX}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"run_id": self.run_id, "files": self.entries}))
        os.replace(tmp, self.path)


def ranked_checkpoints(directory: str | Path, *, include_best: bool = False) -> list[Path]:
    """Checkpoints, most training progress first (``best.pt`` only with ``include_best``; on equal progress a
    periodic file comes first). Unreadable files are skipped with a warning."""
    index = ProgressIndex(Path(directory))
    ranked: list[tuple[tuple[int, int, int, int], Path]] = []
    for path in list_checkpoints(directory):
        if path.name == BEST and not include_best:
            continue
        key = index.progress(path)
        if key is None:
            warnings.warn(f"Skipping unreadable checkpoint {str(path)!r}.", stacklevel=2)
            continue
        ranked.append(((*key, int(path.name != BEST)), path))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [path for _, path in ranked]


def find_latest(directory: str | Path, *, include_best: bool = False) -> Path | None:
    """The checkpoint with the most progress; unreadable files are skipped with a warning."""
    ranked = ranked_checkpoints(directory, include_best=include_best)
    return ranked[0] if ranked else None


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete ``.<checkpoint name>.*.tmp`` files a killed writer left behind (never a finished checkpoint)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    stale = [p for p in d.glob(".*.tmp") if p.is_file() and (is_checkpoint_name(p.name[1:].split(".pt.", 1)[0] + ".pt")
                                                             or p.name.startswith(f".{INDEX}."))]
    for p in stale:
        inside(d, p).unlink(missing_ok=True)
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
        self.index = ProgressIndex(self.directory)  # used by the commit thread only once saves begin

    def save(self, payload: dict[str, Any], path: Path | list[Path], progress: Progress | None = None) -> Future[Path]:
        """Write ``payload`` to ``path`` atomically; returns a handle whose ``result()`` is ``path`` once committed.

        ``path`` may be several names for the same bytes (``[best.pt, epoch_N.pt]``): they are serialized once and
        committed one after the other, in the order given (a hard link of the one temporary, else a copy).
        ``progress`` (default: read from ``payload["state"]``) goes into the index that rotation ranks by.

        Returns when the bytes are in a temporary file next to ``path`` (``payload`` may change from then on); the
        file is under ``path``, complete and durable, once its commit is done (``wait()``, or the handle). A crash
        before that leaves the previous file and a temporary that the next ``CheckpointManager`` removes.

        Raises:
            CheckpointError: the bytes could not be written (nothing changed), the commit failed (only with
                ``async_commit=False``), or an earlier commit failed and was not reported yet (then nothing was
                written for this call; ``check()`` first to report earlier failures without losing this save).
        """
        self.check()
        paths = [Path(p) for p in path] if isinstance(path, list) else [Path(path)]
        for p in paths:
            inside(self.directory, p)  # a checkpoint is only ever written in its own directory
        progress = progress if progress is not None else progress_of(payload.get("state", {}))
        try:
            tmp = save_temporary(payload, paths[-1])
        except (OSError, RuntimeError) as exc:  # torch's C++ file writer reports open/write failures as RuntimeError
            raise CheckpointError(_failure(paths[-1], exc)) from exc
        crash_point(f"bytes:{paths[-1].name}")
        if not self.async_commit:
            done: Future[Path] = Future()
            done.set_result(self._commit(tmp, paths, progress))
            return done
        handle = self._commit_thread().submit(self._commit, tmp, paths, progress)
        self._pending.append((paths[-1], handle))
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

    def _commit(self, tmp: Path, paths: list[Path], progress: Progress) -> Path:
        """Make the bytes durable and put them under each of ``paths`` in order, then drop the least advanced
        periodic files. Each name is its own atomic rename, so the caller orders them (``saver`` puts best.pt
        first: a crash between the two leaves best.pt newer, never staler, than the epoch file)."""
        try:
            for i, path in enumerate(paths):
                source = tmp if i == len(paths) - 1 else _duplicate(tmp)
                crash_point(f"commit:{path.name}")
                commit_temporary(source, path)  # removes the temporary if it fails
                crash_point(f"committed:{path.name}")
        except OSError as exc:
            raise CheckpointError(_failure(path, exc, committing=True)) from exc
        finally:
            tmp.unlink(missing_ok=True)  # only left when an earlier name failed
        try:
            for path in paths:
                self.index.record(path, progress)
            self._rotate()
            self.index.save()
            crash_point(f"indexed:{paths[-1].name}")
        except OSError as exc:
            raise CheckpointError(f"Checkpoint {str(paths[-1])!r} was written, but removing older ones (keep_last_n="
                                  f"{self.keep_last_n}) failed: {exc}. Fix: check the permissions of "
                                  "checkpoint_dir, or delete old checkpoints by hand.") from exc
        return paths[-1]

    def _rotate(self) -> None:
        """Keep the ``keep_last_n`` periodic files with the most training progress (by the progress they store,
        never by modification time: a copied or restored file may carry any date). The most advanced file, the
        one ``resume_from='auto'`` picks, is always among them; unreadable files go first."""
        if not self.keep_last_n:
            return
        periodic = [p for p in list_checkpoints(self.directory) if p.name != BEST]
        ranked = sorted(periodic, key=lambda p: (self.index.progress(p) or UNKNOWN, p.name), reverse=True)
        for old in ranked[self.keep_last_n:]:
            crash_point(f"rotate:{old.name}")
            inside(self.directory, old).unlink(missing_ok=True)


def _duplicate(tmp: Path) -> Path:
    """A second temporary holding the same bytes: a hard link (no copy), else a copy where links are not allowed."""
    twin = tmp.with_name(f".{tmp.name.lstrip('.').split('.pt.', 1)[0]}.pt.{secrets.token_hex(8)}.tmp")
    try:
        os.link(tmp, twin)
    except OSError:
        shutil.copyfile(tmp, twin)
    return twin


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
