"""Handlers of the built-in job kinds ``train`` and ``export`` (``sweep-trial`` lives in ``trainforge.sweeps``).

``train`` payload: ``{"config": run file or null, "preset": name or null, "overrides": ["key=value", ...]}``.
``export`` payload: ``{"argv": [...]}``, the arguments of ``trainforge export``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    from trainforge.cli.main import load_run_spec
    from trainforge.jobs.training import summarize, train_spec

    payload = job.payload
    spec = load_run_spec(payload.get("config"), payload.get("preset"), list(payload.get("overrides") or []))
    results = train_spec(spec, callbacks=[StopWhenLost(ctx), ProgressToQueue(ctx)])
    return summarize(results)


def run_export_job(job: Job, ctx: JobContext) -> dict[str, Any]:
    from trainforge.cli.main import main
    from trainforge.jobs.worker import JobFailed

    argv = [str(a) for a in job.payload.get("argv") or []]
    code = main(["export", *argv])
    if code != 0:
        raise JobFailed(f"trainforge export {' '.join(argv)} exited with {code}", retry=False)
    return {"argv": argv, "exit_code": code}
