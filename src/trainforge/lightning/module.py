"""``TaskLightningModule``: a user's ``nn.Module`` plus a ``TaskSpec`` as a ``LightningModule``.

It uses trainforge's own pieces, so a Lightning run means what a ``Trainer`` run means: the ``ModelAdapter``
(which forward to call, where the logits are), the TaskSpec's token-normalised loss and ``MetricAccumulator``
metrics, and ``build_optimizer`` / ``build_scheduler`` (AdamW groups, warmup and decay per optimizer step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

try:
    import lightning as L
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("TrainingCoordinator needs PyTorch Lightning: pip install 'trainforge[lightning]' "
                      "(or use trainforge.Trainer, which needs no Lightning)") from exc

from trainforge.config import TrainingConfig
from trainforge.tasks import TaskSpec
from trainforge.tasks.metrics import MetricAccumulator
from trainforge.trainer.adapter import ModelAdapter
from trainforge.trainer.monitor import Monitor
from trainforge.trainer.optim import build_optimizer, build_scheduler


class TaskLightningModule(L.LightningModule):
    """Wraps ``model`` for ``task_spec``; collects one history row per epoch (the ``Trainer``'s columns)."""

    forward_model: nn.Module

    def __init__(self, model: nn.Module, task_spec: TaskSpec, training_config: TrainingConfig,
                 forward_model: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        # What runs forward (e.g. ``torch.compile(model)``), kept out of the registered submodules so that
        # checkpoints and state dicts hold the plain model's keys once.
        self.__dict__["forward_model"] = forward_model if forward_model is not None else model
        self.task = task_spec
        self.cfg = training_config
        self.adapter = ModelAdapter(model, task_spec)
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.monitor: Monitor | None = None  # resolved and checked at fit start (is there validation data?)
        self._probed = False
        self._since_best = 0
        self._val: MetricAccumulator | None = None
        self._val_row: dict[str, float] = {}
        self._loss_sum = torch.zeros((), dtype=torch.float64)
        self._targets = torch.zeros((), dtype=torch.int64)
        self._started = 0.0

    def forward(self, batch: Mapping[str, Tensor]) -> Any:
        return self.adapter.forward(self.forward_model, batch, None).logits

    def _probe(self, batch: Mapping[str, Tensor]) -> None:
        """The Trainer's checks before the first step: the batch against the task, then the forward's mode."""
        if not self._probed:
            self.task.validate_batch(batch)
            self.adapter.probe(self.model, batch, self.task.targets(batch))
            self._probed = True

    # ------------------------------------------------------------------ training
    def on_fit_start(self) -> None:
        """Resolve the monitored metric as the Trainer does (before step 0): a name the run does not log fails."""
        self.monitor = Monitor.for_run(self.cfg, self.task, _has_validation(self.trainer),
                                       what="TrainingCoordinator.train")

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._targets = torch.zeros((), dtype=torch.int64, device=self.device)
        self._val_row = {}
        self._started = time.perf_counter()

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        self._probe(batch)
        labels = self.task.targets(batch)
        count = self.task.count_targets(labels)
        out = self.adapter.forward(self.forward_model, batch, labels)
        loss_sum = self.adapter.loss_sum(out, labels, count)
        self._loss_sum += loss_sum.detach().double()
        self._targets += count
        # Token-normalised per micro-batch; Lightning averages over accumulate_grad_batches (the same window
        # loss as trainforge's when micro-batches hold equal target counts, e.g. fixed-length LM blocks).
        loss = loss_sum / count.clamp(min=1)
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_end(self) -> None:
        sums = torch.stack([self._loss_sum, self._targets.double()])
        sums = self._reduce(sums)
        n = int(sums[1].item())
        row: dict[str, Any] = {"epoch": self.current_epoch + 1, "step": int(self.global_step),
                               "train/loss": float(sums[0].item()) / n if n else math.nan}
        row.update(self._val_row)
        optimizers = self.trainer.optimizers
        row["lr"] = float(optimizers[0].param_groups[0]["lr"]) if optimizers else float("nan")
        elapsed = time.perf_counter() - self._started
        row["epoch_time_s"] = elapsed
        row["tokens_per_s"] = n / max(elapsed, 1e-9)
        if self.monitor is None:  # (fit started without on_fit_start, e.g. a test driving the hooks)
            self.monitor = Monitor.for_run(self.cfg, self.task, "val/loss" in row, what="TrainingCoordinator.train")
        if (bad := self.monitor.non_finite(row)) is not None:
            row["non_finite"] = bad
        self.history.append(row)
        self._track_best(row, self.monitor)

    def _track_best(self, row: dict[str, Any], monitor: Monitor) -> None:
        """Best epoch and early stopping under the Trainer's rule (``Monitor.improved``: NaN never improves)."""
        value = monitor.value(row)
        if value is None:
            return
        if monitor.improved(self.best_metric, value):
            self.best_metric, self.best_epoch, self._since_best = value, int(row["epoch"]), 0
        else:
            self._since_best += 1
            patience = self.cfg.early_stopping_patience
            if patience is not None and self._since_best >= patience:
                self.trainer.should_stop = True

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val = self.task.new_metrics()

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._probe(batch)
        assert self._val is not None
        labels = self.task.targets(batch)
        out = self.adapter.forward(self.forward_model, batch, labels)
        if out.logits is None:  # a loss-only model: its loss weighted by the target count
            count = self.task.count_targets(labels)
            assert out.loss is not None
            self._val.update_loss(out.loss.float() * count, count)
        else:
            self._val.update(out.logits, labels)

    def on_validation_epoch_end(self) -> None:
        if self._val is None or self.trainer.sanity_checking:
            return
        values = self._val.compute_from(self._reduce(self._val.tensors(self.device)))
        self._val_row = {f"val/{k}": v for k, v in values.items()}
        for key, value in self._val_row.items():
            self.log(key, value, prog_bar=key == "val/loss", sync_dist=False)

    def _reduce(self, t: Tensor) -> Tensor:
        """Sum over processes (Lightning's strategy collective; identity in one process)."""
        if self.trainer.world_size > 1:
            return self.trainer.strategy.reduce(t, reduce_op="sum")  # type: ignore[no-any-return]
        return t

    # ------------------------------------------------------------------ optimizer
    def configure_optimizers(self) -> Any:
        # The foreach AdamW (not fused): Lightning's mixed-precision plugins cannot clip a fused optimizer's
        # gradients (it unscales them internally). The same update rule and parameter groups.
        optimizer = build_optimizer(self.model, self.cfg, torch.device("cpu"))
        steps = float(self.trainer.estimated_stepping_batches)  # inf for data of unknown length
        scheduler = build_scheduler(optimizer, self.cfg, int(steps) if math.isfinite(steps) and steps > 0 else None)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _has_validation(trainer: L.Trainer) -> bool:
    """Whether this fit validates: validation batches are allowed and the data module has validation data."""
    if not trainer.limit_val_batches:
        return False
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None:
        return False
    if hasattr(datamodule, "val_dataset"):  # trainforge's SimpleDataModule
        return datamodule.val_dataset is not None
    if type(datamodule).val_dataloader is L.LightningDataModule.val_dataloader:  # not overridden
        return False
    return bool(datamodule.val_dataloader())
