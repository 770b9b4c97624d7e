"""Run specs: preset → run file → overrides merged into one dict, and what a run spec will train.

Used by the CLI, queue jobs and sweeps; it imports none of them (layers import downward only). Building the
model and data and training what a spec names is :func:`trainforge.cli.runspec.train_spec`.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from trainforge.errors import ConfigError

# Keys of a run file that are not TrainingConfig fields.
SECTIONS = ("preset", "model", "data", "task")

# Columns every epoch row has, whatever the task; validation adds ``val/<metric>`` for each of the task's metrics.
BASE_METRICS = ("train/loss", "lr", "epoch_time_s", "tokens_per_s")


def load_run_spec(config: str | None, preset: str | None, overrides: list[str]) -> dict[str, Any]:
    """Merge preset → run file → overrides into one dict with ``training``, ``model``, ``data`` keys."""
    from trainforge.config import get_preset, parse_overrides
    from trainforge.config.io import read_mapping

    spec: dict[str, Any] = {}
    if config:
        if not Path(config).is_file():
            raise ConfigError([f"--config: file not found, got {config!r}. Fix: give the path of a YAML or JSON "
                               "run file (e.g. one written by TrainingConfig.save)."], what="command line")
        spec = dict(read_mapping(config))
    deep_update(spec, parse_overrides(overrides))
    name = preset or spec.pop("preset", None) or "tiny"
    spec.pop("preset", None)
    training = dict(get_preset(name))
    training.update({k: v for k, v in spec.items() if k not in SECTIONS})
    return {"training": training, "model": spec.get("model") or {}, "data": spec.get("data") or {},
            "task": spec.get("task") or {}, "preset": name, "source": config or "the command line"}


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    """``base`` updated in place with ``new``; nested mappings are merged key by key."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value


def import_function(target: str, what: str) -> Any:
    """``"pkg.mod:fn"`` or ``"path/file.py:fn"`` → the function (imported only because a file names it)."""
    module_name, _, func = target.partition(":")
    if not func:
        raise ConfigError([f"{what}: expected 'module:function' or 'file.py:function', got {target!r}."], what="run")
    if module_name.endswith(".py"):
        path = Path(module_name)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ConfigError([f"{what}: file {module_name!r} not found. Fix: give a path to a .py file."], what="run")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError([f"{what}: cannot import {module_name!r} ({exc}). Fix: check the module name and that "
                               "it is importable (on PYTHONPATH)."], what="run") from exc
    if not callable(getattr(module, func, None)):
        raise ConfigError([f"{what}: {module_name!r} has no function {func!r}. Fix: name a function defined there."],
                          what="run")
    return getattr(module, func)


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
