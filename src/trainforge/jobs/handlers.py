"""Handlers of the built-in job kinds ``train`` and ``export`` (``sweep-trial`` lives in ``trainforge.sweeps``).

``train`` payload: ``{"config": run file or null, "preset": name or null, "overrides": ["key=value", ...]}``.
``export`` payload: ``{"argv": [...]}``, the arguments of ``trainforge export``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainforge.errors import bounded_repr

if TYPE_CHECKING:
    from trainforge.jobs.queue import Job
    from trainforge.jobs.worker import JobContext


class StopWhenLost:
    """Callback: stop the run after the current epoch once the job was cancelled or taken away."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def on_step_end(self, state: Any) -> None:
        if self.ctx.lost.is_set() and not state.stop_requested:
            state.request_stop("job cancelled")


class ProgressToQueue:
    """Callback: store each epoch's metrics row as the job's progress."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def on_epoch_end(self, state: Any) -> None:
        from trainforge.jobs.training import _plain

        self.ctx.progress({"history": [{k: _plain(v) for k, v in row.items()} for row in state.history]})


def run_train_job(job: Job, ctx: JobContext) -> dict[str, Any]:
    from trainforge.jobs.training import summarize, train_spec
    from trainforge.jobs.worker import JobFailed
    from trainforge.runspec import load_run_spec

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
    from trainforge.cli.main import main
    from trainforge.jobs.worker import JobFailed

    argv = job.payload.get("argv")
    if not isinstance(argv, list) or not argv:
        raise JobFailed(f"malformed export payload: expected {{argv: [checkpoint, ...]}}, got "
                        f"{bounded_repr(job.payload)}", retry=False)
    argv = [str(a) for a in argv]
    code = main(["export", *argv])
    if code != 0:
        raise JobFailed(f"trainforge export {' '.join(argv)} exited with {code}", retry=False)
    return {"argv": argv, "exit_code": code}
