"""A queue worker: claim a job, keep its lease alive with a heartbeat thread, run its handler, record the outcome.

Handlers are looked up by job kind in :data:`HANDLERS` (``"module:function"`` strings, imported on first use, so
a worker that only trains never imports the sweep or export code). A handler is
``handler(job: Job, ctx: JobContext) -> dict`` whose return value is stored as the job's result.

An exception from a handler fails the attempt; it is retried while attempts remain unless the exception is a
trainforge error (bad config or data would fail the same way again) or has ``retry = False``.

``run_worker(path, until_empty=True)`` in the current process is the notebook's sequential pattern: it runs the
queued jobs one after another, in priority order.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainforge.jobs.queue import Job, JobQueue, worker_id

Handler = Callable[[Job, "JobContext"], dict[str, Any] | None]

HANDLERS: dict[str, str | Handler] = {
    "train": "trainforge.jobs.handlers:run_train_job",
    "export": "trainforge.jobs.handlers:run_export_job",
    "sweep-trial": "trainforge.sweeps.local:run_trial_job",
}
KINDS = tuple(HANDLERS)


class JobFailed(Exception):
    """Raised by a handler to fail a job with a message; ``retry=False`` fails it for good at once."""

    def __init__(self, message: str, retry: bool = True, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.result = result


@dataclass
class JobContext:
    """What a handler may use: the queue, its worker id, a cancel flag set when the job is taken away."""

    queue: JobQueue
    job: Job
    worker: str
    lease_s: float
    lost: threading.Event = field(default_factory=threading.Event)

    def progress(self, data: dict[str, Any]) -> None:
        """Store the job's progress (e.g. per-epoch metrics) in the queue."""
        if not self.queue.set_progress(self.job.id, self.worker, data):
            self.lost.set()


def register_handler(kind: str, handler: str | Handler) -> None:
    """Add or replace the handler of a job kind (a callable or a ``"module:function"`` string)."""
    HANDLERS[kind] = handler


def _resolve(kind: str) -> Handler:
    handler = HANDLERS.get(kind)
    if handler is None:
        raise JobFailed(f"no handler for job kind {kind!r}; known kinds: {sorted(HANDLERS)}", retry=False)
    if isinstance(handler, str):
        module, _, name = handler.partition(":")
        handler = getattr(importlib.import_module(module), name)
        HANDLERS[kind] = handler
    return handler


class _Heartbeat(threading.Thread):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{ctx.job.id}")
        self.ctx = ctx
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = max(self.ctx.lease_s / 3.0, 0.05)
        while not self.stopped.wait(interval):
            try:
                ok = self.ctx.queue.heartbeat(self.ctx.job.id, self.ctx.worker, self.ctx.lease_s)
            except Exception:  # a locked database for longer than the timeout: try again next beat
                continue
            if not ok:
                self.ctx.lost.set()
                return


def run_job(queue: JobQueue, job: Job, worker: str, lease_s: float) -> str | None:
    """Run one claimed job to its end; returns its new status."""
    ctx = JobContext(queue=queue, job=job, worker=worker, lease_s=lease_s)
    beat = _Heartbeat(ctx)
    beat.start()
    try:
        result = _resolve(job.kind)(job, ctx)
    except Exception as exc:
        from trainforge.errors import TrainforgeError

        retry = bool(getattr(exc, "retry", not isinstance(exc, TrainforgeError)))
        tb = traceback.format_exc(limit=6)
        message = str(exc) if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}\n{tb}"
        return queue.fail(job.id, worker, message, retry=retry, result=getattr(exc, "result", None))
    finally:
        beat.stopped.set()
        beat.join()
    if ctx.lost.is_set():  # cancelled, or claimed by another worker after a lost lease: not ours to finish
        current = queue.get(job.id)
        return current.status if current is not None else None
    return "done" if queue.complete(job.id, worker, result or {}) else None


def run_worker(
    path: str | os.PathLike[str],
    *,
    until_empty: bool = True,
    max_jobs: int | None = None,
    lease_s: float = 60.0,
    poll_s: float = 1.0,
    kinds: Sequence[str] | None = None,
    name: str | None = None,
    log: Callable[[str], None] | None = None,
) -> int:
    """Claim and run jobs from the queue at ``path``; returns how many this worker ran.

    Args:
        until_empty: stop when nothing can be claimed (else wait ``poll_s`` and look again, forever).
        max_jobs: stop after this many jobs.
        lease_s: the lease length; the heartbeat renews it every third of it.
        kinds: only claim jobs of these kinds.
    """
    queue = JobQueue(path)
    worker = name or worker_id()
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    ran = 0
    while max_jobs is None or ran < max_jobs:
        job = queue.claim(worker, lease_s=lease_s, kinds=kinds)
        if job is None:
            if until_empty:
                break
            time.sleep(poll_s)
            continue
        say(f"[trainforge jobs] {worker} runs job {job.id} ({job.kind}, attempt {job.attempts}/{job.max_attempts})")
        status = run_job(queue, job, worker, lease_s)
        say(f"[trainforge jobs] job {job.id}: {status}")
        ran += 1
    return ran


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trainforge.jobs QUEUE [--lease S] [--single-thread]``: the process sweeps start."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trainforge.jobs")
    parser.add_argument("queue")
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--single-thread", action="store_true", help="torch.set_num_threads(1)")
    parser.add_argument("--forever", action="store_true", help="keep polling when the queue is empty")
    args = parser.parse_args(argv)
    if args.single_thread:
        import torch

        torch.set_num_threads(1)
    run_worker(Path(args.queue), until_empty=not args.forever, lease_s=args.lease)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
