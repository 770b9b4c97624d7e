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
        log_artifacts: bool = True,
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
        self._wandb = wandb
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self._log_artifacts = log_artifacts
        self._rows: list[dict[str, Any]] = []

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
        scalars = _scalars(row)
        self._run.log(scalars, step=int(step))
        epoch = scalars.get("epoch")
        # Re-logging an epoch (after a resume) replaces it and everything after it, as in metrics.csv.
        self._rows = [r for r in self._rows if not isinstance(epoch, int) or r.get("epoch", 0) < epoch]
        self._rows.append(scalars)

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Put the scalar entries of ``summary`` into the run summary (paths as strings; the rest skipped), add
        the epoch rows as the ``epochs`` table, and (``log_artifacts``) log two artifacts: ``<run>-config``
        (``config.yaml``, ``task_spec.json``, ``model_config.json`` of the run directory) and ``<run>-model``
        (the best checkpoint, else the newest checkpoint file, plus the export bundle directory when there is one).
        """
        self._run.summary.update(_scalars(summary))
        if self._rows:
            columns: list[Any] = list(dict.fromkeys(k for r in self._rows for k in r))
            table = self._wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in self._rows])
            self._run.summary["epochs"] = table
        if self._log_artifacts:
            self._artifacts(summary)

    def _artifacts(self, summary: dict[str, Any]) -> None:
        name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(self._run.name or self._run.id))
        if self._run_dir is not None:
            files = [self._run_dir / f for f in ("config.yaml", "task_spec.json", "model_config.json")]
            files = [f for f in files if f.is_file()]
            if files:
                art = self._wandb.Artifact(f"{name}-config", type="config")
                for f in files:
                    art.add_file(str(f))
                self._run.log_artifact(art)
        model_file = summary.get("best_checkpoint") or summary.get("last_checkpoint")
        export_dir = summary.get("export_dir")
        model_path = Path(model_file) if isinstance(model_file, (str, os.PathLike)) else None
        export_path = Path(export_dir) if isinstance(export_dir, (str, os.PathLike)) else None
        has_model = model_path is not None and model_path.is_file()
        has_export = export_path is not None and export_path.is_dir()
        if has_model or has_export:
            art = self._wandb.Artifact(f"{name}-model", type="model",
                                       metadata={k: v for k, v in _scalars(summary).items() if k != "run_dir"})
            if has_model:
                art.add_file(str(model_path))
            if has_export:
                art.add_dir(str(export_path), name="export")
            self._run.log_artifact(art)

    def close(self) -> None:
        """Finish the run once; later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        self._run.finish()
