"""The Python face of the experiment database: list, load and compare runs (tables are pandas DataFrames)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainforge.tracking.db import DB_FILENAME, RunDB

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_DB", "compare_runs", "list_runs", "load_run", "open_db"]

# Where runs land by default (output_dir None -> runs/<run_name>, so the database is runs/trainforge_runs.db).
DEFAULT_DB = Path("runs") / DB_FILENAME


def open_db(db: str | os.PathLike[str] | RunDB | None = None) -> RunDB:
    """A :class:`RunDB` for ``db`` (a path, a directory holding ``trainforge_runs.db``, or None for
    ``runs/trainforge_runs.db``). Raises FileNotFoundError when there is no database there."""
    if isinstance(db, RunDB):
        return db
    path = Path(db) if db is not None else DEFAULT_DB
    if path.is_dir():
        path = path / DB_FILENAME
    if not path.exists():
        raise FileNotFoundError(f"no experiment database at {str(path)!r}: runs record themselves in "
                                f"<output_dir parent>/{DB_FILENAME} (track_runs=True); pass its path")
    return RunDB(path)


def list_runs(db: str | os.PathLike[str] | RunDB | None = None, status: str | None = None) -> pd.DataFrame:
    """Every run (optionally only those with ``status``), one row each, oldest first."""
    return open_db(db).runs(status)


def load_run(run: str | int, db: str | os.PathLike[str] | RunDB | None = None) -> dict[str, Any]:
    """One run: every column (config, task spec, results, telemetry decoded) and ``metrics_summary`` (a DataFrame
    of its epoch rows)."""
    import pandas as pd

    data = open_db(db).run(run)
    data["metrics_summary"] = pd.DataFrame(data["epochs"])
    return data


def compare_runs(
    runs: Sequence[str | int],
    db: str | os.PathLike[str] | RunDB | None = None,
    *,
    metrics: Sequence[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """A table of several runs (last-epoch and best metrics, time, differing config fields); with ``plot``, also
    a PNG of their per-epoch curves side by side."""
    database = open_db(db)
    table = database.compare(runs, metrics)
    if plot is not None:
        from trainforge.tracking.plots import plot_comparison

        curves = {}
        for key in runs:
            data = database.run(key)
            label = f"{data['name']} (#{data['id']})"
            curves[label] = data["epochs"]
        plot_comparison(curves, plot, metrics=list(metrics) if metrics else None)
    return table
