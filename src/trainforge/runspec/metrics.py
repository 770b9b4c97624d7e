"""What a run spec will log, known before it trains: its task's metric names (a sweep checks its metric here)."""

from __future__ import annotations

from typing import Any

from trainforge.runspec.spec import import_function

# Columns every epoch row has, whatever the task; validation adds ``val/<metric>`` for each of the task's metrics.
BASE_METRICS = ("train/loss", "lr", "epoch_time_s", "tokens_per_s")


def task_of_run(spec: dict[str, Any]) -> Any:
    """The :class:`~trainforge.tasks.TaskSpec` kind the run spec trains, built without the model or the data
    where the spec says it (the embedded corpus, ``data: {train: file}`` by format); a ``module:function`` data
    source is called, since only it knows its task. Sizes are placeholders when the data is not read: they do
    not change which metrics a task reports."""
    from trainforge.tasks import TaskSpec

    data = spec.get("data") or {}
    if isinstance(data, str):
        made = import_function(data, "data")()
        task = made.get("task") if isinstance(made, dict) else (made[2] if isinstance(made, tuple) and
                                                               len(made) == 3 else None)
        if task is not None:
            return task
    elif isinstance(data, dict) and "train" in data:
        from trainforge.data.readers import _format_of

        fmt = data.get("format") or _format_of(str(data["train"]))
        if fmt == "csv":
            return TaskSpec.classification(name="probe", num_classes=2)
        if fmt == "jsonl":
            return TaskSpec.seq2seq(name="probe", vocab_size=256, max_seq_len=64)
        if fmt in ("images", "arrays"):
            return TaskSpec.vision_classification(name="probe", num_classes=2, image_size=8, num_channels=1)
    return TaskSpec.language_modeling(name="probe", vocab_size=256, max_seq_len=64)


def logged_metrics(spec: dict[str, Any]) -> list[str]:
    """The metric names the epoch rows of this run spec will have: the base columns, and ``val/<name>`` for each
    metric its task reports (``TaskSpec.metric_names``) when the run has validation data."""
    data = spec.get("data") or {}
    training = spec.get("training") or {}
    has_val = True  # the embedded corpus and a data function come with validation data
    if isinstance(data, dict) and "train" in data:
        has_val = bool(data.get("val")) or float(training.get("validation_split", 0) or 0) > 0
    task_metrics = [f"val/{name}" for name in task_of_run(spec).metric_names] if has_val else []
    return [*BASE_METRICS, *task_metrics]
