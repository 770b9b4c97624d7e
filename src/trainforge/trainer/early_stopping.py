"""Early stopping: ask the loop to stop when the monitored metric stops improving."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainforge.config.schema import monitored_metric
from trainforge.logging.base import MID_EPOCH
from trainforge.trainer.monitor import Monitor

if TYPE_CHECKING:
    from trainforge.trainer.state import TrainState


class EarlyStopping:
    """Stops after ``patience`` evaluations without an improvement larger than ``min_delta``.

    Evaluations are the epoch ends and, with ``TrainingConfig(eval_every_n_steps=N)``, the mid-epoch validations
    too (each one counts; a stop asked for mid-epoch ends the run at that step, with a step checkpoint).
    "Improvement" is :meth:`Monitor.improved`, the rule ``best.pt`` follows too: a NaN or infinite value is never
    one, so a diverged epoch counts as an epoch without improvement.

    Args:
        patience: epochs without improvement that are tolerated.
        min_delta: the smallest change that counts as an improvement.
        monitor: the metric (a key of the epoch row) or a resolved :class:`Monitor` (then ``min_delta`` and
            ``mode`` are its own); None → ``val/loss`` when the run validates, else ``train/loss``.
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, monitor: str | Monitor | None = None,
                 mode: str = "min") -> None:
        self.patience = patience
        self._monitor = monitor if isinstance(monitor, Monitor) else None
        self.monitor = monitor.name if isinstance(monitor, Monitor) else monitor
        self.min_delta = monitor.min_delta if isinstance(monitor, Monitor) else min_delta
        self.mode = monitor.mode if isinstance(monitor, Monitor) else mode
        self.best: float | None = None
        self.bad_epochs = 0

    def on_eval_end(self, state: TrainState) -> None:
        """A mid-epoch validation row counts as one evaluation (the epoch end's is counted at EPOCH_END)."""
        if state.last_metrics.get(MID_EPOCH):
            self._judge(state, state.last_metrics)

    def on_epoch_end(self, state: TrainState) -> None:
        row = state.history[-1]
        if state.eval_history and state.eval_history[-1]["step"] == row.get("step"):
            return  # a stream that ended at a mid-epoch validation: its row is that one, already counted
        self._judge(state, row)

    def _judge(self, state: TrainState, row: dict[str, Any]) -> None:
        if self._monitor is None:  # resolved at the first row: whether the run validates is known there
            name = monitored_metric(self.monitor, "val/loss" in row)
            if self.monitor is None and "val/loss" not in row:  # named validation sets: the first one's loss
                name = next((k for k in row if k.startswith("val/") and k.endswith("/loss")), name)
            self._monitor = Monitor(name, self.mode, self.min_delta)
        value = self._monitor.value(row)
        if value is None:
            return
        if self._monitor.improved(self.best, value):
            self.best = value
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            best = f"best {self.best:.6g}" if self.best is not None else "no finite value yet"
            state.request_stop(
                f"early stopping: {self._monitor.name} did not improve by more than {self.min_delta} for "
                f"{self.patience} evaluations ({best})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.bad_epochs = int(state["bad_epochs"])
