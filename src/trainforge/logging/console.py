"""One readable line per epoch and a compact summary at the end. Standard library only."""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any, TextIO

from trainforge.logging.base import MID_EPOCH

__all__ = ["ConsoleLogger", "format_duration", "format_epoch_row"]

# Keys that are printed last and in this order, each with its own format; everything else keeps
# the order the trainer put it in (train/* before val/* by convention).
_TAIL_KEYS = ("lr", "tokens_per_s", "epoch_time_s")
_SKIP_KEYS = {"epoch", "step", *_TAIL_KEYS}


def format_duration(seconds: float) -> str:
    """``4.2s``, ``3m07s``, ``2h05m`` — short enough for a log line."""
    if not math.isfinite(seconds):
        return f"{seconds}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{(total % 3600) // 60:02d}m"


def _format_rate(per_s: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(per_s) >= div:
            return f"{per_s / div:.1f}{suffix}"
    return f"{per_s:.0f}"


def _format_value(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"  # e.g. an epoch with no finite step
    if not math.isfinite(value):
        return str(value)
    name = key.rsplit("/", 1)[-1]
    if "perplexity" in name:
        return f"{value:.2f}"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}"


def format_epoch_row(row: dict[str, Any], total_epochs: int | None = None) -> str:
    """Format one epoch row: ``epoch 3/10 | train/loss 2.3105 | ... | lr 3.00e-04 | 12.3k tok/s | 4.2s``."""
    parts: list[str] = []
    if "epoch" in row:
        parts.append(f"epoch {row['epoch']}/{total_epochs}" if total_epochs else f"epoch {row['epoch']}")
    for key, value in row.items():
        if key in _SKIP_KEYS or value is None:
            continue
        parts.append(f"{key} {_format_value(key, value)}")
    lr = row.get("lr")
    if isinstance(lr, (int, float)):
        parts.append(f"lr {lr:.2e}")
    tps = row.get("tokens_per_s")
    if isinstance(tps, (int, float)):
        parts.append(f"{_format_rate(tps)} tok/s")
    secs = row.get("epoch_time_s")
    if isinstance(secs, (int, float)):
        parts.append(format_duration(secs))
    return " | ".join(parts)


class ConsoleLogger:
    """Print one line per epoch and a short summary at the end.

    ``log_step`` prints nothing: the progress bar shows steps. The stream defaults to whatever
    ``sys.stdout`` is *when a line is printed*, so notebooks and captured output see it.
    """

    def __init__(self, total_epochs: int, stream: TextIO | None = None) -> None:
        self.total_epochs = total_epochs
        self._stream = stream
        # Rows are kept (they are few) so the summary can show the best epoch's metrics.
        self._rows: dict[int, dict[str, Any]] = {}

    @property
    def stream(self) -> TextIO:
        """Where lines go."""
        return self._stream if self._stream is not None else sys.stdout

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def log_config(self, config: dict[str, Any]) -> None:
        """Print nothing: the resolved config is saved to the run directory."""

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Print a mid-epoch validation row (``eval_every_n_steps``); nothing for a step line (the progress bar
        shows step metrics)."""
        if metrics.get(MID_EPOCH):
            shown = {k: v for k, v in metrics.items() if k.startswith("val/")}
            self._print(f"step {step} (epoch {metrics.get('epoch')}, mid-epoch) | {format_epoch_row(shown)}")

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Print the epoch line."""
        epoch = row.get("epoch")
        if isinstance(epoch, int):
            self._rows[epoch] = dict(row)
        self._print(format_epoch_row(row, self.total_epochs))

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Print the best epoch and its metric, the final loss, the total time and the run dir."""
        parts: list[str] = []
        epochs_done = summary.get("epochs_completed", max(self._rows, default=None))
        head = "training done"
        if isinstance(epochs_done, int):
            head += f": {epochs_done} epoch{'s' if epochs_done != 1 else ''}"
        secs = summary.get("training_time_s")
        if isinstance(secs, (int, float)):
            head += f" in {format_duration(secs)}"
        if summary.get("stopped_early"):
            head += " (stopped early)"
        parts.append(head)

        best = summary.get("best_epoch")
        if best is not None:
            metric = summary.get("monitor")
            value = summary.get("best_metric")
            best_row = self._rows.get(best, {}) if isinstance(best, int) else {}
            if not isinstance(metric, str):
                metric = "val/loss" if "val/loss" in best_row else "train/loss"
            if value is None:
                value = best_row.get(metric)
            text = f"best epoch {best}"
            if isinstance(summary.get("best_step"), int):  # a mid-epoch validation (eval_every_n_steps)
                text += f" at step {summary['best_step']}"
            if isinstance(value, (int, float)):
                text += f" ({metric} {_format_value(metric, value)})"
            parts.append(text)

        final = summary.get("final_loss")
        if isinstance(final, (int, float)):
            parts.append(f"final loss {_format_value('loss', final)}")
        lines = [" | ".join(parts)]
        for key, label in (("run_dir", "run dir"), ("best_checkpoint", "best checkpoint"), ("wandb_dir", "wandb")):
            if summary.get(key):
                lines.append(f"  {label}: {summary[key]}")
        self._print("\n".join(lines))

    def close(self) -> None:
        """Flush the stream (it is not ours to close)."""
        # A closed or detached stream has nothing left to flush.
        with contextlib.suppress(ValueError, OSError):
            self.stream.flush()
