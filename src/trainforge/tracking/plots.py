"""Loss and metric curves as PNG files, headless.

matplotlib is imported only here, and only through its object API (``matplotlib.figure.Figure`` rendered by
the Agg canvas): no pyplot, no global backend switch, no window, so it works on servers and leaves a
notebook's own matplotlib setup alone. In a notebook, :func:`plot_results` returns a figure that displays
inline (a PNG formatter for it is registered with IPython when one is running).

Files (written at the end of every run into ``<run_dir>/plots/``, by a background thread so that ``train()`` does not
wait for matplotlib; sizes are fixed so they can be checked):
  * ``loss.png`` (800 x 450): train loss per step (from ``steps.jsonl``) and per epoch, val loss per epoch.
  * ``metrics.png`` (1200 x 800): up to six other epoch metrics (``val/*`` first, then lr, tokens/s, time).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LOSS_SIZE", "METRICS_SIZE", "plot_comparison", "plot_history", "plot_results", "plot_run_dir"]

DPI = 100
LOSS_SIZE = (800, 450)  # pixels
METRICS_SIZE = (1200, 800)
COMPARE_SIZE = (1200, 450)
_NOT_METRICS = {"epoch", "step", "train/loss", "val/loss"}
_TAIL = ["lr", "tokens_per_s", "samples_per_s", "epoch_time_s"]


# matplotlib is not thread-safe, and a run's plots are drawn on a background thread (trainforge.tracking.run): every
# public drawing function here holds this lock, so a notebook's plot_results never races a run's end-of-run plots.
_DRAWING = threading.RLock()
_F = TypeVar("_F", bound=Callable[..., Any])


def _serialised(fn: _F) -> _F:
    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _DRAWING:
            return fn(*args, **kwargs)

    return cast(_F, locked)


def _figure(size: tuple[int, int]) -> Figure:
    import matplotlib

    matplotlib.rcParams.setdefault("figure.max_open_warning", 0)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)  # attaches the headless canvas
    return fig


def _num(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _series(rows: Sequence[dict[str, Any]], key: str, x: str = "epoch") -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, r in enumerate(rows):
        y = _num(r.get(key))
        if y is None:
            continue
        xv = _num(r.get(x))
        xs.append(xv if xv is not None else float(i + 1))
        ys.append(y)
    return xs, ys


def _metric_keys(rows: Sequence[dict[str, Any]], limit: int = 6) -> list[str]:
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in _NOT_METRICS))
    keys = [k for k in keys if any(_num(r.get(k)) is not None for r in rows)]
    head = [k for k in keys if k not in _TAIL]
    tail = [k for k in _TAIL if k in keys]
    return (head + tail)[:limit]


def _loss_axes(ax: Axes, rows: Sequence[dict[str, Any]], steps: Sequence[dict[str, Any]], title: str) -> None:
    if steps:
        sx, sy = _series(steps, "train/loss", x="step")
        if sx:
            ax.plot(sx, sy, color="tab:blue", alpha=0.35, linewidth=1, label="train/loss (steps)")
    has_steps = any(_num(r.get("step")) is not None for r in rows)
    x = "step" if has_steps and steps else "epoch"
    for key, color in (("train/loss", "tab:blue"), ("val/loss", "tab:orange")):
        xs, ys = _series(rows, key, x=x)
        if xs:
            ax.plot(xs, ys, marker="o", color=color, label=f"{key} (epochs)")
    ax.set_xlabel("optimizer step" if x == "step" else "epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)


def plot_history(rows: Sequence[dict[str, Any]], steps: Sequence[dict[str, Any]] = (), title: str = "loss") -> Figure:
    """The loss figure (800 x 450 px) from epoch rows and (optionally) step records."""
    fig = _figure(LOSS_SIZE)
    _loss_axes(fig.add_subplot(1, 1, 1), rows, steps, title)
    fig.tight_layout()
    return fig


def plot_metrics(rows: Sequence[dict[str, Any]], title: str = "") -> Figure | None:
    """Up to six epoch metrics other than the losses, 2 x 3 panels (1200 x 800 px); None when there are none."""
    keys = _metric_keys(rows)
    if not keys:
        return None
    fig = _figure(METRICS_SIZE)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(2, 3, i + 1)
        xs, ys = _series(rows, key)
        ax.plot(xs, ys, marker="o")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _read_rows(run_dir: Path, steps: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        with metrics.open(newline="", encoding="utf-8") as f:
            rows = [dict(r) for r in csv.DictReader(f)]
    records: list[dict[str, Any]] = []
    steps_file = run_dir / "steps.jsonl"
    if steps and steps_file.exists():
        with steps_file.open(encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:  # a line cut by a crash
                        continue
    return rows, records


def planned_plots(run_dir: str | os.PathLike[str]) -> list[str]:
    """The file names :func:`plot_run_dir` will write for this run, without matplotlib and without reading the
    per-step file (only whether it has content): cheap enough for the caller's path."""
    run_dir = Path(run_dir)
    rows, _ = _read_rows(run_dir, steps=False)
    steps_file = run_dir / "steps.jsonl"
    has_steps = steps_file.is_file() and steps_file.stat().st_size > 0
    if not rows and not has_steps:
        return []
    return ["loss.png", "metrics.png"] if _metric_keys(rows) else ["loss.png"]


@_serialised
def plot_run_dir(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write ``loss.png`` and ``metrics.png`` for one run (from its ``metrics.csv`` and ``steps.jsonl``) into
    ``out_dir`` (default ``<run_dir>/plots``); return the files written."""
    run_dir = Path(run_dir)
    rows, steps = _read_rows(run_dir)
    if not rows and not steps:
        return []
    out = Path(out_dir) if out_dir is not None else run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    fig = plot_history(rows, steps, title=f"{run_dir.name}: loss")
    fig.savefig(out / "loss.png", dpi=DPI)
    written.append(out / "loss.png")
    mfig = plot_metrics(rows, title=run_dir.name)
    if mfig is not None:
        mfig.savefig(out / "metrics.png", dpi=DPI)
        written.append(out / "metrics.png")
    return written


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _register_notebook_display() -> None:
    """Let IPython show our pyplot-free figures inline (once; nothing outside IPython)."""
    try:
        from IPython import get_ipython  # type: ignore[attr-defined]
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    shell.display_formatter.formatters["image/png"].for_type(Figure, _png)


@_serialised
def plot_results(results: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Figure:
    """One call in a notebook: the loss curves (and per-step loss from the run's ``steps.jsonl`` when there is
    one) of a ``Trainer.train`` results dict. Saved as PNG to ``path`` when given; the figure is returned (it
    displays inline in Jupyter)."""
    summary = results.get("metrics_summary")
    rows: list[dict[str, Any]]
    if summary is not None and hasattr(summary, "to_dict"):
        rows = summary.to_dict("records")
    else:
        rows = [{"epoch": i + 1, "train/loss": v} for i, v in enumerate(results.get("loss_history", []))]
    steps: list[dict[str, Any]] = []
    if results.get("run_dir"):
        _, steps = _read_rows(Path(results["run_dir"]))
    fig = plot_history(rows, steps, title=f"{results.get('run_name') or 'run'}: loss")
    if path is not None:
        fig.savefig(path, dpi=DPI)
    _register_notebook_display()
    return fig


@_serialised
def plot_comparison(
    runs: dict[str, Sequence[dict[str, Any]]],
    path: str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> Figure:
    """Per-epoch curves of several runs side by side (1200 x 450 px): one panel per metric (default
    ``train/loss``, ``val/loss`` and the first other ``val/*`` metric), one line per run."""
    if metrics is None:
        keys = list(dict.fromkeys(k for rows in runs.values() for r in rows for k in r))
        metrics = [k for k in ("train/loss", "val/loss") if k in keys]
        metrics += [k for k in keys if k.startswith("val/") and k != "val/loss"][:1]
    metrics = list(metrics) or ["train/loss"]
    fig = _figure(COMPARE_SIZE)
    for i, key in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for name, rows in runs.items():
            xs, ys = _series(rows, key)
            if xs:
                ax.plot(xs, ys, marker="o", label=name)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=DPI)
    _register_notebook_display()
    return fig
