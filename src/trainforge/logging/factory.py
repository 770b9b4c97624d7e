"""Build the loggers a training run uses, from a few config values."""

from __future__ import annotations

from typing import TextIO

from trainforge.logging.base import Logger, MultiLogger, NullLogger
from trainforge.logging.console import ConsoleLogger
from trainforge.logging.csv_logger import CSVLogger

__all__ = ["DEFAULT_WANDB_PROJECT", "build_loggers"]

DEFAULT_WANDB_PROJECT = "trainforge"


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
) -> MultiLogger:
    """Return a :class:`MultiLogger` for this process.

    On the main process: console (unless ``console=False``) and CSV always, W&B when ``use_wandb``
    (project ``"trainforge"`` when ``wandb_project`` is None; ``wandb`` is imported only then).
    Other processes get a logger that writes nothing. ``resume`` keeps the existing ``metrics.csv``
    rows and appends to ``steps.jsonl``. ``console_stream`` receives the console lines (e.g. a progress bar's
    stream, so epoch lines print above the bar).

    Raises:
        ImportError: ``use_wandb`` is set and ``wandb`` is not installed.
    """
    if not is_main_process:
        return MultiLogger([NullLogger()])
    loggers: list[Logger] = []
    if console:
        loggers.append(ConsoleLogger(total_epochs, stream=console_stream))
    loggers.append(CSVLogger(run_dir, resume=resume))
    if use_wandb:
        # Imported here so that `import trainforge.logging` never pulls in wandb.
        from trainforge.logging.wandb_logger import WandbLogger

        loggers.append(
            WandbLogger(
                project=wandb_project or DEFAULT_WANDB_PROJECT,
                entity=wandb_entity,
                run_name=run_name,
                notes=notes,
                tags=tags,
                run_dir=run_dir,
            )
        )
    return MultiLogger(loggers)
