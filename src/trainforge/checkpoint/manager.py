"""Where checkpoints go and which one is newest.

Names are predictable: ``epoch_N.pt`` (state after N completed epochs, 1-based), ``step_XXXXXXXX.pt``
(mid-epoch, by optimizer step) and ``best.pt``. Rotation (``keep_last_n``) only ever removes periodic files.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from trainforge.checkpoint.io import atomic_save
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
    """Writes checkpoint files atomically and rotates periodic ones."""

    def __init__(self, directory: str | Path, keep_last_n: int | None = None) -> None:
        self.directory = Path(directory)
        self.keep_last_n = keep_last_n
        remove_stale_temporaries(self.directory)  # leftovers of a writer killed mid-save (see atomic_save)

    def save(self, payload: dict[str, Any], path: Path) -> Path:
        try:
            atomic_save(payload, path)
        except OSError as exc:
            raise CheckpointError(
                f"Could not write checkpoint {str(path)!r}: {exc}. The previous checkpoint files are intact. "
                "Fix: free disk space or choose a writable checkpoint_dir."
            ) from exc
        self._rotate()
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
