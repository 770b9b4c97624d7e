"""A persistent job queue in one SQLite file.

Jobs have a kind (``train``, ``sweep-trial``, ``export``), a JSON payload and a priority. Workers claim the
highest-priority queued job atomically (``BEGIN IMMEDIATE``), hold it under a lease they renew with heartbeats,
and finish it as done or failed. A job whose worker died is claimed again once its lease has run out (or at
once, by :meth:`JobQueue.release_worker`, when the dead worker's parent saw it die). Each claim is an attempt;
a job that used ``max_attempts`` attempts is failed instead of being claimed again.

Completion is accepted only from the worker that holds the job, so a job is finished exactly once even when a
slow worker loses its lease to another.

Statuses: ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled`` (and back to ``queued`` for a retry).

A row whose payload cannot be read (not JSON, not a mapping, over the size limit: a hand-edited or corrupted
database) never stops the queue: listing shows it with the reason, and :meth:`JobQueue.claim` marks it failed with
that reason and claims the next job, so workers go on.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainforge.config.io import loads_json
from trainforge.errors import ConfigError, bounded_repr

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT UNIQUE,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    worker TEXT,
    lease_until REAL,
    heartbeat_at REAL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress TEXT,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_claim_order ON jobs (status, priority DESC, id);
"""


@dataclass
class Job:
    """One row of the queue, with its JSON columns decoded."""

    id: int
    kind: str
    key: str | None
    payload: dict[str, Any]
    priority: int
    status: str
    attempts: int
    max_attempts: int
    worker: str | None
    lease_until: float | None
    heartbeat_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    malformed: str | None = None  # why the row's JSON could not be read (its payload is then {})

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def worker_id(pid: int | None = None) -> str:
    """``host:pid`` of a worker process; the queue uses it to tell whether a local worker is still alive."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class JobQueue:
    """The queue stored in ``path`` (created on first use). Safe to use from many processes at once."""

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        with self._connect() as db:
            db.executescript(_SCHEMA)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with ``BEGIN IMMEDIATE`` so claims never race."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        problems: list[str] = []

        def load(column: str) -> Any:
            text = row[column]
            if not text:
                return None
            try:
                value = loads_json(text, what=f"job {row['id']} {column}")
            except ConfigError as exc:
                problems.append(f"{column}: {exc.problems[0]}")
                return None
            if not isinstance(value, dict):
                problems.append(f"{column}: must be a JSON object, got {bounded_repr(value)}")
                return None
            return value

        payload = load("payload")
        payload_problem = problems[0] if problems else None  # the job cannot run without its payload
        progress, result = load("progress"), load("result")
        error = row["error"]
        if problems and not error:
            error = f"malformed job: {'; '.join(problems)}"
        return Job(
            id=row["id"], kind=row["kind"], key=row["key"], payload=payload or {},
            priority=row["priority"], status=row["status"], attempts=row["attempts"],
            max_attempts=row["max_attempts"], worker=row["worker"], lease_until=row["lease_until"],
            heartbeat_at=row["heartbeat_at"], created_at=row["created_at"], started_at=row["started_at"],
            finished_at=row["finished_at"], progress=progress, result=result, error=error,
            malformed=payload_problem,
        )

    # ------------------------------------------------------------------ producers
    def submit(self, kind: str, payload: dict[str, Any], *, priority: int = 0, max_attempts: int = 3,
               key: str | None = None) -> int:
        """Queue a job and return its id. With ``key``, a job already queued under that key is kept (its id is
        returned), so submitting the same work twice is harmless."""
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        with self._write() as db:
            if key is not None:
                row = db.execute("SELECT id FROM jobs WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    return int(row["id"])
            cur = db.execute(
                "INSERT INTO jobs (kind, key, payload, priority, max_attempts, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, key, json.dumps(payload), int(priority), int(max_attempts), time.time()),
            )
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job (a running one stops at its worker's next heartbeat)."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, lease_until = NULL "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (time.time(), job_id),
            )
            return cur.rowcount == 1

    # ------------------------------------------------------------------ workers
    def claim(self, worker: str, lease_s: float = 60.0, kinds: Sequence[str] | None = None) -> Job | None:
        """Atomically take the next job (highest priority, then oldest): a queued one, or a running one whose
        lease has expired (its worker died). Returns None when nothing can be claimed now."""
        now = time.time()
        kind_sql, kind_args = "", tuple[str, ...]()
        if kinds:
            kind_sql = f" AND kind IN ({', '.join('?' for _ in kinds)})"
            kind_args = tuple(kinds)
        with self._write() as db:
            self._fail_exhausted(db, now)
            while True:
                row = db.execute(
                    "SELECT * FROM jobs WHERE (status = 'queued' OR (status = 'running' AND lease_until < ?))"
                    f"{kind_sql} ORDER BY priority DESC, id LIMIT 1",
                    (now, *kind_args),
                ).fetchone()
                if row is None:
                    return None
                bad = self._job(row).malformed
                if bad is None:
                    break
                # Unreadable: running it would fail the same way on every worker. Failed, with the reason.
                db.execute("UPDATE jobs SET status = 'failed', finished_at = ?, lease_until = NULL, error = ? "
                           "WHERE id = ?", (now, f"malformed job, skipped: {bad}", row["id"]))
            db.execute(
                "UPDATE jobs SET status = 'running', worker = ?, attempts = attempts + 1, lease_until = ?, "
                "heartbeat_at = ?, started_at = ?, finished_at = NULL WHERE id = ?",
                (worker, now + lease_s, now, now, row["id"]),
            )
            job = db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return self._job(job)

    @staticmethod
    def _fail_exhausted(db: sqlite3.Connection, now: float) -> None:
        db.execute(
            "UPDATE jobs SET status = 'failed', finished_at = ?, lease_until = NULL, error = "
            "'worker ' || COALESCE(worker, '?') || ' stopped heartbeating (lease expired) on attempt ' || attempts "
            "|| ' of ' || max_attempts WHERE status = 'running' AND lease_until < ? AND attempts >= max_attempts",
            (now, now),
        )

    def heartbeat(self, job_id: int, worker: str, lease_s: float = 60.0) -> bool:
        """Extend the lease. False when the job is no longer this worker's (cancelled, or claimed by another)."""
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET lease_until = ?, heartbeat_at = ? WHERE id = ? AND worker = ? AND status = 'running'",
                (now + lease_s, now, job_id, worker),
            )
            return cur.rowcount == 1

    def set_progress(self, job_id: int, worker: str, progress: dict[str, Any]) -> bool:
        """Store a running job's progress (e.g. per-epoch metrics); False when the job is no longer held."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET progress = ? WHERE id = ? AND worker = ? AND status = 'running'",
                (json.dumps(progress), job_id, worker),
            )
            return cur.rowcount == 1

    def complete(self, job_id: int, worker: str, result: dict[str, Any] | None = None) -> bool:
        """Mark the job done with its result. Only its current worker may; False otherwise (result dropped)."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'done', result = ?, error = NULL, finished_at = ?, lease_until = NULL "
                "WHERE id = ? AND worker = ? AND status = 'running'",
                (json.dumps(result) if result is not None else None, time.time(), job_id, worker),
            )
            return cur.rowcount == 1

    def fail(self, job_id: int, worker: str, error: str, *, retry: bool = True,
             result: dict[str, Any] | None = None) -> str | None:
        """Record a failed attempt: queued again when ``retry`` and attempts remain, else failed.
        Returns the new status, or None when the job is no longer this worker's."""
        with self._write() as db:
            row = db.execute("SELECT attempts, max_attempts FROM jobs WHERE id = ? AND worker = ? AND status = "
                             "'running'", (job_id, worker)).fetchone()
            if row is None:
                return None
            status = "queued" if retry and row["attempts"] < row["max_attempts"] else "failed"
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, result = ?, finished_at = ?, lease_until = NULL, "
                "worker = CASE WHEN ? = 'queued' THEN NULL ELSE worker END WHERE id = ?",
                (status, error, json.dumps(result) if result is not None else None,
                 time.time() if status == "failed" else None, status, job_id),
            )
            return status

    def release_worker(self, worker: str, reason: str) -> list[int]:
        """The worker is known to be dead: its running jobs are queued again at once (or failed when they have
        used every attempt). Returns their ids."""
        now = time.time()
        with self._write() as db:
            rows = db.execute("SELECT id, attempts, max_attempts FROM jobs WHERE worker = ? AND status = 'running'",
                              (worker,)).fetchall()
            for row in rows:
                if row["attempts"] >= row["max_attempts"]:
                    db.execute("UPDATE jobs SET status = 'failed', finished_at = ?, lease_until = NULL, error = ? "
                               "WHERE id = ?", (now, f"{reason} on attempt {row['attempts']} of "
                                                     f"{row['max_attempts']}", row["id"]))
                else:
                    db.execute("UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL, error = ? "
                               "WHERE id = ?", (f"{reason} (attempt {row['attempts']}); queued again", row["id"]))
            return [int(r["id"]) for r in rows]

    def release_dead_local_workers(self) -> list[int]:
        """Release the running jobs of workers on this host whose process is gone (e.g. after a crash of the
        whole command), without waiting for their leases. Returns the released job ids."""
        host = socket.gethostname()
        released: list[int] = []
        for job in self.list(status="running"):
            if not job.worker or ":" not in job.worker:
                continue
            whost, _, pid = job.worker.rpartition(":")
            if whost == host and pid.isdigit() and not _pid_alive(int(pid)):
                released += self.release_worker(job.worker, f"worker {job.worker} is no longer running")
        return released

    # ------------------------------------------------------------------ reading
    def get(self, job_id: int) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row is not None else None

    def list(self, status: str | None = None, kind: str | None = None) -> list[Job]:
        """Jobs in id order, optionally of one status and/or kind."""
        sql, args = "SELECT * FROM jobs WHERE 1 = 1", list[str]()
        if status is not None:
            sql, args = sql + " AND status = ?", [*args, status]
        if kind is not None:
            sql, args = sql + " AND kind = ?", [*args, kind]
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
        return [self._job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per status (every status present, 0 when none)."""
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        out = dict.fromkeys(STATUSES, 0)
        out.update({r["status"]: int(r["n"]) for r in rows})
        return out

    def claimable(self) -> int:
        """How many jobs a worker could claim now (queued, or running with an expired lease)."""
        with self._connect() as db:
            row = db.execute("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' OR "
                             "(status = 'running' AND lease_until < ?)", (time.time(),)).fetchone()
        return int(row["n"])
