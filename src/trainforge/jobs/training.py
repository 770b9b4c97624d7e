"""Training jobs: the run-spec builder shared with ``trainforge train`` (``cli.runspec``), the metric names a
run will log (validated before a sweep starts) and a JSON-safe summary of results for the queue."""

from __future__ import annotations

from typing import Any

from trainforge.cli.runspec import import_function, train_spec

__all__ = ["import_function", "logged_metrics", "summarize", "train_spec"]

# Metrics every epoch row has; validation adds ``val/<metric>``.
BASE_METRICS = ("train/loss", "lr", "epoch_time_s", "tokens_per_s")
VAL_METRICS = ("val/loss", "val/perplexity", "val/accuracy")


def logged_metrics(spec: dict[str, Any]) -> list[str]:
    """The metric names the epoch rows of this run spec will have (validation metrics only with validation)."""
    data = spec.get("data") or {}
    training = spec.get("training") or {}
    has_val = True  # the embedded corpus and a data function come with validation data
    if isinstance(data, dict) and "train" in data:
        has_val = bool(data.get("val")) or float(training.get("validation_split", 0) or 0) > 0
    return [*BASE_METRICS, *(VAL_METRICS if has_val else ())]


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
