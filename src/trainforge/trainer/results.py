"""The results dict returned by ``Trainer.train`` (DESIGN item 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from trainforge.checkpoint.manager import BEST, list_checkpoints
from trainforge.trainer.state import TrainState


def build_results(
    state: TrainState,
    model: nn.Module,
    *,
    final_state: dict[str, Any] | None = None,
    checkpoint_dir: str | None,
    run_dir: Path,
    training_time_s: float,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The quick reference's five keys plus extras; ``metrics_summary`` is a pandas DataFrame.

    ``final_state``: the final weights when ``model.state_dict()`` does not hold them whole (FSDP gathers them).
    """
    import pandas as pd  # imported here: pandas is slow to import and only needed once per run

    history = state.history
    paths = [str(p) for p in list_checkpoints(checkpoint_dir)] if checkpoint_dir else []
    best_file = Path(checkpoint_dir) / BEST if checkpoint_dir else None
    val_losses = [row["val/loss"] for row in history if "val/loss" in row]
    return {
        "loss_history": [float(row["train/loss"]) for row in history],
        "metrics_summary": pd.DataFrame(history),
        "best_epoch": state.best_epoch,
        "checkpoint_paths": paths,
        "final_model_state": final_state if final_state is not None
        else {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "val_loss_history": val_losses,
        "best_metric": state.best_metric,
        "best_step": state.best_step,  # set when the best evaluation was a mid-epoch one (eval_every_n_steps)
        "eval_history": [dict(row) for row in state.eval_history],  # the mid-epoch validation rows
        "best_checkpoint": str(best_file) if best_file is not None and best_file.exists() else None,
        "final_loss": float(history[-1]["train/loss"]) if history else None,
        "training_time_s": training_time_s,
        "global_step": state.global_step,
        "epochs_completed": state.epoch,
        "stop_reason": state.stop_reason,
        "run_dir": str(run_dir),
        **extras,
    }
