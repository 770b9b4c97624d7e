"""What ``Trainer.train`` calls to record a run: start the database row, then at the end the plots, the
telemetry summary and the final status. Each step contains its own failures (a warning), so tracking can
never cost a trained model."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from trainforge.tracking.db import RunTracker, default_db_path

__all__ = ["exit_status", "finish_run", "start_run"]


def start_run(
    run_name: str,
    run_dir: str | os.PathLike[str],
    *,
    config: dict[str, Any],
    task_spec: dict[str, Any],
    model_config: Any,
    version: str,
    db_path: str | os.PathLike[str] | None = None,
) -> RunTracker:
    """Insert the run as ``running`` in ``<run_dir parent>/trainforge_runs.db`` (or ``db_path``)."""
    return RunTracker.start(db_path or default_db_path(run_dir), run_name, run_dir, config=config,
                            task_spec=task_spec, model_config=model_config, version=version)


def exit_status(exc: BaseException) -> str:
    """``interrupted`` for Ctrl-C / SystemExit, ``failed`` for everything else."""
    return "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"


def write_plots(run_dir: str | os.PathLike[str]) -> list[str]:
    """``plots/loss.png`` and ``plots/metrics.png`` in the run directory; nothing (silently) without matplotlib,
    a warning if plotting fails."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    try:
        from trainforge.tracking.plots import plot_run_dir

        return [str(p) for p in plot_run_dir(run_dir)]
    except Exception as exc:  # a plot must never cost a trained model
        warnings.warn(f"Writing the run's plots failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
        return []


def finish_run(
    tracker: RunTracker | None,
    results: dict[str, Any],
    *,
    status: str = "finished",
    plots: bool = True,
) -> None:
    """At the end of a run on the main process: write the plots (their paths go into ``results["plot_paths"]``)
    and record the results, telemetry and final status in the database."""
    if plots and results.get("run_dir"):
        results["plot_paths"] = write_plots(Path(results["run_dir"]))
    if tracker is not None:
        telemetry = {"telemetry": results.get("telemetry"), "memory_estimate": results.get("memory_estimate")}
        tracker.finish(status, results, telemetry=telemetry)
