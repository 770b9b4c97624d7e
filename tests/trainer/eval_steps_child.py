"""The run that ``test_eval_steps.py`` kills between two mid-epoch validations, and its uninterrupted twin.

``python eval_steps_child.py DIR [KILL_AT_STEP]`` trains a tiny GPT (dropout on: the RNG must resume exactly) for 2
epochs of 10 steps with ``eval_every_n_steps=3`` and a step checkpoint every 2 steps, in ``DIR`` with
``resume_from="auto"``. With ``KILL_AT_STEP`` the process SIGKILLs itself at the end of that step (after every
checkpoint before it is committed); otherwise it writes what the tests compare to ``DIR/outcome.pt``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch

# Run as a script (a subprocess of the tests, any working directory): the repository root, for tests.helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers import lm_task, noisy_lm_blocks, tiny_gpt  # noqa: E402

# Columns that measure time, not training: they differ between any two runs.
CLOCK_KEYS = ("epoch_time_s", "tokens_per_s")


class KillAt:
    """SIGKILL this process at the end of step ``step``. Observing CHECKPOINT_SAVED makes each save wait for its
    commit, so the step checkpoints before the kill are on disk (the resume starts from the last one)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.saved: list[str] = []

    def on_checkpoint_saved(self, state: Any) -> None:
        self.saved.append(str(state.checkpoint_path))

    def on_step_end(self, state: Any) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def train(directory: Path, kill_at: int | None = None, **overrides: Any) -> dict[str, Any]:
    from trainforge import Trainer, TrainingConfig

    model, model_cfg = tiny_gpt(dropout=0.1, seed=1)
    settings: dict[str, Any] = dict(
        epochs=2, batch_size=4, learning_rate=1e-2, eval_every_n_steps=3, checkpoint_every_n_steps=2,
        early_stopping_patience=4, checkpoint_dir=str(directory / "ck"), output_dir=str(directory / "run"),
        resume_from_checkpoint="auto", progress_bar=False, log_every_n_steps=1, plots=False, track_runs=False)
    settings.update(overrides)
    callbacks = [KillAt(kill_at)] if kill_at is not None else []
    train_data, val_data = noisy_lm_blocks()
    return Trainer(model, model_cfg, TrainingConfig(**settings), lm_task(), callbacks=callbacks).train(train_data, val_data)


def outcome(results: dict[str, Any]) -> dict[str, Any]:
    """What an uninterrupted and a resumed run must agree on, bitwise."""
    best = results["best_checkpoint"]
    return {
        "weights": results["final_model_state"],
        "history": [{k: v for k, v in row.items() if k not in CLOCK_KEYS}
                    for row in results["metrics_summary"].to_dict("records")],
        "eval_history": results["eval_history"],
        "best": (results["best_metric"], results["best_epoch"], results["best_step"]),
        "best_weights": torch.load(best, weights_only=False)["model"] if best else None,
        "stop_reason": results["stop_reason"],
    }


if __name__ == "__main__":
    torch.set_num_threads(1)  # as the test process (tests/conftest.py): the same kernels, the same sums
    out = Path(sys.argv[1])
    result = train(out, int(sys.argv[2]) if len(sys.argv) > 2 else None)
    torch.save(outcome(result), out / "outcome.pt")
