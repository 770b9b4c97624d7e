"""Weights & Biases backend. ``wandb`` is imported only when a :class:`WandbLogger` is built.

``WANDB_MODE`` is honoured as wandb reads it (``offline`` writes the run under
``<run_dir>/wandb/offline-run-*/`` with no network; sync it later with ``wandb sync <dir>``).
Each logger owns its own run (``reinit="create_new"``), so two trainings in one process get two runs
and a run the user started themselves is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainforge.logging.csv_logger import to_jsonable

__all__ = ["WANDB_MISSING_MESSAGE", "WandbLogger"]

WANDB_MISSING_MESSAGE = (
    "W&B logging needs the 'wandb' package: pip install 'trainforge[wandb]' "
    "(or set use_wandb=False; metrics are always written to metrics.csv in the run directory)"
)


def _version_tuple(version: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def _scalar(value: Any) -> Any:
    """A loggable scalar: numbers/str/bool/None as is, paths as str, 0-d tensors via ``.item()``; else None."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            v = item()
        except (TypeError, ValueError, RuntimeError):  # more than one element
            return None
        return v if isinstance(v, (bool, int, float)) else None
    return None


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        s = _scalar(v)
        if s is not None:  # None and non-scalars (lists, tensors, frames) are left out
            out[k] = s
    return out


class WandbLogger:
    """Log to a W&B run: config, step metrics and epoch rows as history, the summary, then finish.

    Args:
        project: W&B project (the factory uses ``"trainforge"`` when none is given).
        entity: W&B user or team; ``None`` uses the account default.
        run_name: display name of the run.
        notes: free-text notes shown on the run page.
        tags: tags shown on the run page.
        run_dir: directory under which wandb creates its ``wandb/`` folder (the trainforge run dir).
        config: the initial run config (more can be added with :meth:`log_config`).

    Raises:
        ImportError: ``wandb`` is not installed (the message names the ``trainforge[wandb]`` extra).
        RuntimeError: ``wandb.init`` failed (e.g. not logged in); the message says how to go offline.
    """

    def __init__(
        self,
        project: str,
        entity: str | None = None,
        run_name: str | None = None,
        notes: str | None = None,
        tags: Sequence[str] | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ImportError(WANDB_MISSING_MESSAGE) from exc

        # "create_new" (wandb >= 0.19.10) gives each logger its own run without touching other live
        # runs; older wandb only knows reinit=True (finish the previous run, start a new one).
        new_reinit = _version_tuple(getattr(wandb, "__version__", "0")) >= (0, 19, 10)
        reinit: Any = "create_new" if new_reinit else True
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        try:
            self._run = wandb.init(
                project=project,
                entity=entity,
                name=run_name,
                notes=notes,
                tags=list(tags) if tags else None,
                # Absolute: wandb's service process resolves a relative dir against its own working directory,
                # which is wherever the first run of this Python process started.
                dir=os.path.abspath(run_dir) if run_dir is not None else None,
                config=to_jsonable(config) if config else None,
                reinit=reinit,
            )
        except Exception as exc:
            raise RuntimeError(
                f"wandb.init failed for project={project!r}, entity={entity!r}: {type(exc).__name__}: {exc}. "
                "Run `wandb login`, or set WANDB_MODE=offline to log without a network (sync later with "
                "`wandb sync`), or set use_wandb=False; metrics are always written to metrics.csv."
            ) from exc
        self._finished = False

    @property
    def run(self) -> Any:
        """The underlying ``wandb`` run object."""
        return self._run

    @property
    def run_dir_path(self) -> Path:
        """The local wandb run directory (``.../wandb/offline-run-*`` or ``.../wandb/run-*``)."""
        sync_dir = getattr(getattr(self._run, "settings", None), "sync_dir", None)
        if sync_dir:
            return Path(sync_dir)
        # Older wandb: run.dir is the run's files/ folder.
        return Path(self._run.dir).parent

    @property
    def run_url(self) -> str | None:
        """The run's web page, or None in offline mode."""
        url = getattr(self._run, "url", None)
        return url if isinstance(url, str) and url else None

    def log_config(self, config: dict[str, Any]) -> None:
        """Add ``config`` to the run config (later values replace earlier ones)."""
        self._run.config.update(to_jsonable(config), allow_val_change=True)

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Log step metrics to the run history at ``step``."""
        self._run.log(_scalars(metrics), step=int(step))

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Log the epoch row at ``step`` (the step of the epoch's last step log; W&B merges them)."""
        self._run.log(_scalars(row), step=int(step))

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Put the scalar entries of ``summary`` into the run summary (paths as strings; the rest skipped)."""
        self._run.summary.update(_scalars(summary))

    def close(self) -> None:
        """Finish the run once; later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        self._run.finish()
