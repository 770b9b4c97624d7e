"""The sweep's SQLite file (``<sweep dir>/sweep.db``): trials are ``sweep-trial`` jobs of a :class:`JobQueue`,
plus a ``sweep_meta`` table holding the validated sweep, so a rerun of the same command resumes it.

A trial's record is its job row: params (payload, or progress for optuna), status, per-epoch metrics
(progress ``history``, updated each epoch), final metric and run dir (result), error, attempts and timings.
With ``method: optuna`` Optuna's own tables live in the same file.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainforge.errors import ConfigError
from trainforge.jobs.queue import Job, JobQueue
from trainforge.sweeps.space import trial_params
from trainforge.sweeps.spec import SweepSpec

KIND = "sweep-trial"


@dataclass
class TrialRecord:
    """One trial as the results table shows it."""

    number: int
    status: str  # queued | running | completed | pruned | failed | cancelled
    params: dict[str, Any]
    value: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    run_dir: str | None = None
    best_epoch: int | None = None


class SweepStore:
    """Open (or create) the sweep database in ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "sweep.db"
        self.queue = JobQueue(self.path)
        with sqlite3.connect(self.path, timeout=60) as db:
            db.execute("CREATE TABLE IF NOT EXISTS sweep_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _meta(self, key: str) -> Any:
        with sqlite3.connect(self.path, timeout=60) as db:
            row = db.execute("SELECT value FROM sweep_meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        with sqlite3.connect(self.path, timeout=60) as db:
            db.execute("INSERT OR REPLACE INTO sweep_meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def spec(self) -> SweepSpec | None:
        data = self._meta("spec")
        return SweepSpec.from_dict(data) if data else None

    def start(self, spec: SweepSpec) -> bool:
        """Record the sweep and queue its trials. Returns True when the sweep already existed (a resume).
        A resume with a different search (method, metric, parameters, base config) is refused."""
        old = self._meta("fingerprint")
        new = json.loads(json.dumps(spec.fingerprint()))
        if old is not None and old != new:
            changed = sorted(k for k in new if old.get(k) != new.get(k))
            raise ConfigError([f"sweep: {self.directory} holds a sweep with different {', '.join(changed)}; the "
                               "file changed since it started. Fix: give the sweep a new name (name: or --dir) to "
                               "start another, or delete the directory to start over."], what="sweep")
        self._set_meta("fingerprint", new)
        self._set_meta("spec", spec.to_dict())
        if spec.backend != "local":
            return old is not None  # Ray Tune schedules its own trials; they are recorded when they end
        payload_spec = spec.to_dict()
        for number, params in enumerate(trial_params(spec)):
            self.queue.submit(KIND, {"sweep": payload_spec, "trial": number, "params": params,
                                     "sweep_dir": str(self.directory.resolve())},
                              max_attempts=spec.max_attempts, key=f"trial-{number:05d}")
        return old is not None

    def jobs(self) -> list[Job]:
        return self.queue.list(kind=KIND)

    def trials(self) -> list[TrialRecord]:
        return [record_of(job) for job in self.jobs()]


def record_of(job: Job) -> TrialRecord:
    result = job.result or {}
    progress = job.progress or {}
    params = job.payload.get("params") or result.get("params") or progress.get("params") or {}
    status = {"done": "completed"}.get(job.status, job.status)
    if status == "completed" and result.get("pruned"):
        status = "pruned"
    return TrialRecord(
        number=int(job.payload.get("trial", job.id)), status=status, params=params, value=result.get("value"),
        history=result.get("history") or progress.get("history") or [], error=job.error, attempts=job.attempts,
        started_at=job.started_at, finished_at=job.finished_at, duration_s=job.duration_s,
        run_dir=result.get("run_dir") or progress.get("run_dir"), best_epoch=result.get("best_epoch"),
    )
