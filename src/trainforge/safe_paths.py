"""Run names that are names, and deletions that stay inside the directory that owns them (standard library only).

A ``run_name`` becomes a directory name (``runs/<run_name>``, ``exports/<run_name>``), so it must be one safe path
component wherever it comes from: a config, the command line, a sweep, or a checkpoint written by someone else.
Every file the engine removes or replaces goes through ``inside`` first, so a hostile name or a symlink cannot
make it delete anything outside the directory it owns.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from trainforge.errors import TrainforgeError

__all__ = ["MAX_NAME_LENGTH", "NAME_RULE", "UnsafePathError", "inside", "is_safe_name", "name_problem", "safe_name"]

MAX_NAME_LENGTH = 100
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
NAME_RULE = f"letters, digits, '.', '_' and '-' only, at most {MAX_NAME_LENGTH} characters, not '.' or '..'"


class UnsafePathError(TrainforgeError):
    """A path the engine was about to write or delete lies outside the directory that owns it."""


def name_problem(value: object) -> str | None:
    """What makes ``value`` unusable as a run name (one path component), or None when it is fine."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__qualname__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"is {len(value)} characters long (at most {MAX_NAME_LENGTH})"
    if value in (".", ".."):
        return "must not be '.' or '..' (they name the current or the parent directory)"
    if not _NAME.match(value):
        bad = sorted({c for c in value if not re.match(r"[A-Za-z0-9._-]", c)})
        return f"may hold only {NAME_RULE}; it contains {''.join(bad)!r}"
    return None


def is_safe_name(value: object) -> bool:
    return name_problem(value) is None


def safe_name(value: object, fallback: str) -> str:
    """``value`` when it is a safe name, else ``fallback`` (callers tell the user which one they used)."""
    return value if isinstance(value, str) and is_safe_name(value) else fallback


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path``, proven to lie strictly inside ``root`` once symlinks and ``..`` are resolved.

    Raises:
        UnsafePathError: ``path`` is ``root`` itself or resolves outside it.
    """
    base = Path(root).resolve()
    target = Path(path)
    # The parent is resolved (a symlinked directory counts where it points); the last component is kept as it is,
    # so removing a symlink removes the link, never what it points to.
    resolved = target.parent.resolve() / target.name
    if target.name in ("", ".", "..") or not resolved.is_relative_to(base) or resolved == base:
        raise UnsafePathError(
            f"Refused to write or delete {str(path)!r}: it is not inside {str(base)!r}, the directory this run owns. "
            "Fix: use a run_name that is one plain name (" + NAME_RULE + ") and paths without '..'."
        )
    return resolved
