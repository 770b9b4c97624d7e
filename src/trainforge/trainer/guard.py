"""``StepGuard``: the one owner of what a non-finite optimizer step means (``TrainingConfig.nan_guard``, on by default).

The loop calls it at four named points and knows nothing else of it:

  * ``check(window_loss, grad_norm)`` before the optimizer step: is the step finite? ``True``/``False`` decided on
    the host, or a 0-d bool tensor when the device decides (``decides_on_device``: a fused optimizer in one process;
    the fused kernels then skip a bad step themselves through GradScaler's ``found_inf`` protocol, so the guard adds
    no sync per step);
  * ``after_step(state, ok, ...)`` after it: a finite step's loss joins the epoch's sums; a bad one is recorded
    (step, epoch, micro-batch indices) and left out; ``nan_max_consecutive`` bad steps in a row roll the run back
    to the last good snapshot; a streak after ``nan_max_rollbacks`` rollbacks stops the run;
  * ``settle(state)`` before a log line, a step checkpoint and the end of an epoch: the device's pending decisions
    are read (one sync) and recorded in order, as the host decision would have;
  * ``remember(state)`` at fit start, after step checkpoints and at epoch ends: the last good snapshot (model,
    optimizer, schedule, scaler, counters, RNG; on the CPU), refreshed only outside a streak.

Learning-rate reduction goes through a public mechanism: the schedule's lambda multiplies by ``LrScale`` (see
``trainer/optim.py``), which a rollback lowers by ``nan_lr_factor``; the optimizer's own ``lr`` of the restored
state is scaled once, the schedule does the rest. The scale, the records and the streak are the guard's state,
saved in every checkpoint under ``"guard"``. A checkpoint written during a streak also carries the last good
snapshot, so a run resumed from it rolls back (or stops) exactly where the uninterrupted run does.

The stop path restores the last good state and saves it (never the non-finite one), and
:class:`NonFiniteTrainingError` names that checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import torch
from torch import Tensor, nn

from trainforge.checkpoint.rng import restore_rng
from trainforge.errors import TrainforgeError

if TYPE_CHECKING:
    from trainforge.trainer.state import TrainState

__all__ = ["LrScale", "NonFiniteTrainingError", "StepGuard", "clone_tree", "decides_on_device", "finite",
           "step_unless_flagged", "total_grad_norm"]


class NonFiniteTrainingError(TrainforgeError, FloatingPointError):
    """Training kept producing NaN/Inf losses or gradients after every rollback the config allows."""


class LrScale:
    """The factor the learning-rate schedule multiplies by: 1.0 until a rollback lowers it (``nan_lr_factor``)."""

    __slots__ = ("value",)

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


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


def finite(loss: Tensor, grad_norm: Tensor | None) -> Tensor:
    """A 0-d bool tensor on the device, True when the loss (and grad norm, when given) are finite. No sync."""
    ok = torch.isfinite(loss)
    if grad_norm is not None:
        ok = ok & torch.isfinite(grad_norm)
    return ok


def step_unless_flagged(optimizer: torch.optim.Optimizer, ok: Tensor) -> None:
    """``optimizer.step()``, skipped on the device when ``ok`` is False: GradScaler's protocol, in which fused kernels
    read ``found_inf`` and, when it is 1, leave parameters, moments and step counts as they were (no host read)."""
    setattr(optimizer, "found_inf", (~ok).float())  # noqa: B010  (read by torch's fused Adam/AdamW/SGD step)
    try:
        optimizer.step()
    finally:
        delattr(optimizer, "found_inf")  # noqa: B043


@dataclass
class _Check:
    """A step whose finiteness the device decided (``ok``: a 0-d bool tensor), read at the next ``settle``."""

    ok: Tensor
    step: int
    first_batch: int
    n_batches: int
    loss: Tensor
    grad_norm: Tensor | None


class StepGuard:
    """Skips non-finite optimizer steps, rolls back after a streak, stops a hopeless run (see the module docstring).

    Args:
        enabled: ``nan_guard``; when False every step counts and nothing is checked.
        max_consecutive: bad steps in a row that trigger a rollback (``nan_max_consecutive``).
        lr_factor: learning-rate multiplier applied at each rollback (``nan_lr_factor``; None: unchanged).
        max_rollbacks: rollbacks allowed before a further streak stops the run (``nan_max_rollbacks``).
        optimizer: the run's optimizer (a rollback scales the restored groups' ``lr`` once).
        params: the trained parameters (the gradient norm when clipping is off).
        lr_scale: the factor the schedule multiplies by (given to ``build_scheduler`` too).
        snapshot: the current state as a checkpoint payload (``RunCheckpoint.payload``).
        restore: loads a payload into model/optimizer/schedule/scaler/counters, as a resume does, with the RNG state
            restored at the matching point of the loop.
        save: writes the current state as a step checkpoint and returns its path (None: not written); None when the
            run has no ``checkpoint_dir``.
        on_device: leave the per-step decision on the device (``decides_on_device``).
        scaled: a GradScaler handles inf gradients itself: only the loss is checked.
        agree: sums a tensor over processes, so that every rank takes the same decision (None in one process).
        say: prints a line for the user (above the progress bar).
    """

    def __init__(
        self,
        *,
        enabled: bool,
        max_consecutive: int,
        lr_factor: float | None,
        max_rollbacks: int,
        optimizer: torch.optim.Optimizer,
        params: Sequence[nn.Parameter],
        lr_scale: LrScale,
        snapshot: Callable[[TrainState], dict[str, Any]],
        restore: Callable[[dict[str, Any], TrainState], None],
        save: Callable[[TrainState], str | None] | None = None,
        on_device: bool = False,
        scaled: bool = False,
        agree: Callable[[Tensor], Tensor] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.enabled = enabled
        self.max_consecutive = max_consecutive
        self.lr_factor = lr_factor
        self.max_rollbacks = max_rollbacks
        self.on_device = enabled and on_device
        self._optimizer = optimizer
        self._params = list(params)
        self.lr_scale = lr_scale
        self._snapshot = snapshot
        self._restore = restore
        self._save = save
        self._scaled = scaled
        self._agree = agree
        self._say = say
        # The guard's state, saved with the run (``state_dict``).
        self.records: list[dict[str, Any]] = []  # every skipped step, in order
        self.streak = 0  # bad steps in a row so far
        self.rollbacks = 0
        self.last_good: dict[str, Any] | None = None  # a checkpoint payload on the CPU
        self.last_good_checkpoint: str | None = None  # the newest checkpoint written outside a streak
        self._pending: list[_Check] = []
        self._written_inside = False  # whether the last checkpoint payload was built inside a streak

    # ------------------------------------------------------------------ per step
    def check(self, window_loss: Tensor, grad_norm: Tensor | None) -> tuple[bool | Tensor, Tensor | None, float | None]:
        """Whether the step about to be taken is finite: ``(ok, grad_norm, loss read on the host or None)``.

        ``ok`` is a Python bool when decided on the host, a 0-d bool tensor when the device decides. The gradient
        norm is the one clipping computed (the guard computes it when clipping is off and there is no GradScaler).

        In one process the two 0-d values are read and checked on the host: no extra kernels (three tiny launches
        per step otherwise), and on a GPU the second read costs nothing once the first has waited for the step (the
        same single sync as reading a device-side flag). Across processes (and for tensor subclasses such as FSDP's
        DTensor norm) the flag is computed on the device and summed so that every rank takes the same decision.
        With a GradScaler, inf gradients are the scaler's business (it skips those steps itself): only the loss is
        checked.
        """
        if not self.enabled:
            return True, grad_norm, None
        if grad_norm is None and not self._scaled:
            grad_norm = total_grad_norm(self._params)  # clipping is off: the guard needs the norm anyway
        if self.on_device:
            return finite(window_loss, grad_norm), grad_norm, None
        checked = None if self._scaled else grad_norm
        if self._agree is None and type(window_loss) is Tensor and (checked is None or type(checked) is Tensor):
            loss = float(window_loss)
            return math.isfinite(loss) and (checked is None or math.isfinite(float(checked))), grad_norm, loss
        ok = finite(window_loss, checked)
        if self._agree is not None:  # every rank must take the same decision
            ok = self._agree((~ok).to(torch.int32)) == 0
        return bool(ok), grad_norm, None

    def after_step(self, state: TrainState, ok: bool | Tensor, n_batches: int, loss_sum: Tensor | float,
                   targets: Tensor | int, grad_norm: Tensor | None) -> bool:
        """Account for the step just taken (``state.global_step`` and ``batches_in_epoch`` already advanced).
        True when a streak rolled the run back: the state is then the last good snapshot's."""
        if ok is True:
            self.streak = 0
            state.add_to_epoch(loss_sum, targets)
            return False
        first = state.batches_in_epoch - n_batches
        if ok is False:
            return self._bad(state, state.global_step, first, n_batches, loss_sum, grad_norm)
        assert isinstance(ok, Tensor)
        # Decided on the device: counted now without a sync; a skipped step adds nothing to the epoch's sums
        # (``where``, not a product: NaN * 0 is NaN). The record waits for ``settle``.
        loss = torch.as_tensor(loss_sum, device=ok.device)
        state.add_to_epoch(torch.where(ok, loss, 0.0), ok.long() * targets)
        self._pending.append(_Check(ok, state.global_step, first, n_batches, loss, grad_norm))
        return False

    def settle(self, state: TrainState) -> bool:
        """Read the device's decisions since the last read (one sync) and record the skipped steps in order, as the
        host decision would have. True when a streak rolled the run back: the later steps are then void, as they
        would never have run."""
        if not self._pending:
            return False
        checks, self._pending = self._pending, []
        for check, ok in zip(checks, torch.stack([c.ok for c in checks]).tolist()):
            if ok:
                self.streak = 0
            elif self._bad(state, check.step, check.first_batch, check.n_batches, check.loss, check.grad_norm):
                return True
        return False

    # ------------------------------------------------------------------ snapshots
    def remember(self, state: TrainState) -> None:
        """Refresh the last good snapshot (fit start, after a step checkpoint, epoch ends); never inside a streak."""
        if not self.enabled or self.streak:
            return
        self.last_good = clone_tree(self._snapshot(state), "cpu")
        if state.checkpoint_path is not None and not self._written_inside:  # written outside a streak: good
            self.last_good_checkpoint = state.checkpoint_path

    def state_dict(self, with_snapshot: bool = True) -> dict[str, Any]:
        """The guard's part of a checkpoint. Inside a streak it includes the last good snapshot, so a run resumed
        from this checkpoint can roll back to it as the uninterrupted run does."""
        inside = with_snapshot and self.streak > 0 and self.last_good is not None
        if with_snapshot:  # a checkpoint's payload (not a snapshot's)
            self._written_inside = self.streak > 0
        return {
            "records": [dict(r) for r in self.records],
            "streak": self.streak,
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale.value,
            "last_good_checkpoint": self.last_good_checkpoint,
            "last_good": self.last_good if inside else None,
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Resume the guard from a checkpoint (an older checkpoint keeps these counters in its ``state``)."""
        saved = checkpoint.get("guard")
        if saved is None:
            old = checkpoint.get("state") or {}
            saved = {"records": old.get("skipped_steps", []), "streak": old.get("nan_streak", 0),
                     "rollbacks": old.get("nan_rollbacks", 0)}
        self.records = [dict(r) for r in saved.get("records", [])]
        self.streak = int(saved.get("streak", 0))
        self.rollbacks = int(saved.get("rollbacks", 0))
        self.lr_scale.value = float(saved.get("lr_scale", 1.0))
        self.last_good = saved.get("last_good")
        self.last_good_checkpoint = saved.get("last_good_checkpoint")
        if self.streak == 0 and checkpoint.get("_path"):
            self.last_good_checkpoint = str(checkpoint["_path"])

    # ------------------------------------------------------------------ decisions
    def _bad(self, state: TrainState, step: int, first_batch: int, n_batches: int, loss: Tensor | float,
             grad_norm: Tensor | None) -> bool:
        """Record skipped step ``step``; after a streak roll back (True) or stop with an error."""
        record = {
            "step": step,
            "epoch": state.epoch + 1,
            "batches": [first_batch, first_batch + n_batches],  # micro-batch indices in the epoch, end exclusive
            "loss_finite": math.isfinite(float(loss)),
            "grad_norm_finite": None if grad_norm is None else bool(torch.isfinite(grad_norm)),
        }
        self.records.append(record)
        self.streak += 1
        what = "loss" if not record["loss_finite"] else "gradient norm"
        self._say(
            f"[trainforge] step {step}: non-finite {what}; optimizer step skipped (epoch "
            f"{record['epoch']}, micro-batches {first_batch}..{first_batch + n_batches - 1}; "
            f"{self.streak} in a row, {len(self.records)} skipped so far)"
        )
        if self.streak < self.max_consecutive:
            return False
        if self.rollbacks < self.max_rollbacks and self.last_good is not None:
            self._rollback(state)
            return True
        self._stop(state)

    def _restore_last_good(self, state: TrainState) -> dict[str, Any]:
        """Load the last good snapshot (a copy: it may be needed again); the restored groups' ``lr`` is brought to
        the current scale once (the schedule recomputes it from the next step on). Returns the loaded copy."""
        assert self.last_good is not None
        self._pending = []
        self.streak = 0
        payload = clone_tree(self.last_good)
        self._restore(payload, state)
        taken_at = float((self.last_good.get("guard") or {}).get("lr_scale", 1.0))  # the restored lr's scale
        if self.lr_scale.value != taken_at:
            for group in self._optimizer.param_groups:
                group["lr"] = group["lr"] * (self.lr_scale.value / taken_at)
        return payload

    def _rollback(self, state: TrainState) -> None:
        """Lower the learning rate's scale (cumulative over rollbacks) and restore the last good snapshot."""
        if self.lr_factor is not None:
            self.lr_scale.value *= self.lr_factor
        self._restore_last_good(state)
        self.rollbacks += 1
        lr = ("unchanged" if self.lr_factor is None
              else f"x{self.lr_factor} (now {float(self._optimizer.param_groups[0]['lr']):.3g})")
        self._say(
            f"[trainforge] {self.max_consecutive} non-finite steps in a row: rolled back to the last good state "
            f"(step {state.global_step}, epoch {state.epoch} completed + {state.batches_in_epoch} micro-batches), "
            f"learning rate {lr}; rollback {self.rollbacks} of {self.max_rollbacks}."
        )

    def _stop(self, state: TrainState) -> NoReturn:
        """Stop the run: restore the last good state, save it (never the non-finite one) and raise."""
        bad = self.records[-self.max_consecutive:]
        where = ", ".join(f"step {r['step']} (epoch {r['epoch']}, micro-batches {r['batches'][0]}.."
                          f"{r['batches'][1] - 1})" for r in bad)
        if self.last_good is not None:
            payload = self._restore_last_good(state)
            restore_rng(payload["rng"])  # the saved state carries the good state's RNG
            saved = self._save(state) if self._save is not None else None
            if saved is not None:
                self.last_good_checkpoint = saved
                kept = f"The model holds the last good state (step {state.global_step}), saved to {saved!r}"
            else:
                kept = (f"The model holds the last good state (step {state.global_step}); "
                        + ("it could not be saved" if self._save is not None else "set checkpoint_dir to keep it on disk")
                        + self._on_disk())
        else:
            kept = "No good state is held in memory (the run resumed inside a streak)" + self._on_disk()
        raise NonFiniteTrainingError(
            f"Training stopped: {self.max_consecutive} optimizer steps in a row had a NaN/Inf loss or gradient norm "
            f"after {self.rollbacks} rollback(s) (nan_max_rollbacks={self.max_rollbacks}); last bad: {where}. "
            f"{kept}. Fix: lower learning_rate (or set nan_lr_factor), check the data at those micro-batches "
            "(inf/NaN inputs, all-ignored labels), or use precision='fp32' / a smaller max_grad_norm."
        )

    def _on_disk(self) -> str:
        path = self.last_good_checkpoint
        if path is not None and Path(path).exists():
            return f"; the last good checkpoint on disk is {path!r}"
        return "; no checkpoint written outside a streak is on disk"
