"""Atomic file writes (standard library only): the path holds either the old file or the whole new one.

Checkpoints, run records, metrics files and export manifests all go through ``atomic_write``: the bytes go to a
temporary file in the same directory, are fsynced and renamed over the target, and the rename is fsynced too.
A crash at any point leaves no half-written file under the final name; a failure removes the temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *, binary: bool = True,
                 mode: int | None = None) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it into place atomically.

    ``mode`` sets the permission bits (``mkstemp`` creates files readable by the owner only).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int | None = None) -> Path:
    """Write a text file atomically (run records, metrics files, manifests)."""
    return atomic_write(path, lambda f: f.write(text), binary=False, mode=mode)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform allows opening a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
