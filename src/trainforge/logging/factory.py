"""Build the loggers a training run uses, from a few config values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from trainforge.logging.background import BackgroundLogger
from trainforge.logging.base import Logger, MultiLogger, NullLogger
from trainforge.logging.console import ConsoleLogger
from trainforge.logging.csv_logger import CSVLogger

__all__ = ["BACKENDS", "DEFAULT_WANDB_PROJECT", "build_loggers"]

DEFAULT_WANDB_PROJECT = "trainforge"
# Names accepted in ``loggers``; console and csv are always on, so naming them changes nothing.
BACKENDS = ("csv", "console", "wandb", "tensorboard", "mlflow")


def build_loggers(
    *,
    run_dir: str,
    total_epochs: int,
    use_wandb: bool,
    wandb_project: str | None,
    wandb_entity: str | None,
    run_name: str | None,
    notes: str | None,
    tags: list[str] | None,
    is_main_process: bool = True,
    console: bool = True,
    resume: bool = False,
    console_stream: TextIO | None = None,
    loggers: Sequence[str] = (),
    extra: Sequence[Logger] = (),
    dashboard_min_interval_s: float = 0.0,
) -> MultiLogger:
    """Return a :class:`MultiLogger` for this process.

    On the main process: console (unless ``console=False``) and CSV always, W&B when ``use_wandb``
    (project ``"trainforge"`` when ``wandb_project`` is None; ``wandb`` is imported only then).
    Other processes get a logger that writes nothing. ``resume`` keeps the existing ``metrics.csv``
    rows and appends to ``steps.jsonl``. ``console_stream`` receives the console lines (e.g. a progress bar's
    stream, so epoch lines print above the bar).
    ``loggers`` names extra backends (``"wandb"``, ``"tensorboard"``, ``"mlflow"``; ``"csv"``/``"console"`` are
    always on); each backend's package is imported only when it is named. ``extra`` are ready-made backends
    (e.g. the experiment-database tracker) added on the main process only. W&B, TensorBoard and MLflow get a step
    line at most every ``dashboard_min_interval_s`` seconds (0: every line).

    Raises:
        ImportError: a named backend's package (``wandb``, ``tensorboard``, ``mlflow``) is not installed.
        ValueError: an unknown backend name.
    """
    unknown = [name for name in loggers if name not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown logger(s) {unknown}; choose from {list(BACKENDS)}")
    if not is_main_process:
        return MultiLogger([NullLogger()])
    backends: list[Logger] = []
    if console:
        backends.append(ConsoleLogger(total_epochs, stream=console_stream))
    backends.append(CSVLogger(run_dir, resume=resume))
    if use_wandb or "wandb" in loggers:
        # Imported here so that `import trainforge.logging` never pulls in wandb.
        from trainforge.logging.wandb_logger import WandbLogger

        # The third-party backends write on their own threads: the loop pays a queue put per log line, not their
        # 0.1-1 ms of Python (console and CSV are cheap and stay in order with the progress bar).
        backends.append(BackgroundLogger(
            WandbLogger(
                project=wandb_project or DEFAULT_WANDB_PROJECT,
                entity=wandb_entity,
                run_name=run_name,
                notes=notes,
                tags=tags,
                run_dir=run_dir,
            ),
            dashboard_min_interval_s,
        ))
    if "tensorboard" in loggers:
        from trainforge.logging.tensorboard_logger import TensorBoardLogger

        backends.append(BackgroundLogger(TensorBoardLogger(run_dir), dashboard_min_interval_s))
    if "mlflow" in loggers:
        from trainforge.logging.mlflow_logger import MLflowLogger

        backends.append(BackgroundLogger(MLflowLogger(
            run_dir, experiment=wandb_project or DEFAULT_WANDB_PROJECT, run_name=run_name,
            tags={f"tag.{t}": "1" for t in tags or []}), dashboard_min_interval_s))
    backends.extend(extra)
    return MultiLogger(backends)
