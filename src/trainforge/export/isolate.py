"""Run a writer that can kill its process in a forked child, so that the trainer (and the trained model) survive.

Why: ``torch.jit.save`` writes through PyTorch's C++ zip writer, which throws from its destructor when a write
fails (a full disk, a file-size limit): ``std::terminate`` and SIGABRT, which no ``try`` can catch. The other
writers the bundle uses (ONNX, safetensors, ``torch.save``) raise ordinary exceptions on a full disk.

How: ``os.fork`` (through ``multiprocessing``'s fork context) — the child shares the parent's memory copy-on-write,
so the object to write (a scripted module) needs no pickling, no temp file and no re-import: the cost is the fork
itself (milliseconds), not a new interpreter. A user's model class defined in a notebook or ``__main__`` works
unchanged, which a spawned interpreter could not import. The child only writes (no CUDA: exports run on a CPU
copy). If it dies by a signal, hangs past ``timeout``, or raises, the parent raises :class:`IsolatedWriteError`
with the reason, and the caller records the format as failed. Where ``fork`` is unavailable (Windows, macOS's
spawn default) the writer runs in this process, as before.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["IsolatedWriteError", "can_isolate", "run_isolated"]

DEFAULT_TIMEOUT_S = 3600.0  # only to catch a hung child (e.g. a lock held by another thread at fork time)


class IsolatedWriteError(RuntimeError):
    """The isolated writer failed: it raised, was killed by a signal, or timed out (the message says which)."""


def can_isolate() -> bool:
    """Whether writers run in a forked child here (Linux: yes)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _child(conn: Any, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
    try:
        fn(*args)
        conn.send(None)
    except BaseException as exc:  # anything the writer raises goes back to the parent as text
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _space(target: Path) -> str:
    """Where to look: the free space of the target's disk, and this process's file-size limit if it has one."""
    try:
        text = f"; free space at {target}: {shutil.disk_usage(target).free / 2**20:.1f} MiB"
    except OSError:
        text = ""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return text
    if limit != resource.RLIM_INFINITY:
        text += f"; file-size limit (ulimit -f): {limit / 2**20:.1f} MiB"
    return text


def run_isolated(fn: Callable[..., None], *args: Any, what: str, target: str | os.PathLike[str],
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Call ``fn(*args)`` in a forked child (or here, where fork is unavailable); ``fn`` writes ``target``.

    Raises:
        IsolatedWriteError: ``fn`` raised (its message), the child died by a signal (e.g. SIGABRT from the
            TorchScript writer on a full disk), or it ran past ``timeout`` seconds (it is killed).
    """
    if not can_isolate():
        fn(*args)
        return
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, fn, args), daemon=True, name=f"trainforge-{what}")
    try:
        proc.start()
    except OSError:  # no memory or processes left to fork (e.g. strict overcommit with a huge parent): write here
        receiver.close()
        sender.close()
        fn(*args)
        return
    sender.close()  # the child holds the only write end: EOF here once it exits, however it exits
    message: str | None = None
    finished = False
    try:
        if receiver.poll(timeout):
            try:
                message = receiver.recv()
                finished = True
            except EOFError:  # the child died before reporting
                pass
        else:
            proc.kill()
            proc.join()
            raise IsolatedWriteError(f"{what} did not finish within {timeout:g}s and was stopped")
    finally:
        receiver.close()
    proc.join()
    folder = Path(target).parent
    if proc.exitcode is not None and proc.exitcode < 0:
        name = signal.Signals(-proc.exitcode).name
        raise IsolatedWriteError(f"{what} crashed writing {Path(target).name} ({name}; a full or unwritable disk "
                                 f"is the usual cause{_space(folder)}). The writer ran in a child process: "
                                 "this process and the trained model are unaffected")
    if message is not None:
        raise IsolatedWriteError(message)
    if not finished or proc.exitcode != 0:
        raise IsolatedWriteError(f"{what} exited with code {proc.exitcode} before finishing{_space(folder)}")
