"""Metrics files in the run directory. Standard library only.

* ``metrics.csv`` — one row per epoch. The header is the union of the keys seen so far (in first-seen
  order); the file is rewritten atomically each epoch, so it is always complete and readable even if
  a new key (say a task metric) appears in a later epoch.
* ``steps.jsonl`` — one JSON object per ``log_step`` call, ``{"step": N, ...metrics}``. A line reaches the OS at
  once when the previous flush is at least ``flush_interval_s`` old (1 s), otherwise with the next such line, an
  epoch row, the summary or ``close``: fast steps pay one write system call per second, not one per line.
* ``summary.json`` — the final results, written atomically by ``log_summary``.

The resolved config is written by the trainer (``config.yaml``), so ``log_config`` does nothing here.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import IO, Any

from trainforge.atomic import atomic_write_text

__all__ = ["CSVLogger", "atomic_write_text", "to_jsonable"]

METRICS_FILE = "metrics.csv"
STEPS_FILE = "steps.jsonl"
SUMMARY_FILE = "summary.json"


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` into something ``json.dumps`` accepts.

    Paths become strings, 0-d tensors / numpy scalars become Python numbers (via ``.item()``), mappings
    and sequences are converted recursively, and anything else becomes its ``str``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return to_jsonable(item())
        except (TypeError, ValueError, RuntimeError):  # not a one-element tensor/array
            pass
    return str(value)


def _epoch_of(row: dict[str, Any]) -> int | None:
    try:
        return int(row["epoch"])
    except (KeyError, TypeError, ValueError):
        return None


class CSVLogger:
    """Write ``metrics.csv``, ``steps.jsonl`` and ``summary.json`` into ``run_dir``.

    Args:
        run_dir: the run directory (created if missing).
        resume: keep the rows of an existing ``metrics.csv`` and append to ``steps.jsonl`` (a resumed
            run is the same run). Rows whose epoch is >= an epoch logged now are replaced, so epochs
            logged after the checkpoint the run resumed from do not appear twice.
        flush_interval_s: ``steps.jsonl`` lines are flushed to the OS when the last flush is at least this old
            (0: every line).
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, resume: bool = False, flush_interval_s: float = 1.0) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / METRICS_FILE
        self.steps_path = self.run_dir / STEPS_FILE
        self.summary_path = self.run_dir / SUMMARY_FILE
        self._fields: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._steps: IO[str] | None = None
        self.flush_interval_s = flush_interval_s
        self._flushed_at = -math.inf
        # A fresh run truncates steps.jsonl on first use; a resumed run (or a reopen after close) appends.
        self._steps_mode = "a" if resume else "w"
        if resume and self.metrics_path.exists():
            with self.metrics_path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self._fields = list(reader.fieldnames or [])
                self._rows = [dict(r) for r in reader]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The epoch rows written so far (a copy)."""
        return [dict(r) for r in self._rows]

    def log_config(self, config: dict[str, Any]) -> None:
        """Do nothing: the trainer saves the resolved config as ``config.yaml``."""

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Append ``{"step": step, **metrics}`` as one line of ``steps.jsonl``."""
        if self._steps is None:
            self._steps = self.steps_path.open(self._steps_mode, encoding="utf-8")
            self._steps_mode = "a"
        record = {"step": int(step), **{k: to_jsonable(v) for k, v in metrics.items()}}
        self._steps.write(json.dumps(record) + "\n")
        now = time.monotonic()
        if now - self._flushed_at >= self.flush_interval_s:
            self._flush_steps(now)

    def _flush_steps(self, now: float) -> None:
        if self._steps is not None:
            self._steps.flush()
        self._flushed_at = now

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Add one row to ``metrics.csv`` and rewrite it atomically (header = union of keys)."""
        self._flush_steps(time.monotonic())  # the epoch's step lines are on disk when its row is
        row = {k: to_jsonable(v) for k, v in row.items()}
        epoch = _epoch_of(row)
        if epoch is not None:
            # Re-logging an epoch (after a resume) replaces it and everything after it.
            self._rows = [r for r in self._rows if (e := _epoch_of(r)) is None or e < epoch]
        self._rows.append(row)
        for key in row:
            if key not in self._fields:
                self._fields.append(key)
        self._write_metrics()

    def _write_metrics(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._fields, restval="", extrasaction="ignore")
        writer.writeheader()
        for r in self._rows:
            writer.writerow({k: _csv_cell(v) for k, v in r.items()})
        atomic_write_text(self.metrics_path, buf.getvalue())

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json`` atomically."""
        self._flush_steps(time.monotonic())
        text = json.dumps(to_jsonable(summary), indent=2, sort_keys=False) + "\n"
        atomic_write_text(self.summary_path, text)

    def close(self) -> None:
        """Close ``steps.jsonl``; calling again is fine, and logging after close reopens it to append."""
        if self._steps is not None:
            self._steps.close()
            self._steps = None


def _csv_cell(value: Any) -> Any:
    # repr() of a float round-trips exactly; lists/dicts go in as JSON so the cell can be parsed back.
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value
