"""Handlers of the built-in job kinds ``train`` and ``export`` (``sweep-trial`` lives in ``trainforge.sweeps``).

``train`` payload: ``{"config": run file or null, "preset": name or null, "overrides": ["key=value", ...]}``.
``export`` payload: ``{"argv": [...]}``, the arguments of ``trainforge export``.

Both call the library below them (``trainforge.runspec`` trains a run spec, ``trainforge.export.cli`` exports a
checkpoint), never the command line above them: ``trainforge.cli`` imports the queue, not the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainforge.errors import bounded_repr
from trainforge.jobs.callbacks import ProgressToQueue, StopWhenLost  # re-exported: their old home

if TYPE_CHECKING:
    from trainforge.jobs.queue import Job
    from trainforge.jobs.worker import JobContext

__all__ = ["ProgressToQueue", "StopWhenLost", "run_export_job", "run_train_job"]


def run_train_job(job: Job, ctx: JobContext) -> dict[str, Any]:
    from trainforge.jobs.training import summarize
    from trainforge.jobs.worker import JobFailed
    from trainforge.runspec import load_run_spec, train_spec

    payload = job.payload
    overrides = payload.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides) or not all(
            isinstance(payload.get(k), (str, type(None))) for k in ("config", "preset")):
        raise JobFailed(f"malformed train payload: expected {{config: path | null, preset: name | null, overrides: "
                        f"[key=value, ...]}}, got {bounded_repr(payload)}", retry=False)
    spec = load_run_spec(payload.get("config"), payload.get("preset"), list(overrides))
    results = train_spec(spec, callbacks=[StopWhenLost(ctx), ProgressToQueue(ctx)])
    return summarize(results)


def run_export_job(job: Job, ctx: JobContext) -> dict[str, Any]:
    """``trainforge export ARGV`` as a job: the same parsing, printed report and exit code (0 every format
    passed, 1 some failed, 2 an error), run by the export package's own entry point."""
    from trainforge.export.cli import main as export
    from trainforge.jobs.worker import JobFailed

    argv = job.payload.get("argv")
    if not isinstance(argv, list) or not argv:
        raise JobFailed(f"malformed export payload: expected {{argv: [checkpoint, ...]}}, got "
                        f"{bounded_repr(job.payload)}", retry=False)
    argv = [str(a) for a in argv]
    code = export(argv)
    if code != 0:
        raise JobFailed(f"trainforge export {' '.join(argv)} exited with {code}", retry=False)
    return {"argv": argv, "exit_code": code}
