"""``RunFiles``: what a ``TrainingCoordinator`` run writes while it trains — the epoch rows (``metrics.csv`` in the
run directory, the runs database) and the checkpoints, named as every trainforge file is: ``epoch_N.ckpt`` holds
the state after N completed epochs (1-based), ``step_00000040.ckpt`` after 40 optimizer steps, ``best.ckpt`` the
best epoch by the monitored metric; ``keep_last_n`` rotates the epoch/step files (never ``best.ckpt``).

It subclasses Lightning's ``Checkpoint`` on purpose: Lightning runs ``Checkpoint`` callbacks' ``on_train_epoch_end``
after the LightningModule's, when :class:`~trainforge.lightning.module.TaskLightningModule` has appended the
epoch's row (train and validation metrics) and decided whether it is the best.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from trainforge.checkpoint.manager import epoch_path, step_path
from trainforge.config import TrainingConfig
from trainforge.errors import CheckpointError

__all__ = ["RunFiles"]

SUFFIX = ".ckpt"
BEST = "best" + SUFFIX


class RunFiles(Checkpoint):
    """Records each epoch row into ``loggers`` (trainforge loggers: CSV, runs database) and writes checkpoints.

    ``paths`` lists this run's checkpoint files that still exist (oldest first, ``best.ckpt`` last), never other
    files of the folder; ``errors`` the checkpoint writes that failed (``on_checkpoint_error="warn"``).
    """

    def __init__(self, cfg: TrainingConfig, loggers: list[Any]) -> None:
        super().__init__()
        self.cfg = cfg
        self.loggers = loggers
        self.directory = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
        self.periodic: list[Path] = []  # epoch and step files, in the order written (rotation order)
        self.best: Path | None = None
        self.errors: list[str] = []
        self._last_step = 0

    @property
    def paths(self) -> list[str]:
        files = [*self.periodic, *([self.best] if self.best is not None else [])]
        return [str(p) for p in files if p.exists()]

    # ------------------------------------------------------------------ hooks
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        every = self.cfg.checkpoint_every_n_steps
        step = int(trainer.global_step)
        if self.directory is None or not every or step == self._last_step or step % every:
            return  # (a micro-batch inside an accumulation window leaves the step unchanged)
        self._last_step = step
        self._save(trainer, step_path(self.directory, step).with_suffix(SUFFIX), periodic=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        history: list[dict[str, Any]] = getattr(pl_module, "history", [])
        if not history:
            return
        row = history[-1]
        epoch = int(row["epoch"])  # 1-based: the epochs completed
        if trainer.is_global_zero:
            for logger in self.loggers:
                logger.log_epoch(row, int(row.get("step", trainer.global_step)))
        if self.directory is None:
            return
        max_steps = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps > 0 else None
        last = (epoch >= self.cfg.epochs or trainer.should_stop
                or (max_steps is not None and trainer.global_step >= max_steps))
        if epoch % self.cfg.checkpoint_frequency == 0 or last:
            self._save(trainer, epoch_path(self.directory, epoch).with_suffix(SUFFIX), periodic=True)
        if self.cfg.save_best and getattr(pl_module, "best_epoch", None) == epoch:
            self._save(trainer, self.directory / BEST, periodic=False)

    # ------------------------------------------------------------------ writing
    def _save(self, trainer: L.Trainer, path: Path, *, periodic: bool) -> None:
        try:
            trainer.save_checkpoint(str(path))  # every rank calls it (collective); rank 0 writes, atomically
        except (OSError, RuntimeError) as exc:
            message = f"Writing checkpoint {str(path)!r} failed: {type(exc).__name__}: {exc}."
            if self.cfg.on_checkpoint_error == "stop":
                raise CheckpointError(f"{message} Training stopped (on_checkpoint_error='stop').") from exc
            self.errors.append(message)
            warnings.warn(f"{message} Training goes on (on_checkpoint_error='warn').", stacklevel=2)
            return
        if not periodic:
            self.best = path
            return
        if path in self.periodic:
            self.periodic.remove(path)
        self.periodic.append(path)
        self._rotate(trainer)

    def _rotate(self, trainer: L.Trainer) -> None:
        keep = self.cfg.keep_last_n
        if keep is None:
            return
        while len(self.periodic) > keep:
            old = self.periodic.pop(0)
            if trainer.is_global_zero:
                old.unlink(missing_ok=True)
