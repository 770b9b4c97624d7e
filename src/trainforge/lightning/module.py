"""``TaskLightningModule``: a user's ``nn.Module`` plus a ``TaskSpec`` as a ``LightningModule``.

It uses trainforge's own pieces, so a Lightning run means what a ``Trainer`` run means: the ``ModelAdapter``
(which forward to call, where the logits are), the Trainer's step math (``trainer/step_math.py``: the loss of an
optimizer step is the window's loss sum over its valid targets), ``MetricAccumulator`` metrics,
``build_optimizer`` / ``build_scheduler`` (AdamW groups, warmup and decay per optimizer step), a ``TrainState`` for
the history, and the one rule for best and early stopping (``Monitor.improved``, the ``EarlyStopping`` callback).

How the window's loss reaches Lightning's automatic optimization: the window's target count is known only after
its last micro-batch, while each micro-batch's backward runs before that. So each micro-batch returns its loss sum
over a provisional divisor (the previous window's), and ``on_before_optimizer_step`` (after the gradients are
complete and unscaled, before clipping) rescales the gradients to the window's own divisor. Gradients are linear in
the loss, so the step is the Trainer's: sum(per-target losses of the window, all ranks) / count(valid targets).
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
from trainforge.tasks.adapter import ModelAdapter
from trainforge.tasks.metrics import MetricAccumulator
from trainforge.trainer.early_stopping import EarlyStopping
from trainforge.trainer.monitor import Monitor
from trainforge.trainer.optim import build_optimizer, build_scheduler
from trainforge.trainer.state import TrainState
from trainforge.trainer.step_math import window_divisor


class TaskLightningModule(L.LightningModule):
    """Wraps ``model`` for ``task_spec``; ``state`` collects one history row per epoch (the ``Trainer``'s columns),
    the best epoch and why the run stopped early."""

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
        self.state = TrainState()  # epoch rows, best epoch, stop reason; epoch sums (train/loss)
        self.monitor: Monitor | None = None  # resolved and checked at fit start (is there validation data?)
        self.early_stopping: EarlyStopping | None = None  # the Trainer's callback, with the same monitor
        self._probed = False
        self._val: MetricAccumulator | None = None
        self._val_row: dict[str, float] = {}
        # The current accumulation window: its local loss sum and target count, and the divisor its micro-batches
        # used (the previous window's; None before the first micro-batch of the fit).
        self._window_loss = torch.zeros((), dtype=torch.float64)
        self._window_targets = torch.zeros((), dtype=torch.int64)
        self._divisor: Tensor | None = None
        self._started = 0.0

    # (the names run files, the coordinator and users read)
    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    @property
    def best_metric(self) -> float | None:
        return self.state.best_metric

    @property
    def best_epoch(self) -> int | None:
        return self.state.best_epoch

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
        self._set_monitor(Monitor.for_run(self.cfg, self.task, _has_validation(self.trainer),
                                          what="TrainingCoordinator.train"))

    def _set_monitor(self, monitor: Monitor) -> None:
        self.monitor = monitor
        patience = self.cfg.early_stopping_patience
        self.early_stopping = EarlyStopping(patience, monitor=monitor) if patience is not None else None

    def on_train_epoch_start(self) -> None:
        self.state.reset_epoch_sums(self.device)
        self._window_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self._window_targets = torch.zeros((), dtype=torch.int64, device=self.device)
        self._val_row = {}
        self._started = time.perf_counter()

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        self._probe(batch)
        labels = self.task.targets(batch)
        count = self.task.count_targets(labels)
        out = self.adapter.forward(self.forward_model, batch, labels)
        loss_sum = self.adapter.loss_sum(out, labels, count)
        detached = loss_sum.detach().double()
        self.state.add_to_epoch(detached, count)
        self._window_loss += detached
        self._window_targets += count
        k = self.trainer.accumulate_grad_batches
        if self._divisor is None:  # the fit's first micro-batch: k of it, over all ranks (one collective per fit)
            self._divisor = window_divisor(self._reduce(count) * k, self.trainer.world_size)
        # Lightning divides what this returns by k; on_before_optimizer_step corrects the provisional divisor.
        return loss_sum * (k / self._divisor)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The window is complete: rescale its gradients from the provisional divisor to its own (the Trainer's
        step math), before Lightning clips them. Logs the window's loss as the step's ``train/loss``."""
        assert self._divisor is not None
        divisor = window_divisor(self._reduce(self._window_targets), self.trainer.world_size)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, self._divisor / divisor)  # (a float 0-d tensor: keeps each grad's dtype)
        self._divisor = divisor
        loss = self._window_loss / self._window_targets.clamp(min=1)
        self.log("train/loss", loss.float(), prog_bar=True, on_step=True, on_epoch=False)
        self._window_loss = torch.zeros_like(self._window_loss)
        self._window_targets = torch.zeros_like(self._window_targets)

    def on_train_epoch_end(self) -> None:
        sums = self._reduce(torch.stack([t.double() for t in self.state.epoch_sums()]))
        n = int(sums[1].item())
        self.state.epoch, self.state.global_step = self.current_epoch + 1, int(self.global_step)
        row: dict[str, Any] = {"epoch": self.state.epoch, "step": self.state.global_step,
                               "train/loss": float(sums[0].item()) / n if n else math.nan}
        row.update(self._val_row)
        optimizers = self.trainer.optimizers
        row["lr"] = float(optimizers[0].param_groups[0]["lr"]) if optimizers else float("nan")
        elapsed = time.perf_counter() - self._started
        row["epoch_time_s"] = elapsed
        row["tokens_per_s"] = n / max(elapsed, 1e-9)
        if self.monitor is None:  # (fit started without on_fit_start, e.g. a test driving the hooks)
            self._set_monitor(Monitor.for_run(self.cfg, self.task, "val/loss" in row,
                                              what="TrainingCoordinator.train"))
        assert self.monitor is not None
        if (bad := self.monitor.non_finite(row)) is not None:
            row["non_finite"] = bad
        self.state.history.append(row)
        self.state.last_metrics = row
        self._end_epoch(row, self.monitor)

    def _end_epoch(self, row: dict[str, Any], monitor: Monitor) -> None:
        """Best epoch and early stopping as the Trainer decides them: ``Monitor.improved`` (NaN never improves,
        ``min_delta``), then the ``EarlyStopping`` callback on the same state."""
        value = monitor.value(row)
        if monitor.improved(self.state.best_metric, value):
            self.state.best_metric, self.state.best_epoch = value, self.state.epoch
        if self.early_stopping is not None:
            self.early_stopping.on_epoch_end(self.state)
        if self.state.stop_requested:
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
        """Sum over processes (Lightning's strategy collective; identity in one process). ``t`` is left as it is
        (the collective itself works in place)."""
        if self.trainer.world_size > 1:
            return self.trainer.strategy.reduce(t.clone(), reduce_op="sum")  # type: ignore[no-any-return]
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
