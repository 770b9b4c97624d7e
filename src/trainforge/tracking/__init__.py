"""Experiment tracking: the SQLite run database, plots, telemetry and the memory estimate.

Nothing heavy is imported with this package: ``sqlite3``, ``pandas`` and ``matplotlib`` load only when a
function that needs them runs (names are resolved lazily on first access).

    from trainforge.tracking import RunDB, plot_results, compare_runs
    plot_results(results)                            # notebook: loss curves of a Trainer.train result
    RunDB("runs/trainforge_runs.db").runs()          # every run, as a DataFrame
    compare_runs(["exp-1", "exp-2"], plot="cmp.png")  # table (+ plot) of several runs
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainforge.tracking.api import compare_runs, list_runs, load_run
    from trainforge.tracking.db import DB_FILENAME, RunDB, RunTracker, default_db_path
    from trainforge.tracking.memory import MemoryEstimate, estimate_memory
    from trainforge.tracking.plots import plot_comparison, plot_results, plot_run_dir
    from trainforge.tracking.telemetry import GPU_PEAK_TFLOPS, LoopTelemetry

_WHERE = {
    "compare_runs": "api", "list_runs": "api", "load_run": "api",
    "DB_FILENAME": "db", "RunDB": "db", "RunTracker": "db", "default_db_path": "db",
    "MemoryEstimate": "memory", "estimate_memory": "memory",
    "plot_comparison": "plots", "plot_results": "plots", "plot_run_dir": "plots",
    "GPU_PEAK_TFLOPS": "telemetry", "LoopTelemetry": "telemetry",
}

__all__ = [
    "DB_FILENAME", "GPU_PEAK_TFLOPS", "LoopTelemetry", "MemoryEstimate", "RunDB", "RunTracker", "compare_runs",
    "default_db_path", "estimate_memory", "list_runs", "load_run", "plot_comparison", "plot_results", "plot_run_dir",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'trainforge.tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"trainforge.tracking.{module}"), name)
    globals()[name] = value
    return value
