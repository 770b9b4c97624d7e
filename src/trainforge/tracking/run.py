"""What ``Trainer.train`` calls to record a run: start the database row, then at the end the plots, the
telemetry summary and the final status. Each step contains its own failures (a warning), so tracking can
never cost a trained model."""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainforge.tracking.db import RunTracker, default_db_path

__all__ = ["PlotFiles", "draw_plots_in_background", "exit_status", "finish_run", "start_run", "wait_for_plots"]


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
    if importlib.util.find_spec("matplotlib") is None:
        return []
    try:
        from trainforge.tracking.plots import plot_run_dir

        return [str(p) for p in plot_run_dir(run_dir)]
    except Exception as exc:  # a plot must never cost a trained model
        if not Path(run_dir).is_dir():  # the run directory was removed while the plots were being drawn
            return []
        warnings.warn(f"Writing the run's plots failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
        return []


class PlotFiles(list):  # type: ignore[type-arg]
    """``results["plot_paths"]``: the run's plot files, drawn by a background thread.

    Drawing them with matplotlib takes ~0.4 s or more, which ``train()`` no longer spends on the caller's path: the
    list holds the paths that will be written from the start, and the thread writes them. Reading the list (compare,
    iterate, index, ``len``, ``repr``) first waits for the thread, so whoever looks at the paths finds the files;
    :meth:`wait` does it explicitly, and :func:`wait_for_plots` waits for every run's. The thread is not a daemon,
    so a script that ends right after ``train()`` still writes its plots before the interpreter exits.
    """

    def __init__(self, planned: list[str], run_dir: Path) -> None:
        super().__init__(planned)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._draw, args=(run_dir,), name="trainforge-plots", daemon=False)
        _PENDING.append(self)
        self._thread.start()

    def _draw(self, run_dir: Path) -> None:
        try:
            written = write_plots(run_dir)  # (plots.py draws one figure set at a time: matplotlib is not thread-safe)
            if written != [str(run_dir / "plots" / Path(p).name) for p in list.__iter__(self)]:
                list.__init__(self, [p for p in list.__iter__(self) if str(run_dir / "plots" / Path(p).name)
                                     in written])  # a failed plot: list only the files that exist
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> PlotFiles:
        """Block until the plots are written (or ``timeout`` seconds pass); returns self."""
        if threading.current_thread() is not self._thread:
            self._done.wait(timeout)
        return self

    def __eq__(self, other: object) -> bool:
        return list.__eq__(self.wait(), other)

    def __ne__(self, other: object) -> bool:
        return list.__ne__(self.wait(), other)

    def __iter__(self) -> Iterator[str]:
        return list.__iter__(self.wait())

    def __len__(self) -> int:
        return list.__len__(self.wait())

    def __getitem__(self, index: Any) -> Any:
        return list.__getitem__(self.wait(), index)

    def __repr__(self) -> str:
        return list.__repr__(self.wait())

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Any:  # pickles (and deep-copies) as the plain list of paths
        return (list, (list(self),))


_PENDING: list[PlotFiles] = []


def wait_for_plots(timeout: float | None = None) -> None:
    """Wait until every run's end-of-run plots started in this process are written."""
    while _PENDING:
        _PENDING.pop().wait(timeout)


def draw_plots_in_background(run_dir: str | os.PathLike[str]) -> PlotFiles | list[str]:
    """Start drawing the run's plots on a background thread; the returned list holds the files it writes (and waits
    for them when read). Without matplotlib: an empty list, as before."""
    if importlib.util.find_spec("matplotlib") is None:
        return []
    from trainforge.tracking.plots import planned_plots

    given = Path(run_dir)
    # The thread gets an absolute path: the caller may change the working directory before it runs.
    return PlotFiles([str(given / "plots" / name) for name in planned_plots(given)], given.resolve())


def finish_run(
    tracker: RunTracker | None,
    results: dict[str, Any],
    *,
    status: str = "finished",
    plots: bool = True,
) -> None:
    """At the end of a run on the main process: start the plots (on a background thread; their paths go into
    ``results["plot_paths"]``) and record the results, telemetry and final status in the database."""
    if plots and results.get("run_dir"):
        results["plot_paths"] = draw_plots_in_background(Path(results["run_dir"]))
    if tracker is not None:
        telemetry = {"telemetry": results.get("telemetry"), "memory_estimate": results.get("memory_estimate")}
        tracker.finish(status, results, telemetry=telemetry)
