"""Training jobs: a JSON-safe summary of a run's results for the queue (``summarize``).

The run-spec builder they share with ``trainforge train`` and sweep trials is :mod:`trainforge.runspec`
(``train_spec``; the metric names a run will log: ``logged_metrics``), re-exported here for older imports.
"""

from __future__ import annotations

from typing import Any

from trainforge.runspec import import_function, logged_metrics, train_spec

__all__ = ["import_function", "logged_metrics", "summarize", "train_spec"]


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of a results dict (history rows, best epoch, run dir, ...)."""
    history = results["metrics_summary"].to_dict(orient="records")
    keep = ("best_epoch", "best_metric", "final_loss", "training_time_s", "global_step", "epochs_completed",
            "stop_reason", "run_dir", "run_name", "best_checkpoint")
    out = {k: results.get(k) for k in keep}
    out["history"] = [{k: _plain(v) for k, v in row.items()} for row in history]
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
