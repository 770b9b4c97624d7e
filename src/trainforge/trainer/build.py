"""config + model + data → a :class:`~trainforge.trainer.loop.Run`: every component of one ``train()`` call, with
every check made before step 0 and nothing written yet (the run's subscribers write at FIT_START).

Who imports whom inside ``trainer/`` (downward only)::

    trainer.py ─┬─> build.py ──> loaders.py, subscribers.py, loop.py, guard.py, resume.py, optim.py, ...
                ├─> loop.py  ──> evaluate.py, guard.py, events.py, state.py
                ├─> finish.py ─> subscribers.py, results.py, loop.py
                └─> offline.py ─> loaders.py, evaluate.py, loop.py
"""

from __future__ import annotations

import secrets
import sys
import warnings
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO, cast

import torch
from torch import nn

from trainforge.checkpoint.ownership import claim_directories, new_run_id, stored_run_name
from trainforge.checkpoint.rng import seed_everything
from trainforge.checkpoint.saver import CheckpointSaver
from trainforge.config import TrainingConfig
from trainforge.data.inputs import label_alias_note
from trainforge.data.tensor_loader import batches_on, every_target_counts
from trainforge.data.tokenizers import check_vocab
from trainforge.distributed import fsdp
from trainforge.distributed.env import DistEnv, from_environment
from trainforge.errors import ConfigError, DataError
from trainforge.notebook.guardrails import check_notebook_strategy, notebook_device
from trainforge.tasks import TaskSpec
from trainforge.tasks.adapter import ModelAdapter
from trainforge.trainer.attention import describe_attention, enable_fast_sdpa
from trainforge.trainer.early_stopping import EarlyStopping
from trainforge.trainer.events import Callback, Event, fire
from trainforge.trainer.guard import LrScale, StepGuard, decides_on_device
from trainforge.trainer.loaders import build_loaders, device_for, steps_per_epoch, total_steps
from trainforge.trainer.loop import Loader, Parts, Run, _to_device
from trainforge.trainer.monitor import Monitor
from trainforge.trainer.optim import OptimizerArg, SchedulerFactory, build_optimizer, build_scheduler, custom_optimizer
from trainforge.trainer.precision import autocast_factory, make_scaler, resolve_precision
from trainforge.trainer.preemption import Preemption
from trainforge.trainer.resume import RunCheckpoint, find_checkpoint, rebase_position
from trainforge.trainer.state import TrainState
from trainforge.trainer.subscribers import Export, Plots, RunFiles, RunLogs, Tracker
from trainforge.trainer.user_metrics import UserMetrics

if TYPE_CHECKING:
    from trainforge.logging import MultiLogger, ProgressBar

__all__ = ["build_run"]


def build_run(model: nn.Module, model_config: Any, cfg: TrainingConfig, task: TaskSpec, *, callbacks: Sequence[Any],
              optimizer_arg: OptimizerArg, scheduler_arg: SchedulerFactory, metrics: Mapping[str, Any],
              train_data: Any, val_data: Any, resume_from: str | Path | None) -> Run:
    """Everything ``fit`` runs and ``finish`` reports (``Trainer.train``'s arguments, see there)."""
    dist_env, device = _environment(cfg)
    train_loader, sampler, samples_per_batch, val_loaders = build_loaders(cfg, task, train_data, val_data, dist_env)
    monitor = Monitor.for_run(cfg, task, has_validation=bool(val_loaders),  # a typo fails here, not never
                              user_metrics=metrics, val_sets=list(val_loaders))
    model = model.to(device)
    precision = resolve_precision(cfg.precision, cfg.use_amp, device)
    skeleton = _shard(model, optimizer_arg, precision, device) if dist_env.sharded else None
    adapter = ModelAdapter(model, task)
    optimizer = build_optimizer(model, cfg, device) if optimizer_arg is None else custom_optimizer(model, optimizer_arg)
    steps = total_steps(cfg, steps_per_epoch(train_loader, cfg.gradient_accumulation_steps))
    lr_scale = LrScale()  # lowered by the step guard's rollbacks; the schedule multiplies by it
    scheduler = build_scheduler(optimizer, cfg, steps, scheduler_arg, lr_scale=lr_scale)
    scaler = make_scaler(precision, device)
    callbacks = list(callbacks)
    if cfg.early_stopping_patience is not None:
        callbacks.append(EarlyStopping(cfg.early_stopping_patience, monitor=monitor))
    state = TrainState()
    state.reset_epoch_sums(device)
    states = RunCheckpoint(model, optimizer, scheduler, scaler, callbacks, cfg, task, model_config, dist_env,
                           sampler, samples_per_batch, device, skeleton=skeleton, total_steps=steps)
    resumed = _resume(states, state, resume_from)
    run_dir = Path(cfg.output_dir) if cfg.output_dir else Path("runs") / resumed.run_name

    tokenizer = getattr(train_loader, "tokenizer", None)
    check_vocab(model, tokenizer, task)  # tokenizer vs model embedding vs TaskSpec, before any batch
    autocast = autocast_factory(precision, device)
    first, mode = _probe(model, adapter, task, train_loader, device, autocast, dist_env)
    kernels = enable_fast_sdpa(device)
    attention = describe_attention(model)
    memory = None
    if dist_env.is_main and not dist_env.sharded:  # (FSDP: the sample forward is collective, and the estimate is
        from trainforge.tracking.memory import estimate_before_training  # of an unsharded model)

        memory = estimate_before_training(model, first, adapter, task, autocast, optimizer=optimizer, device=device,
                                          accumulation=cfg.gradient_accumulation_steps)
    if dist_env.is_main:  # one run per directory: before step 0 and before this run writes anything
        _claim(cfg, run_dir, resumed, may_start_over=str(resumed.resume) == "auto")
    progress, logger = _logs(cfg, run_dir, resumed, dist_env, steps, state)

    forward_model = wrap_model(model, cfg, dist_env, device)
    params = [p for p in model.parameters() if p.requires_grad]
    saver, guard, rollback = _saver_and_guard(states, resumed, params, lr_scale, progress)
    from trainforge.tracking.telemetry import LoopTelemetry, flops_per_token, peak_flops

    seq_len = next((int(v.shape[1]) for v in first.values() if v.dim() >= 2), None)
    parts = Parts(
        cfg=cfg, task=task, model=forward_model, raw_model=model, adapter=adapter, optimizer=optimizer,
        scheduler=scheduler, scaler=scaler, train_loader=train_loader, sampler=sampler, val_loaders=val_loaders,
        samples_per_batch=samples_per_batch, device=device, autocast=autocast, dist=dist_env, callbacks=callbacks,
        logger=logger, progress=progress, saver=saver, monitor=monitor, guard=guard,
        compile_pending=forward_model is not model and cfg.compile_mode is not None,
        params=params, every_target_counts=every_target_counts(train_loader, task),
        batches_on_device=batches_on(train_loader, device),
        user_metrics=UserMetrics(metrics, task) if metrics else None,
        preemption=Preemption(),  # SIGTERM/SIGINT: stop at a step boundary, with a checkpoint
        telemetry=LoopTelemetry(device, flops_per_token(model, seq_len), peak_flops(device, precision)),
    )
    notes = [memory.summary()] if memory is not None else []
    if (note := label_alias_note(train_data, task)) is not None:
        notes.append(note)
    subscribers = _subscribers(cfg, dist_env, resumed, model, skeleton, model_config, tokenizer, steps, notes)
    facts = {"precision": precision, "attention_implementation": attention, "sdpa_kernels": kernels,
             "loss_mode": mode, "device": str(device), "world_size": dist_env.world_size,
             "strategy": dist_env.strategy}
    return Run(parts, state, resumed.run_name, run_dir, facts, memory.to_dict() if memory is not None else None,
               subscribers)


class Resumed(NamedTuple):
    """Where the run starts: the checkpoint it continues (None: a fresh run) and the run's identity."""

    resume: str | Path | None  # what was asked: None, "auto" or a path
    checkpoint: dict[str, Any] | None
    run_id: str
    run_name: str


def _environment(cfg: TrainingConfig) -> tuple[DistEnv, torch.device]:
    """The validated config's process group and device; the seeds set."""
    cfg.validate()
    check_notebook_strategy(cfg.strategy)  # a kernel is one process: ddp/fsdp there need ALLOW_NOTEBOOK_DDP=1
    dist_env = from_environment(cfg.strategy)
    device = device_for(notebook_device(cfg.device), dist_env)  # one GPU in a notebook, said so
    seed_everything(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return dist_env, device


def _resume(states: RunCheckpoint, state: TrainState, resume_from: str | Path | None) -> Resumed:
    """The checkpoint ``resume_from`` (or the config) names, restored into ``states`` and ``state``."""
    cfg = states.training_config
    resume = resume_from if resume_from is not None else cfg.resume_from_checkpoint
    checkpoint = find_checkpoint(resume, cfg.checkpoint_dir)
    run_name, run_id = cfg.run_name, new_run_id()
    if checkpoint is not None:
        state.pending_rng = states.restore(checkpoint, state)  # the RNG goes back at the matching loop point
        rebase_position(checkpoint, state, states.samples_per_batch, states.dist, states.device)
        if isinstance(checkpoint.get("run_id"), str):
            run_id = checkpoint["run_id"]  # the same run, continued
        run_name = run_name or stored_run_name(checkpoint, checkpoint["_path"], f"run-{run_id[:12]}")
    run_name = states.run_name = run_name or _new_run_name(None if cfg.output_dir else Path("runs"))
    states.run_id = run_id
    return Resumed(resume, checkpoint, run_id, run_name)


def _logs(cfg: TrainingConfig, run_dir: Path, resumed: Resumed, dist_env: DistEnv, steps: int | None,
          state: TrainState) -> tuple[ProgressBar, MultiLogger]:
    """The progress bar and the run's loggers (which fail here for an unknown or missing backend)."""
    from trainforge.logging import ProgressBar, build_loggers  # after validation: no files for bad input

    progress = ProgressBar(total=steps, desc=resumed.run_name, enabled=cfg.progress_bar and dist_env.is_main,
                           initial=state.global_step)
    logger = build_loggers(
        run_dir=str(run_dir), total_epochs=cfg.epochs, use_wandb=cfg.use_wandb, wandb_project=cfg.wandb_project,
        wandb_entity=cfg.wandb_entity, run_name=resumed.run_name, notes=cfg.notes, tags=cfg.tags,
        is_main_process=dist_env.is_main, resume=resumed.checkpoint is not None,
        console_stream=cast(TextIO, progress.stream()) if progress.enabled else None,
        loggers=cfg.loggers, dashboard_min_interval_s=cfg.dashboard_min_interval_s,
    )
    return progress, logger


def _saver_and_guard(states: RunCheckpoint, resumed: Resumed, params: list[nn.Parameter], lr_scale: LrScale,
                     progress: ProgressBar) -> tuple[CheckpointSaver, StepGuard, Rollback]:
    """The checkpoint saver and the step guard, both writing what ``states`` holds."""
    cfg, dist_env, optimizer, scaler = states.training_config, states.dist, states.optimizer, states.scaler
    payload = CheckpointPayload(states, dist_env, states.callbacks)
    saver = CheckpointSaver(cfg.checkpoint_dir, build=payload.build, checkpoint_frequency=cfg.checkpoint_frequency,
                            keep_last_n=cfg.keep_last_n, save_best=cfg.save_best, on_saved=payload.saved,
                            wait_each=_observes_checkpoints(states.callbacks), on_error=cfg.on_checkpoint_error,
                            barrier=dist_env.barrier, run_id=resumed.run_id)
    rollback = Rollback(states, saver)
    guard = StepGuard(
        enabled=cfg.nan_guard, max_consecutive=cfg.nan_max_consecutive, lr_factor=cfg.nan_lr_factor,
        max_rollbacks=cfg.nan_max_rollbacks, optimizer=optimizer, params=params, lr_scale=lr_scale,
        snapshot=rollback.snapshot, restore=rollback.restore, save=rollback.save if cfg.checkpoint_dir else None,
        on_device=decides_on_device(optimizer, dist_env.enabled or dist_env.sharded, scaler is not None),
        scaled=scaler is not None, agree=dist_env.sum if dist_env.enabled else None,
        say=progress.write if dist_env.is_main else (lambda line: None))
    states.guard_ref = weakref.ref(guard)  # Parts holds the guard; the checkpoint only reads it
    if resumed.checkpoint is not None:
        guard.load_state_dict(resumed.checkpoint)  # counters, lr scale, and the snapshot of a streak in progress
    return saver, guard, rollback


def _subscribers(cfg: TrainingConfig, dist_env: DistEnv, resumed: Resumed, model: nn.Module,
                 skeleton: nn.Module | None, model_config: Any, tokenizer: Any, steps: int | None,
                 notes: list[str]) -> list[Any]:
    """The run's subscribers, opened in this order before step 0 and closed in reverse (``subscribers.py``); only
    the main process writes files and rows."""
    logs = RunLogs(model_config, steps, resumed.checkpoint is not None, notes)
    if not dist_env.is_main:
        return [logs]
    return [RunFiles(resumed.run_id, model_config, tokenizer), *([Tracker(model_config)] if cfg.track_runs else []),
            *([Plots()] if cfg.plots else []), logs,
            *([Export(model, skeleton, model_config, tokenizer)] if cfg.export_bundle else [])]


class CheckpointPayload:
    """What the checkpoint saver writes (``build``) and what it announces (``saved``)."""

    def __init__(self, states: RunCheckpoint, dist_env: DistEnv, callbacks: list[Any]) -> None:
        self.states, self.dist, self.callbacks = states, dist_env, callbacks

    def build(self, state: TrainState, kind: str) -> dict[str, Any] | None:
        dist_env = self.dist
        # Checkpoints hold the epoch's running sums over all ranks, so they resume on any world size.
        sums = tuple(dist_env.sum(x) for x in state.epoch_sums()) if dist_env.enabled else None
        # FSDP: gathering the full model and optimizer state is collective, so every rank builds the payload
        payload = self.states.payload(state, kind) if dist_env.is_main or dist_env.sharded else None
        if not dist_env.is_main or payload is None:
            return None
        if sums is not None:
            payload["state"].update(epoch_loss_sum=sums[0].cpu(), epoch_targets=sums[1].cpu())
        return payload

    def saved(self, state: TrainState, path: Path) -> None:
        state.checkpoint_path = str(path)
        fire(self.callbacks, Event.CHECKPOINT_SAVED, state)


class Rollback:
    """The step guard's hooks: a rollback point is what a checkpoint holds, a rollback is a resume from memory, and
    the guard's stop path saves the restored good state."""

    def __init__(self, states: RunCheckpoint, saver: CheckpointSaver) -> None:
        self.states, self.saver = states, saver

    def snapshot(self, state: TrainState) -> dict[str, Any]:
        payload = self.states.payload(state, "snapshot")
        if state.pending_rng is not None:  # resumed, RNG not restored yet: the checkpoint's RNG is the state's
            payload["rng"] = state.pending_rng
        return payload

    def restore(self, payload: dict[str, Any], state: TrainState) -> None:
        payload["_path"] = f"<last good state in memory, step {payload['state']['global_step']}>"
        state.pending_rng = self.states.restore(payload, state)

    def save(self, state: TrainState) -> str | None:
        state.checkpoint_path = None
        self.saver.step(state)
        return state.checkpoint_path


def _shard(model: nn.Module, optimizer_arg: OptimizerArg, precision: str, device: torch.device) -> nn.Module:
    """FSDP shards ``model`` in place, before the optimizer sees the parameters (now DTensor shards); returns the
    plain module on the meta device (checkpoint checks and the export's module)."""
    if fsdp.is_fsdp(model):
        raise ConfigError(["strategy='fsdp' shards the model in place, and this model is already sharded "
                           "(by an earlier train() or fully_shard). Fix: build a fresh model (load the "
                           "checkpoint to continue), or train it under strategy='fsdp' only once."],
                          what="Trainer.train")
    if isinstance(optimizer_arg, torch.optim.Optimizer):
        raise ConfigError(["optimizer: strategy='fsdp' replaces the model's parameters with shards, so an "
                           "optimizer built beforehand holds the old ones. Fix: pass a factory, "
                           "optimizer=lambda params: torch.optim.AdamW(params, lr=...)."], what="Trainer")
    fsdp.check_backend(device)
    skeleton = fsdp.plain_skeleton(model)
    fsdp.shard(model, precision, device)
    return skeleton


def _probe(model: nn.Module, adapter: ModelAdapter, task: TaskSpec, loader: Loader, device: torch.device,
           autocast: Any, dist_env: DistEnv) -> tuple[dict[str, torch.Tensor], str]:
    """One batch before step 0: bad token ids, label ranges and unusable outputs fail here, clearly. Returns the
    batch (on the device) and the adapter's loss mode."""
    first = next(iter(loader), None)
    if first is None:
        raise DataError("train_data produced no batches. Fix: pass at least one sample (and batch_size ≤ N "
                        "if the DataLoader drops the last batch).")
    first = _to_device(first, device)
    task.validate_batch(first)
    with autocast():
        mode = adapter.probe(model, first, task.targets(first))
    if dist_env.sharded:  # the root keeps its parameters unsharded after a forward: back to the DTensor shards
        fsdp.reshard(model)  # (``model.parameters()`` must be the optimizer's, for clipping)
    return first, mode


def _claim(cfg: TrainingConfig, run_dir: Path, resumed: Resumed, *, may_start_over: bool) -> None:
    """One run per directory (``checkpoint/ownership.py``), before this run writes anything."""
    # An earlier train() in this process may still draw its plots into this directory (this run resumes or
    # overwrites it): let it finish before its files are removed or appended to.
    if (tracking_run := sys.modules.get("trainforge.tracking.run")) is not None:
        tracking_run.wait_for_plots()
    removed = claim_directories(cfg.checkpoint_dir, run_dir, run_id=resumed.run_id,
                                resumed=resumed.checkpoint is not None, may_start_over=may_start_over,
                                overwrite=cfg.overwrite)
    if removed:
        print(f"[trainforge] overwrite=True: removed {len(removed)} files of the earlier run "
              f"({', '.join(Path(p).name for p in removed[:6])}{' ...' if len(removed) > 6 else ''}).")


def wrap_model(model: nn.Module, cfg: TrainingConfig, dist_env: DistEnv, device: torch.device) -> nn.Module:
    """What runs forward: compiled and/or DDP-wrapped (FSDP: ``model`` is already sharded in place). Checkpoints
    always hold the plain module's weights."""
    wrapped: nn.Module = model
    if cfg.compile_mode is not None:
        try:
            wrapped = torch.compile(model, mode=cfg.compile_mode)  # type: ignore[assignment]
        except Exception as exc:  # e.g. an unsupported Python/platform
            warnings.warn(f"torch.compile unavailable ({exc}); training in eager mode.", stacklevel=4)
    if dist_env.enabled and not dist_env.sharded:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        wrapped = DistributedDataParallel(wrapped, device_ids=ids)
    return wrapped


def _observes_checkpoints(callbacks: Sequence[Any]) -> bool:
    """Whether a callback has its own ``on_checkpoint_saved`` (``Callback``'s no-op does not count).

    Only then does a checkpoint save wait for its commit: the event promises a complete file under its name.
    """
    for cb in callbacks:
        hook = getattr(cb, "on_checkpoint_saved", None)
        if hook is not None and getattr(hook, "__func__", hook) is not Callback.on_checkpoint_saved:
            return True
    return False


def _new_run_name(parent: Path | None) -> str:
    """A fresh run's name: the time and a random tag, drawn again while ``parent/<name>`` exists (a generated name
    must never lead a fresh run into another run's directory, where it would be refused)."""
    while True:
        name = f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        if parent is None or not (parent / name).exists():
            return name
