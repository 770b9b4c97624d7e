"""The training loop. It reads top to bottom; everything it uses is built beforehand in ``build.py``.

Exactness of resume rests on three rules kept here:
  * the data position is arithmetic on the sampler (``batches_in_epoch * batch_size`` samples skipped);
  * RNG states are restored at the same point of the loop where they were captured (before the epoch's data
    iterator is created for an epoch-end checkpoint, after it for a mid-epoch one);
  * counters, running sums and callback state travel in the checkpoint, so the same code runs either way.

Validation runs at each epoch's end and, with ``eval_every_n_steps=N``, also mid-epoch after every N-th optimizer
step (``_validate_mid_epoch``). Validation touches no RNG and no data position, so it never changes the training.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from trainforge.checkpoint.rng import restore_rng
from trainforge.data.sampler import ResumableSampler
from trainforge.data.streaming import ResumableIterable
from trainforge.data.tensor_loader import TensorBatchLoader
from trainforge.distributed.env import DistEnv
from trainforge.logging.base import MID_EPOCH
from trainforge.tasks.adapter import ModelAdapter
from trainforge.trainer.evaluate import evaluate
from trainforge.trainer.events import Event, fire
from trainforge.trainer.guard import StepGuard, step_unless_flagged
from trainforge.trainer.monitor import Monitor
from trainforge.trainer.preemption import Preemption
from trainforge.trainer.state import TrainState
from trainforge.trainer.step_math import window_divisor
from trainforge.trainer.val_sets import metric_key

if TYPE_CHECKING:
    from trainforge.checkpoint.saver import CheckpointSaver
    from trainforge.config import TrainingConfig
    from trainforge.logging import MultiLogger, ProgressBar
    from trainforge.tasks import TaskSpec
    from trainforge.tracking.telemetry import LoopTelemetry
    from trainforge.trainer.user_metrics import UserMetrics


_NO_SYNC = contextlib.nullcontext()  # reusable (nullcontext keeps no state)
_END: Any = object()  # the end of an epoch's batches

# A torch DataLoader, or the lighter loader trainforge uses for in-memory tensors in one process.
Loader = DataLoader[Any] | TensorBatchLoader


@dataclass
class Run:
    """One ``train()`` call, as ``build.build_run`` returns it: :func:`fit` runs ``parts`` on ``state``; the rest is
    for ``finish.py`` and the run's subscribers (run files, tracker, logs, plots, export: ``subscribers.py``)."""

    parts: Parts
    state: TrainState
    run_name: str
    run_dir: Path
    facts: dict[str, Any]  # results entries known before step 0: precision, device, attention, loss mode, ...
    memory_estimate: dict[str, Any] | None = None  # the estimate printed before step 0 (main process)
    subscribers: list[Any] = field(default_factory=list)  # FIT_START in order; FIT_END / EXCEPTION in reverse
    results: dict[str, Any] = field(default_factory=dict)  # finish's results, read (and added to) at FIT_END


@dataclass
class Parts:
    """Everything the loop needs, built by ``build.build_run``."""

    cfg: TrainingConfig
    task: TaskSpec
    model: nn.Module  # what runs forward: maybe compiled and/or DDP-wrapped
    raw_model: nn.Module  # what is saved: plain module, canonical keys
    adapter: ModelAdapter
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    train_loader: Loader
    sampler: ResumableSampler | ResumableIterable | None  # the data position: set_epoch / set_start arithmetic
    val_loaders: dict[str, Loader]  # {set name: loader} (trainer/val_sets.py; "" for one unnamed set; {}: none)
    device: torch.device
    autocast: Callable[[], Any]
    dist: DistEnv
    callbacks: list[Any]
    logger: MultiLogger
    progress: ProgressBar
    saver: CheckpointSaver  # what is written when: epoch, best and step files (checkpoint/saver.py)
    monitor: Monitor  # the metric best.pt follows, and the one rule for "better"
    guard: StepGuard  # non-finite steps: checks, skips, rollbacks, stop (trainer/guard.py)
    compile_pending: bool = False  # first forward through torch.compile may fail: fall back to eager
    warmup_time_s: float = 0.0
    params: list[nn.Parameter] = field(default_factory=list)
    samples_per_batch: int = 1  # the train loader's batch size: set_start(batches_in_epoch * samples_per_batch)
    every_target_counts: bool = False  # causal LM on plain token tensors: the count is the shape's (no kernels)
    batches_on_device: bool = False  # the train loader's batches hold only tensors already on the device
    preemption: Preemption | None = None  # SIGTERM/SIGINT seen during fit: stop at the next step boundary
    telemetry: LoopTelemetry | None = None  # data wait, samples/s, peak memory, MFU at each log line
    user_metrics: UserMetrics | None = None  # Trainer(metrics=...): logged as val/<name> with the task's


def fit(run: Run) -> None:
    """Train until ``cfg.epochs`` epochs (or ``max_steps`` steps) are done or a callback asks to stop."""
    p, state = run.parts, run.state
    cfg, guard = p.cfg, p.guard
    fire(p.callbacks, Event.FIT_START, state)
    guard.remember(state)  # the first rollback point
    while state.epoch < cfg.epochs and not state.stop_requested and not _reached_max_steps(cfg, state):
        started = time.perf_counter()
        batches = _epoch_batches(p, state)
        fire(p.callbacks, Event.EPOCH_START, state)
        since_log = _StepLog(state)
        rolled_back = False
        for window in _windows(batches, cfg.gradient_accumulation_steps, p.telemetry):
            loss_sum, targets, grad_norm, ok = train_window(p, window)
            state.global_step += 1
            state.batches_in_epoch += len(window)
            log_due = state.global_step % cfg.log_every_n_steps == 0
            checkpoint_due = _step_checkpoint_due(cfg, state)
            eval_due = _mid_epoch_eval_due(p, state)
            # The guard counts the step (or records it as skipped); device decisions are read before a log line,
            # an evaluation or a step checkpoint. True: a NaN streak rolled the run back to the last good state.
            if guard.after_step(state, ok, len(window), loss_sum, targets, grad_norm) or (
                    (log_due or checkpoint_due or eval_due) and guard.settle(state)):
                rolled_back = True
                break
            if log_due:
                _log_step(p, state, since_log, grad_norm)
            else:
                p.progress.update(1)
            fire(p.callbacks, Event.STEP_END, state)
            # (evaluated before the step checkpoint: the checkpoint holds the evaluation's row, best and patience)
            best = _validate_mid_epoch(p, state) if eval_due else False
            if checkpoint_due or best:  # a mid-epoch best is best.pt, a step checkpoint (resumes mid-epoch)
                p.saver.step(state, is_best=best, periodic=checkpoint_due)
            if checkpoint_due:
                guard.remember(state)
            _poll_preemption(p, state)
            if state.stop_requested or _reached_max_steps(cfg, state):
                break
        if rolled_back or guard.settle(state):  # (the epoch's, or the run's, last device decisions)
            continue  # restart the restored epoch at the restored position
        if (state.stop_requested or _reached_max_steps(cfg, state)) and not _epoch_finished(p, state):
            # Interrupted or capped mid-epoch: the epoch stays unfinished, so a resume (with a larger max_steps)
            # continues it. The resumable position is saved first; a max_steps stop then reports the numbers of
            # the partial epoch (a row marked partial_epoch; not a checkpoint, not a candidate for best).
            p.saver.step(state)
            if not state.stop_requested:
                _end_epoch(p, state, time.perf_counter() - started, partial=True)
            break
        _end_epoch(p, state, time.perf_counter() - started)
        if state.epoch < cfg.epochs and not state.stop_requested and not _reached_max_steps(cfg, state):
            guard.remember(state)  # the next epoch's rollback point; after the last epoch it would be a wasted copy
    p.saver.flush()  # FIT_END observers find every checkpoint complete under its final name
    fire(p.callbacks, Event.FIT_END, state)


def _step_checkpoint_due(cfg: TrainingConfig, state: TrainState) -> bool:
    every = cfg.checkpoint_every_n_steps
    return every is not None and every > 0 and state.global_step % every == 0


def _mid_epoch_eval_due(p: Parts, state: TrainState) -> bool:
    """``eval_every_n_steps`` divides the step, and no end-of-epoch validation follows at this same step (the last
    step of the epoch, or the max_steps step, which ends the run with a validated partial row)."""
    every = p.cfg.eval_every_n_steps
    if every is None or not p.val_loaders or state.global_step % every:
        return False
    return not _epoch_finished(p, state) and not _reached_max_steps(p.cfg, state)


def _validate(p: Parts) -> dict[str, float]:
    """``{"val/<metric>": value}`` over every validation set (``val/<set>/<metric>`` for named sets)."""
    values: dict[str, float] = {}
    for name, loader in p.val_loaders.items():
        # Under DDP the plain module evaluates: ranks may hold unequal shards, and DDP's forward may sync.
        metrics = evaluate(
            p.raw_model if p.dist.enabled else p.model, loader, p.task, p.adapter,
            lambda b: _to_device(b, p.device), p.autocast, p.dist.sum, p.user_metrics,
        )
        values.update({metric_key(name, k): v for k, v in metrics.items()})
    return values


def _validate_mid_epoch(p: Parts, state: TrainState) -> bool:
    """A mid-epoch validation (``eval_every_n_steps``). Returns whether it is the best evaluation so far.

    Its row ``{"step", "epoch" (the 1-based epoch in progress), "epoch_progress" (the fraction of that epoch done,
    when its length is known), "val/...", "mid_epoch": True}`` goes to ``state.eval_history`` (saved in checkpoints)
    and to every logger as a step record (``steps.jsonl``, W&B, the experiment database's ``evals`` table). Early
    stopping hears of it through EVAL_END (its patience counts evaluations), and best tracking compares it by the
    one Monitor rule; the caller saves ``best.pt`` as a step checkpoint when it is the best.
    """
    row: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch + 1}
    if (progress := _epoch_progress(p, state)) is not None:
        row["epoch_progress"] = progress
    row.update(_validate(p))
    row[MID_EPOCH] = True
    if (bad := p.monitor.non_finite(row)) is not None:
        row["non_finite"] = bad
    state.eval_history.append(row)
    state.last_metrics = row
    value = p.monitor.value(row)
    improved = p.monitor.improved(state.best_metric, value)
    if improved:
        state.best_metric, state.best_epoch, state.best_step = value, state.epoch + 1, state.global_step
    fire(p.callbacks, Event.EVAL_END, state)
    p.logger.log_step({k: v for k, v in row.items() if k != "step"}, state.global_step)
    return improved


def _epoch_progress(p: Parts, state: TrainState) -> float | None:
    """The fraction of the current epoch done (None when the epoch's length is unknown)."""
    position = _epoch_position(p, state)
    return min(position[0] / position[1], 1.0) if position is not None and position[1] else None


def _poll_preemption(p: Parts, state: TrainState) -> None:
    if p.preemption is not None and p.preemption.reason is not None and not state.stop_requested:
        state.request_stop(p.preemption.reason)


def train_window(
    p: Parts, window: list[Mapping[str, Tensor]]
) -> tuple[Tensor | float, Tensor | int, Tensor | None, bool | Tensor]:
    """One optimizer step over ``len(window)`` micro-batches, token-normalised across the whole window.

    Returns the window's loss sum (a Python float when the guard read it on the host), its target count (a plain
    int when ``p.every_target_counts``), the gradient norm and whether the step was taken (False: the guard skipped
    it; a 0-d bool tensor when the device decided).

    The loss of the step is sum(per-target losses over all micro-batches and ranks) / count(valid targets), so
    ``batch_size=b, accumulation=k`` gives the gradients of ``batch_size=k*b``.
    """
    batches = window if p.batches_on_device else [_to_device(b, p.device) for b in window]
    labels = [p.task.targets(b) for b in batches]
    counts: list[Any]  # Tensors, or ints when every target counts
    local: Tensor | int
    if p.every_target_counts:  # the count is the shape's: no counting kernels (see data/tensor_loader.py)
        counts = [t.numel() - t.numel() // t.shape[-1] for t in labels]  # every position but the last of each row
        local = sum(counts)
    else:
        counts = [p.task.count_targets(t) for t in labels]
        local = counts[0] if len(counts) == 1 else torch.stack(counts).sum()
    # Every rank divides by the window's global count (trainer/step_math.py, shared with the Lightning module).
    total = p.dist.sum(torch.as_tensor(local, device=p.device)) if p.dist.enabled else local
    scale = window_divisor(total, p.dist.world_size)
    # One process has no gradient sync to skip: no generator-based context manager per micro-batch (microseconds).
    collective = p.dist.enabled or p.dist.sharded
    # One micro-batch in one process with a known, positive count: sum / count is the loss kernel's own mean, so
    # the step runs the kernels of a plain loop (no division forward and backward); the sum is mean * count.
    per_target = len(batches) == 1 and not collective and isinstance(local, int) and local > 0
    window_loss: Tensor | None = None
    for i, (batch, target, count) in enumerate(zip(batches, labels, counts)):
        with p.dist.no_sync(p.model, enabled=i < len(batches) - 1) if collective else _NO_SYNC:
            with p.autocast():
                out = _forward(p, batch, target)
                loss = p.adapter.loss_mean(out, target) if per_target else p.adapter.loss_sum(out, target, count)
            step_loss = loss if per_target else loss / scale
            if p.scaler is not None:
                step_loss = p.scaler.scale(step_loss)
            step_loss.backward()
        detached = loss.detach()
        window_loss = detached if window_loss is None else window_loss + detached
    assert window_loss is not None
    grad_norm, ok, host_loss = _step_optimizer(p, window_loss)
    loss_sum: Tensor | float = host_loss if host_loss is not None else window_loss
    if per_target:  # the window's loss is a mean: the sum is mean * count
        loss_sum = loss_sum * local
    return loss_sum, local, grad_norm, ok


def _forward(p: Parts, batch: Mapping[str, Tensor], target: Tensor) -> Any:
    if not p.compile_pending:
        return p.adapter.forward(p.model, batch, target)
    started = time.perf_counter()
    try:
        out = p.adapter.forward(p.model, batch, target)
    except Exception as exc:  # compile errors surface on the first call; eager always works
        warnings.warn(
            f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
            "falling back to eager mode. Training continues uncompiled.",
            stacklevel=2,
        )
        p.model = p.raw_model if not p.dist.enabled else p.model
        out = p.adapter.forward(p.model, batch, target)
    p.compile_pending = False
    p.warmup_time_s = time.perf_counter() - started
    return out


def _step_optimizer(p: Parts, window_loss: Tensor) -> tuple[Tensor | None, bool | Tensor, float | None]:
    """Clip, check, step. Returns the gradient norm (None when neither clipping nor the guard computed it), whether
    the step was taken (a device tensor when the device decided), and ``window_loss`` as a Python float when the
    guard read it on the host."""
    if p.scaler is not None:
        p.scaler.unscale_(p.optimizer)  # clip the true gradients, not the scaled ones
    grad_norm = None
    if p.cfg.max_grad_norm:
        grad_norm = torch.nn.utils.clip_grad_norm_(p.params, p.cfg.max_grad_norm, foreach=True)
    ok, grad_norm, host_loss = p.guard.check(window_loss, grad_norm)
    if ok is True:
        if p.scaler is not None:
            p.scaler.step(p.optimizer)
            p.scaler.update()
        else:
            p.optimizer.step()
    elif ok is False:  # skipped
        if p.scaler is not None:
            p.scaler.update()  # lowers the scale on inf/NaN, as a skipped scaler.step would
    else:  # the device decides: fused kernels skip a bad step themselves (no sync)
        step_unless_flagged(p.optimizer, ok)
    p.scheduler.step()  # a skipped step still advances the schedule (as GradScaler's skipped steps do)
    p.optimizer.zero_grad(set_to_none=True)
    return grad_norm, ok, host_loss


def _end_epoch(p: Parts, state: TrainState, elapsed_s: float, partial: bool = False) -> None:
    """Validation, the epoch's row, best tracking, callbacks, then epoch/best checkpoints.

    ``partial``: the run ends mid-epoch at max_steps; the row (marked ``partial_epoch``) reports the numbers so far,
    while the counters stay mid-epoch (its checkpoint was written before) and nothing is saved or made best."""
    cfg = p.cfg
    if not partial:
        state.epoch += 1
        state.batches_in_epoch = 0
    loss_sum, targets = (p.dist.sum(x) for x in state.epoch_sums())
    n_targets = int(targets.item())
    row: dict[str, Any] = {"epoch": state.epoch + int(partial), "step": state.global_step}
    if partial:
        row["partial_epoch"] = True
    row["train/loss"] = float(loss_sum.item()) / n_targets if n_targets else math.nan  # no finite step: NaN
    eval_started = time.perf_counter()
    if p.val_loaders:
        last = state.eval_history[-1] if state.eval_history else None
        if last is not None and last["step"] == state.global_step:
            # A stream of unknown length ended right after a mid-epoch validation: the same weights, the same
            # numbers; not validated twice.
            row.update({k: v for k, v in last.items() if k.startswith("val/")})
        else:
            row.update(_validate(p))
        state.last_metrics = row
        fire(p.callbacks, Event.EVAL_END, state)
    row["lr"] = float(p.scheduler.get_last_lr()[0])
    row["epoch_time_s"] = elapsed_s + (time.perf_counter() - eval_started)
    train_time = max(elapsed_s - p.warmup_time_s, 1e-9)
    row["tokens_per_s"] = n_targets / train_time
    p.warmup_time_s = 0.0
    if (bad := p.monitor.non_finite(row)) is not None:
        row["non_finite"] = bad  # e.g. "val/loss": this epoch cannot be the best one
    state.history.append(row)
    state.last_metrics = row
    improved = not partial and p.monitor.improved(state.best_metric, p.monitor.value(row))
    if improved:
        state.best_metric, state.best_epoch, state.best_step = p.monitor.value(row), state.epoch, None
    fire(p.callbacks, Event.EPOCH_END, state)
    p.logger.log_epoch(row, state.global_step)
    if partial:
        return
    state.reset_epoch_sums(p.device)
    _poll_preemption(p, state)  # a signal during validation: this epoch's checkpoint is the final one
    final = state.epoch >= cfg.epochs or state.stop_requested or _reached_max_steps(cfg, state)
    p.saver.epoch_end(state, is_best=improved, final=final)  # the saver decides the files and their order


def _epoch_batches(p: Parts, state: TrainState) -> Iterator[Mapping[str, Tensor]]:
    """This epoch's batches, positioned after any batches already trained on (resume)."""
    mid_epoch = state.batches_in_epoch > 0
    if p.sampler is not None:
        p.sampler.set_epoch(state.epoch)
        p.sampler.set_start(state.batches_in_epoch * p.samples_per_batch)
    elif hasattr(p.train_loader.sampler, "set_epoch"):  # e.g. a user's DistributedSampler
        p.train_loader.sampler.set_epoch(state.epoch)  # type: ignore[union-attr]
    if state.pending_rng is not None and not mid_epoch:
        restore_rng(state.pending_rng)
        state.pending_rng = None
    batches: Iterator[Mapping[str, Tensor]] = iter(p.train_loader)
    if mid_epoch and p.sampler is None:
        warnings.warn(
            f"Resuming mid-epoch with a DataLoader whose sampler is not a trainforge ResumableSampler: skipping "
            f"{state.batches_in_epoch} batches by reading them. Use UniversalDataModule (or pass the data itself) "
            "to resume by sampler arithmetic.",
            stacklevel=2,
        )
        for _ in itertools.islice(batches, state.batches_in_epoch):
            pass
    if state.pending_rng is not None:
        restore_rng(state.pending_rng)
        state.pending_rng = None
    return batches


def _windows(
    batches: Iterator[Mapping[str, Tensor]], k: int, telemetry: LoopTelemetry | None = None
) -> Iterator[list[Mapping[str, Tensor]]]:
    """Accumulation windows of ``k`` micro-batches; the last one of an epoch may be shorter.

    With ``telemetry``, the time spent waiting for the data (host clock only) and the samples are counted."""
    while True:
        started = time.perf_counter()
        if k == 1:  # (no islice per step)
            batch = next(batches, _END)
            window = [] if batch is _END else [batch]
        else:
            window = list(itertools.islice(batches, k))
        if telemetry is not None:
            telemetry.add_window(time.perf_counter() - started, window)
        if not window:
            return
        yield window


def _epoch_position(p: Parts, state: TrainState) -> tuple[int, int] | None:
    """``(done, full)`` of the current epoch on this process, in samples of the trainforge sampler (its length is the
    whole epoch's, also after a resume) or in batches of another loader; None when the length is unknown."""
    try:
        if p.sampler is None:
            return state.batches_in_epoch, len(p.train_loader)
        if p.sampler.num_samples is None:  # a stream of unknown length
            return None
        return state.batches_in_epoch * p.samples_per_batch, -(-p.sampler.num_samples // p.sampler.world_size)
    except TypeError:
        return None


def _epoch_finished(p: Parts, state: TrainState) -> bool:
    """True when no batches of the current epoch remain (False when the length is unknown: a stream stopped by
    max_steps stays mid-pass, and a resume continues the pass)."""
    position = _epoch_position(p, state)
    return position is not None and position[0] >= position[1]


def _reached_max_steps(cfg: TrainingConfig, state: TrainState) -> bool:
    return cfg.max_steps is not None and state.global_step >= cfg.max_steps


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Tensor]:
    if device.type == "cpu":  # skip the no-op .to() calls: the tensors are almost always on the CPU already
        return {k: v if v.is_cpu else v.to(device) for k, v in batch.items() if isinstance(v, Tensor)}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, Tensor)}


class _StepLog:
    """Loss and targets since the last log line: the difference of the epoch's running sums between two log
    lines, so the hot loop adds nothing of its own."""

    def __init__(self, state: TrainState) -> None:
        self.state = state
        self.step, self.clock = state.global_step, time.perf_counter()
        self.loss, self.targets = state.epoch_sums_on_host()

    def flush(self, step: int) -> tuple[float, float, int]:
        now = time.perf_counter()
        loss_total, n_total = self.state.epoch_sums_on_host()  # syncs, per log line
        n = n_total - self.targets
        loss = (loss_total - self.loss) / n if n else math.nan  # every step since the last line was skipped
        rate = n / max(now - self.clock, 1e-9)
        steps = step - self.step
        self.step, self.clock, self.loss, self.targets = step, now, loss_total, n_total
        return loss, rate, steps


def _log_step(p: Parts, state: TrainState, since: _StepLog, grad_norm: Tensor | None) -> None:
    clock = since.clock
    loss, rate, steps = since.flush(state.global_step)
    lr = float(p.scheduler.get_last_lr()[0])
    metrics: dict[str, float] = {"train/loss": loss, "lr": lr, "tokens_per_s": rate}
    if grad_norm is not None:
        metrics["grad_norm"] = float(grad_norm.item())
    if p.telemetry is not None:
        metrics.update(p.telemetry.step_metrics(steps, since.clock - clock, rate))
    state.last_metrics = metrics
    p.logger.log_step(metrics, state.global_step)
    # (formatting a postfix nobody sees would cost microseconds per log line)
    p.progress.update(1, _postfix(metrics) if p.progress.enabled else None)


def _postfix(metrics: dict[str, float]) -> dict[str, str | float]:
    """The progress bar's view of a step line."""
    postfix: dict[str, str | float] = {
        "loss": f"{metrics['train/loss']:.4f}", "lr": f"{metrics['lr']:.2e}", "tok/s": f"{metrics['tokens_per_s']:,.0f}"
    }
    if "peak_mem_mb" in metrics:
        postfix["mem"] = f"{metrics['peak_mem_mb']:,.0f}MB"
    if "mfu" in metrics:
        postfix["mfu"] = f"{metrics['mfu']:.1%}"
    return postfix
