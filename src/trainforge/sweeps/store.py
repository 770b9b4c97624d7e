"""The sweep's SQLite file (``<sweep dir>/sweep.db``): trials are ``sweep-trial`` jobs of a :class:`JobQueue`,
plus a ``sweep_meta`` table holding the validated sweep, so a rerun of the same command resumes it.

Trials are queued lazily: the coordinator keeps a few trials queued ahead of its workers (:meth:`SweepStore.fill`)
and records how far it got, so a sweep of any ``n_trials`` starts at once and its database grows only with the
trials that ran. Trial numbers come from the ``trial_numbers`` table (one row per number, the primary key), taken
in a write transaction: the sweep's own trials and trials submitted with ``trainforge jobs submit sweep-trial``
draw from the same sequence, so no two trials ever share a number, a directory or a run name.

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
from trainforge.sweeps.space import params_of_trial
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
            db.execute("CREATE TABLE IF NOT EXISTS trial_numbers (number INTEGER PRIMARY KEY, sweep_index INTEGER "
                       "UNIQUE, origin TEXT NOT NULL, created_at REAL NOT NULL)")

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
        changed = sorted(k for k in new if old is not None and old.get(k) != new.get(k))  # a key added later: None
        if changed:
            raise ConfigError([f"sweep: {self.directory} holds a sweep with different {', '.join(changed)}; the "
                               "file changed since it started. Fix: give the sweep a new name (name: or --dir) to "
                               "start another, or delete the directory to start over."], what="sweep")
        self._set_meta("fingerprint", new)
        self._set_meta("spec", spec.to_dict())
        return old is not None  # trials are queued by fill() as workers need them (Ray schedules its own)

    def allocate_number(self, origin: str = "submitted", sweep_index: int | None = None) -> int:
        """A trial number no other trial of this sweep has or will have: the next free one, recorded in one
        ``BEGIN IMMEDIATE`` transaction (so concurrent callers, in any process, get distinct numbers). With
        ``sweep_index`` (the sweep's own trial ``i``) the number given before for that index is returned again."""
        import time

        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = None
                if sweep_index is not None:
                    row = db.execute("SELECT number FROM trial_numbers WHERE sweep_index = ?",
                                     (sweep_index,)).fetchone()
                if row is None:
                    (number,) = db.execute("SELECT COALESCE(MAX(number) + 1, 0) FROM trial_numbers").fetchone()
                    db.execute("INSERT INTO trial_numbers (number, sweep_index, origin, created_at) VALUES (?, ?, ?, ?)",
                               (number, sweep_index, origin, time.time()))
                else:
                    number = row[0]
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()
        return int(number)

    def queued_until(self) -> int:
        """How many of the sweep's own trials (indices 0 ..) have been queued so far."""
        return int(self._meta("queued_until") or 0)

    def fill(self, spec: SweepSpec, ahead: int) -> int:
        """Queue the sweep's next trials until ``ahead`` are waiting (or all ``n_trials`` are queued); returns how
        many were queued now. Each trial's parameters are computed from its index when it is queued."""
        start = self.queued_until()
        waiting = self.queue.counts()["queued"]
        stop = min(spec.n_trials, start + max(ahead - waiting, 0))
        payload_spec: dict[str, Any] | None = None
        for index in range(start, stop):
            payload_spec = payload_spec or spec.to_dict()
            number = self.allocate_number("sweep", sweep_index=index)
            self.queue.submit(KIND, {"sweep": payload_spec, "trial": number, "index": index,
                                     "params": params_of_trial(spec, index),
                                     "sweep_dir": str(self.directory.resolve())},
                              max_attempts=spec.max_attempts, key=f"trial-{index:05d}")
            self._set_meta("queued_until", index + 1)
        return max(stop - start, 0)

    def all_queued(self, spec: SweepSpec) -> bool:
        return self.queued_until() >= spec.n_trials

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
