"""After ``fit``: the results dict and the run's FIT_END subscribers, or the exception path.

Nothing the user trained is lost here: the results hold the final weights before any subscriber runs, and every
subscriber contains its own failures (export, plots, the runs database).
"""

from __future__ import annotations

from typing import Any, NoReturn

from trainforge.checkpoint.io import canonical_state_dict
from trainforge.distributed import fsdp
from trainforge.errors import DataError
from trainforge.trainer.events import Event, fire
from trainforge.trainer.loop import Run
from trainforge.trainer.results import build_results
from trainforge.trainer.subscribers import publish

__all__ = ["fail", "finish"]


def finish(run: Run, training_time_s: float) -> dict[str, Any]:
    """The results of a completed (or stopped) fit; the FIT_END subscribers then add theirs (export, plot paths)."""
    p, state, guard = run.parts, run.state, run.parts.guard
    p.saver.close()  # FIT_END waited for the commits: this only stops the commit thread
    p.progress.close()
    # FSDP: the full weights, gathered to rank 0 (other ranks get {}); the plain module's keys either way
    final_state = fsdp.full_model_state(p.raw_model) if p.dist.sharded else None
    results = build_results(
        state, p.raw_model, final_state=final_state, checkpoint_dir=p.cfg.checkpoint_dir, run_dir=run.run_dir,
        training_time_s=training_time_s,
        extras={**run.facts, "checkpoint_errors": p.saver.errors, "run_name": run.run_name,
                "skipped_steps": len(guard.records), "skipped_step_records": list(guard.records),
                "nan_rollbacks": guard.rollbacks, "preempted": p.preemption is not None and
                p.preemption.received is not None},
    )
    results["final_model_state"] = canonical_state_dict(results["final_model_state"])
    results["telemetry"] = _telemetry(run, results["training_time_s"])
    results["memory_estimate"] = run.memory_estimate
    results["monitor"] = p.monitor.name
    results["last_checkpoint"] = results["checkpoint_paths"][-1] if results["checkpoint_paths"] else None
    run.results = results
    publish(run, Event.FIT_END)  # export, log summary, plots, then the runs-database row
    release_wrapper(run)
    return results


def release_wrapper(run: Run) -> None:
    """Drop the run's forward wrapper (DDP and/or compiled) now. DDP's reducer holds the process group; kept alive
    past ``train()`` it would be destroyed at interpreter exit, after the group is gone, and a gloo rank aborted
    there under load ("terminate called without an active exception").

    The run holds no reference cycle of its own, but the first ``train()`` in a process can still outlive its
    call until the cyclic garbage collector runs: torch imports modules lazily during it, and some of those leave
    frames in cycles, which keep their callers' frames, ``train``'s with this run among them, alive."""
    run.parts.model = run.parts.raw_model


def fail(run: Run, exc: BaseException) -> NoReturn:
    """The loop raised: the last checkpoint made durable, callbacks and subscribers told, then ``exc`` re-raised
    (an out-of-range id as a ``DataError`` that says what to fix)."""
    p = run.parts
    p.saver.abort()  # an interrupted run's last checkpoint is durable first
    run.state.exception = exc
    fire(p.callbacks, Event.EXCEPTION, run.state)
    p.progress.close()
    publish(run, Event.EXCEPTION)  # the logs closed, the runs-database row marked failed / interrupted
    release_wrapper(run)
    if isinstance(exc, IndexError) and "index out of range" in str(exc):
        raise DataError(
            f"A token or label id is out of the model's range ({exc}). Fix: make sure every id is below "
            f"the model's vocab_size / num_classes (TaskSpec vocab_size={p.task.vocab_size})."
        ) from exc
    raise exc


def _telemetry(run: Run, training_time_s: float) -> dict[str, Any] | None:
    tokens_per_s = [r["tokens_per_s"] for r in run.state.history if isinstance(r.get("tokens_per_s"), float)]
    if run.parts.telemetry is None:
        return None
    return run.parts.telemetry.summary(training_time_s, sum(tokens_per_s) / len(tokens_per_s) if tokens_per_s else None)
