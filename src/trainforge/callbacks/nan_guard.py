"""The NaN/Inf guard: skip optimizer steps whose loss or gradient norm is not finite, roll back after a streak.

It is on by default (``TrainingConfig.nan_guard``). Unlike the other callbacks it is called by the loop itself,
because it decides whether an optimizer step happens; it keeps no state of its own beyond the last good snapshot,
so resume stays exact: its counters live in ``TrainState`` (``skipped_steps``, ``nan_streak``, ``nan_rollbacks``).

Per step:
  * ``finite(loss, grad_norm)``: ``isfinite`` over the window loss and the gradient norm that clipping already
    computed. In one process the loop reads the two values on the host (a CPU tensor's read is no sync); with a
    fused optimizer on a GPU the decision stays on the device (``decides_on_device``): the fused kernels skip a bad
    step themselves and the loop reads the decisions with its next log line, so the guard adds no sync per step;
  * a bad step is skipped (no optimizer step; the schedule still advances, as with GradScaler's skipped steps),
    recorded with its epoch and micro-batch indices, and left out of the epoch's loss;
  * ``nan_max_consecutive`` bad steps in a row roll the run back to the last good snapshot (model, optimizer,
    scheduler, scaler, counters, RNG; refreshed at every checkpoint and epoch end, held on the CPU), with the
    learning rate multiplied by ``nan_lr_factor``;
  * a streak after ``nan_max_rollbacks`` rollbacks stops the run: the last good state is restored (and saved
    when ``checkpoint_dir`` is set) and :class:`NonFiniteTrainingError` says where it happened and what to try.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainforge.errors import TrainforgeError

if TYPE_CHECKING:
    from trainforge.trainer.state import TrainState


class NonFiniteTrainingError(TrainforgeError, FloatingPointError):
    """Training kept producing NaN/Inf losses or gradients after every rollback the config allows."""


def clone_tree(obj: Any, device: torch.device | str | None = None) -> Any:
    """A deep copy of nested dicts/lists/tuples whose tensors are cloned (optionally onto ``device``).

    Optimizer and model state dicts hold *references* to the live tensors, and ``load_state_dict`` may alias the
    tensors it is given, so a snapshot is cloned both when taken and when restored.
    """
    if isinstance(obj, Tensor):
        t = obj.detach()
        return t.to(device, copy=True) if device is not None else t.clone()
    if isinstance(obj, dict):
        return {k: clone_tree(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clone_tree(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(clone_tree(v, device) for v in obj)
    return obj


def scale_lr_in_payload(payload: dict[str, Any], factor: float) -> None:
    """Multiply the learning rate held in a checkpoint payload (optimizer groups and a LambdaLR-style scheduler)."""
    for group in payload["optimizer"]["param_groups"]:
        for key in ("lr", "initial_lr"):
            if isinstance(group.get(key), (int, float)):
                group[key] = group[key] * factor
    sched = payload.get("scheduler") or {}
    for key in ("base_lrs", "_last_lr"):
        if isinstance(sched.get(key), list):
            sched[key] = [v * factor for v in sched[key]]


def decides_on_device(optimizer: torch.optim.Optimizer, distributed: bool, scaled: bool) -> bool:
    """Whether the guard can leave its per-step decision on the device: one process, no GradScaler (it reads its
    own flag every step anyway), and an optimizer whose fused kernels take GradScaler's ``found_inf`` flag and then
    leave parameters, moments and step counts as they were. trainforge builds a fused AdamW on CUDA, foreach on the
    CPU, where reading a value is no sync and the host decision costs nothing."""
    fused = bool(optimizer.defaults.get("fused")) and getattr(optimizer, "_step_supports_amp_scaling", False)
    return fused and not distributed and not scaled


def total_grad_norm(params: Sequence[nn.Parameter]) -> Tensor:
    """The 2-norm of all gradients (what clipping computes), for runs without clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, 2.0, error_if_nonfinite=False, foreach=True)


class NanGuard:
    """Decides what a non-finite step means; the loop calls it, the trainer gives it snapshot/restore functions.

    Args:
        max_consecutive: bad steps in a row that trigger a rollback.
        lr_factor: learning-rate multiplier applied at each rollback (None: unchanged).
        max_rollbacks: rollbacks allowed before a further streak stops the run.
        snapshot: builds the current state as a checkpoint payload (the trainer's ``_payload``).
        restore: loads a payload into model/optimizer/scheduler/scaler/state; returns the RNG state to restore
            at the matching point of the loop (exactly what a resume does).
        say: prints a line for the user (above the progress bar).
    """

    def __init__(
        self,
        max_consecutive: int,
        lr_factor: float | None,
        max_rollbacks: int,
        snapshot: Callable[[TrainState], dict[str, Any]],
        restore: Callable[[dict[str, Any], TrainState], dict[str, Any] | None],
        say: Callable[[str], None] = print,
    ) -> None:
        self.max_consecutive = max_consecutive
        self.lr_factor = lr_factor
        self.max_rollbacks = max_rollbacks
        self._snapshot = snapshot
        self._restore = restore
        self._say = say
        self.last_good: dict[str, Any] | None = None

    # ------------------------------------------------------------------ per step
    @staticmethod
    def finite(loss: Tensor, grad_norm: Tensor | None) -> Tensor:
        """A 0-d bool tensor on the device, True when the loss (and grad norm, when given) are finite. No sync."""
        ok = torch.isfinite(loss)
        if grad_norm is not None:
            ok = ok & torch.isfinite(grad_norm)
        return ok

    def record_bad(self, state: TrainState, first_batch: int, n_batches: int, loss: Tensor | float,
                   grad_norm: Tensor | None, step: int | None = None) -> str:
        """Record skipped step ``step`` (default: ``global_step``, already advanced); return "skip", "rollback" or
        "stop"."""
        step = state.global_step if step is None else step
        record = {
            "step": step,
            "epoch": state.epoch + 1,
            "batches": [first_batch, first_batch + n_batches],  # micro-batch indices in the epoch, end exclusive
            "loss_finite": math.isfinite(float(loss)),
            "grad_norm_finite": None if grad_norm is None else bool(torch.isfinite(grad_norm)),
        }
        state.skipped_steps.append(record)
        state.nan_streak += 1
        what = "loss" if not record["loss_finite"] else "gradient norm"
        self._say(
            f"[trainforge] step {step}: non-finite {what}; optimizer step skipped (epoch "
            f"{record['epoch']}, micro-batches {first_batch}..{first_batch + n_batches - 1}; "
            f"{state.nan_streak} in a row, {len(state.skipped_steps)} skipped so far)"
        )
        if state.nan_streak < self.max_consecutive:
            return "skip"
        return "rollback" if state.nan_rollbacks < self.max_rollbacks and self.last_good is not None else "stop"

    # ------------------------------------------------------------------ snapshots
    def remember(self, state: TrainState) -> None:
        """Refresh the last good snapshot (called at fit start, after checkpoints and at epoch ends)."""
        if state.nan_streak == 0:
            self.last_good = clone_tree(self._snapshot(state), "cpu")

    def rollback(self, state: TrainState) -> dict[str, Any] | None:
        """Restore the last good snapshot with a lowered learning rate; return the RNG state to restore."""
        assert self.last_good is not None
        if self.lr_factor is not None:
            scale_lr_in_payload(self.last_good, self.lr_factor)  # cumulative: the snapshot keeps the lower lr
        kept = (list(state.skipped_steps), state.nan_rollbacks + 1)
        rng = self._restore(clone_tree(self.last_good), state)
        state.skipped_steps, state.nan_rollbacks = kept
        state.nan_streak = 0
        lr = "unchanged" if self.lr_factor is None else f"x{self.lr_factor} (now {_lr_of(self.last_good):.3g})"
        self._say(
            f"[trainforge] {self.max_consecutive} non-finite steps in a row: rolled back to the last good state "
            f"(step {state.global_step}, epoch {state.epoch} completed + {state.batches_in_epoch} micro-batches), "
            f"learning rate {lr}; rollback {state.nan_rollbacks} of {self.max_rollbacks}."
        )
        return rng

    def give_up(self, state: TrainState) -> dict[str, Any] | None:
        """Restore the last good state (when there is one) before the run stops; return the RNG state."""
        if self.last_good is None:
            return None
        kept = (list(state.skipped_steps), state.nan_rollbacks)
        rng = self._restore(clone_tree(self.last_good), state)
        state.skipped_steps, state.nan_rollbacks = kept
        state.nan_streak = 0
        return rng

    def error(self, state: TrainState, saved: str | None) -> NonFiniteTrainingError:
        """The error that stops the run: where the bad steps were, where the good state is, what to try."""
        bad = state.skipped_steps[-self.max_consecutive:]
        where = ", ".join(f"step {r['step']} (epoch {r['epoch']}, micro-batches {r['batches'][0]}.."
                          f"{r['batches'][1] - 1})" for r in bad)
        kept = f", saved to {saved!r}" if saved else " (set checkpoint_dir to keep it on disk)"
        return NonFiniteTrainingError(
            f"Training stopped: {self.max_consecutive} optimizer steps in a row had a NaN/Inf loss or gradient norm "
            f"after {state.nan_rollbacks} rollback(s) (nan_max_rollbacks={self.max_rollbacks}); last bad: {where}. "
            f"The model holds the last good state (step {state.global_step}){kept}. Fix: lower learning_rate "
            "(or set nan_lr_factor), check the data at those micro-batches (inf/NaN inputs, all-ignored labels), "
            "or use precision='fp32' / a smaller max_grad_norm."
        )


def _lr_of(payload: dict[str, Any]) -> float:
    groups = payload["optimizer"]["param_groups"]
    return float(groups[0]["lr"]) if groups else float("nan")


__all__ = ["NanGuard", "NonFiniteTrainingError", "clone_tree", "decides_on_device", "scale_lr_in_payload",
           "total_grad_norm"]
