"""``TrainState``: the counters and history that, with the model/optimizer/RNG states, make a run resumable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class TrainState:
    """Progress of one run. Epoch numbers are 1-based in every output; ``epoch`` counts completed epochs."""

    epoch: int = 0
    global_step: int = 0  # optimizer steps taken
    batches_in_epoch: int = 0  # micro-batches of the current epoch already trained on
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    eval_history: list[dict[str, Any]] = field(default_factory=list)  # mid-epoch validation rows (eval_every_n_steps)
    best_metric: float | None = None
    best_epoch: int | None = None  # 1-based; for a mid-epoch best, the epoch it happened in
    best_step: int | None = None  # the step of a mid-epoch best (None: the best is an epoch end's)
    # Running sums of the current epoch in two parts; read them through ``epoch_sums``/``epoch_sums_on_host``.
    # The device part takes tensors, so the hot loop never syncs for them; the host part takes the values the
    # loop has read anyway (the step guard reads every step's loss in one process), so they cost no kernel.
    epoch_loss_sum: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    epoch_targets: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))
    epoch_loss_host: float = 0.0
    epoch_targets_host: int = 0
    # Loaded sums sit in the device part; a run that adds host values moves them to the host part first, so the
    # additions happen in the uninterrupted run's order (float sums are not associative: exact resume).
    _loaded_on_device: bool = field(default=False, repr=False)
    # Not saved: per-process facts and the last step's numbers for callbacks.
    stop_requested: bool = False
    stop_reason: str | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None
    exception: BaseException | None = None
    # RNG states a resume or a rollback restored, put back at the loop's matching point (then None).
    pending_rng: dict[str, Any] | None = field(default=None, repr=False)

    def request_stop(self, reason: str) -> None:
        """Ask the loop to finish after the current epoch's bookkeeping (callbacks use this)."""
        self.stop_requested = True
        self.stop_reason = reason

    def add_to_epoch(self, loss_sum: Tensor | float, targets: Tensor | int) -> None:
        """Add one step's loss sum and target count: Python numbers to the host part, tensors to the device part."""
        if isinstance(loss_sum, float):
            if self._loaded_on_device:  # once after a resume: one read of the loaded sum
                self.epoch_loss_host, self._loaded_on_device = float(self.epoch_loss_sum), False
                self.epoch_loss_sum = torch.zeros_like(self.epoch_loss_sum)
            self.epoch_loss_host += loss_sum
        else:
            self.epoch_loss_sum += loss_sum
        if isinstance(targets, int):
            self.epoch_targets_host += targets
        else:
            self.epoch_targets += targets

    def epoch_sums(self) -> tuple[Tensor, Tensor]:
        """The epoch's loss sum (float64) and target count (int64) as tensors on the device (no sync)."""
        loss, targets = self.epoch_loss_sum, self.epoch_targets
        if self.epoch_loss_host:
            loss = loss + self.epoch_loss_host
        if self.epoch_targets_host:
            targets = targets + self.epoch_targets_host
        return loss, targets

    def epoch_sums_on_host(self) -> tuple[float, int]:
        """The epoch's loss sum and target count as Python numbers (reads the device part: a sync)."""
        return float(self.epoch_loss_sum) + self.epoch_loss_host, int(self.epoch_targets) + self.epoch_targets_host

    def reset_epoch_sums(self, device: torch.device) -> None:
        self.epoch_loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.epoch_targets = torch.zeros((), dtype=torch.int64, device=device)
        self.epoch_loss_host, self.epoch_targets_host = 0.0, 0
        self._loaded_on_device = False

    def state_dict(self) -> dict[str, Any]:
        loss_sum, targets = self.epoch_sums()
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "batches_in_epoch": self.batches_in_epoch,
            "history": [dict(row) for row in self.history],
            "eval_history": [dict(row) for row in self.eval_history],
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "epoch_loss_sum": loss_sum.detach().cpu(),
            "epoch_targets": targets.detach().cpu(),
            "stop_requested": self.stop_requested,
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.batches_in_epoch = int(state["batches_in_epoch"])
        self.history = [dict(row) for row in state["history"]]
        self.eval_history = [dict(row) for row in state.get("eval_history", [])]  # (older checkpoints: none)
        self.best_metric = state["best_metric"]
        self.best_epoch = state["best_epoch"]
        self.best_step = state.get("best_step")
        self.epoch_loss_sum = state["epoch_loss_sum"].to(device)
        self.epoch_targets = state["epoch_targets"].to(device)
        self.epoch_loss_host, self.epoch_targets_host = 0.0, 0
        self._loaded_on_device = True
        self.stop_requested = bool(state.get("stop_requested", False))
        self.stop_reason = state.get("stop_reason")
