"""Training callbacks that tie a run to the queue job running it (used by ``train`` jobs and sweep trials)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainforge.jobs.worker import JobContext

__all__ = ["ProgressToQueue", "StopWhenLost"]


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
