"""Early stopping: ask the loop to stop when the monitored metric stops improving."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainforge.trainer.state import TrainState


class EarlyStopping:
    """Stops after ``patience`` epochs without an improvement larger than ``min_delta``.

    Args:
        patience: epochs without improvement that are tolerated.
        min_delta: the smallest change that counts as an improvement.
        monitor: the metric (a key of the epoch row); None → ``val/loss`` when present, else ``train/loss``.
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, monitor: str | None = None, mode: str = "min") -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = None
        self.bad_epochs = 0

    def on_epoch_end(self, state: TrainState) -> None:
        row = state.history[-1]
        key = self.monitor or ("val/loss" if "val/loss" in row else "train/loss")
        value = row.get(key)
        if value is None:
            return
        value = float(value)
        if self.best is None or self._improved(value, self.best):
            self.best = value
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            state.request_stop(
                f"early stopping: {key} did not improve by more than {self.min_delta} for {self.patience} epochs "
                f"(best {self.best:.6g})"
            )

    def _improved(self, value: float, best: float) -> bool:
        if self.mode == "max":
            return value > best + self.min_delta
        return value < best - self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.bad_epochs = int(state["bad_epochs"])
