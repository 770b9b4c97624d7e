"""What a checkpoint holds and how a run comes back from one: the payload, the restore, the position on another
world size, and finding the checkpoint ``resume_from`` names.

``RunCheckpoint`` is the one place that knows the checkpoint's contents; the Trainer's checkpoint writes, the step
guard's in-memory snapshots and resumes all go through it, so the three can never disagree.
"""

from __future__ import annotations

import json
import warnings
import weakref
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainforge._version import __version__
from trainforge.checkpoint.io import FORMAT_VERSION, canonical_state_dict, load_model_state, safe_load
from trainforge.checkpoint.manager import ranked_checkpoints
from trainforge.checkpoint.rng import capture_rng
from trainforge.config import TrainingConfig
from trainforge.config.fields import SETTINGS
from trainforge.data.sampler import ResumableSampler
from trainforge.data.streaming import ResumableIterable
from trainforge.distributed import fsdp
from trainforge.distributed.env import DistEnv, rebase_batches
from trainforge.errors import CheckpointError, ConfigError
from trainforge.tasks import TaskSpec
from trainforge.trainer.events import callback_key
from trainforge.trainer.state import TrainState

__all__ = ["RunCheckpoint", "config_dict", "find_checkpoint", "rebase_position"]

# Declared with each field (``resume=`` in trainforge/config/fields.py). Optimisation settings a resumed run applies
# to the restored optimizer and schedule (logged old -> new, not warned about: the user asked for them); the
# schedule's length follows epochs/max_steps and is logged too.
APPLIED_ON_RESUME = tuple(name for name, spec in SETTINGS.items() if spec.resume == "applied")
# Fields that do not change the training math (where files go, what is logged or kept, when to stop or save, which
# epoch is "best"): changing them on resume still gives the uninterrupted run's steps, so no warning.
_RESUME_FREE = {name for name, spec in SETTINGS.items() if spec.resume in ("free", "applied")}


@dataclass
class RunCheckpoint:
    """Everything of a run that a checkpoint saves and restores.

    ``skeleton`` is set under FSDP (the plain module on the meta device): payloads then gather the full states to
    rank 0 (a collective call: every rank builds one) and restores broadcast rank 0's copy, each rank keeping its
    shard. Checkpoints are in the one-process format either way.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    callbacks: list[Any]
    training_config: TrainingConfig
    task_spec: TaskSpec
    model_config: Any
    dist: DistEnv
    sampler: ResumableSampler | ResumableIterable | None
    samples_per_batch: int
    device: torch.device
    skeleton: nn.Module | None = None
    run_name: str | None = None
    # The StepGuard, whose state (and, inside a NaN streak, the last good snapshot) is saved too. A weak reference:
    # the guard owns the rollback hooks that own this object, and a strong one back would make a cycle that kept
    # the run's model wrapper and optimizer state alive after train() until the cyclic garbage collector ran.
    guard_ref: weakref.ref[Any] | None = None
    run_id: str | None = None
    total_steps: int | None = None  # the schedule's length: a resumed run logs a change
    applied: list[str] = field(default_factory=list)  # the last restore's "setting: old -> new" lines

    def payload(self, state: TrainState, kind: str) -> dict[str, Any]:
        """The checkpoint dict (``kind``: epoch, step, best or snapshot)."""
        if self.skeleton is not None:  # FSDP (collective): the full states on rank 0, one-process format
            model_state = fsdp.full_model_state(self.model)
            optim_state = fsdp.full_optimizer_state(self.model, self.optimizer)
        else:
            model_state, optim_state = self.model.state_dict(), self.optimizer.state_dict()
        guard = self.guard_ref() if self.guard_ref is not None else None
        return {
            "format_version": FORMAT_VERSION,
            "trainforge_version": __version__,
            "kind": kind,
            "run_name": self.run_name,
            "run_id": self.run_id,  # the run's identity: a fresh run never writes into a directory holding another
            "model": canonical_state_dict(model_state),
            "optimizer": optim_state,
            "optimizer_class": type(self.optimizer).__qualname__,  # a resume with another optimizer is refused
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "state": state.state_dict(),
            # (a snapshot never nests another one: it is taken outside a streak)
            "guard": guard.state_dict(with_snapshot=kind != "snapshot") if guard is not None else None,
            "rng": capture_rng(),
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "world_size": self.dist.world_size,  # with samples_per_batch: the position on another world size
            "strategy": self.dist.strategy,  # informational: every strategy writes the one-process format
            "samples_per_batch": self.samples_per_batch,
            "total_steps": self.total_steps,
            "callbacks": {callback_key(cb, i): cb.state_dict() for i, cb in enumerate(self.callbacks)
                          if hasattr(cb, "state_dict")},
            "training_config": self.training_config.to_dict(),
            "task_spec": self.task_spec.to_dict(),
            "model_config": config_dict(self.model_config),
        }

    def restore(self, ckpt: dict[str, Any], state: TrainState) -> dict[str, Any] | None:
        """Load ``ckpt`` into the model, optimizer, schedule, scaler, counters and callbacks (the step guard's own
        state is loaded by the guard: a rollback restores a snapshot but keeps the guard's counters).

        Returns the checkpoint's RNG state (restored by the loop at the matching point), or None for a weights-only
        checkpoint of an older format (then everything else starts fresh, with a warning).
        """
        source = ckpt["_path"]
        if self.skeleton is not None:
            if ckpt["model"]:  # every rank holds a checkpoint file (and checks it); a snapshot only on rank 0
                fsdp.check_model_state(self.skeleton, ckpt["model"], source)
            fsdp.load_full_model_state(self.model, canonical_state_dict(ckpt["model"]))
        else:
            load_model_state(self.model, ckpt["model"], source)
        if ckpt.get("format_version", 0) < 1 or "state" not in ckpt:
            warnings.warn(f"{source!r} holds model weights only (an older format): optimizer, schedule and "
                          "counters start fresh.", stacklevel=3)
            return None
        saved_class, current_class = ckpt.get("optimizer_class"), type(self.optimizer).__qualname__
        if saved_class is not None and saved_class != current_class:  # its state would load and then fail or drift
            raise CheckpointError(f"{source!r} was trained with the optimizer {saved_class}, this run builds "
                                  f"{current_class}: its state cannot continue another optimizer. Fix: resume with "
                                  f"the same optimizer (TrainingConfig.optimizer or Trainer(optimizer=...)), or load "
                                  "only the weights and start a new run.")
        fresh_groups = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        try:
            if self.skeleton is not None:
                fsdp.load_full_optimizer_state(self.model, self.optimizer, ckpt["optimizer"])
            else:
                self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"The optimizer state in {source!r} does not fit this model's parameters ({exc}). "
                                  "Fix: resume with the same model and weight_decay grouping.") from exc
        self.scheduler.load_state_dict(ckpt["scheduler"])
        saved_cfg = ckpt.get("training_config", {})
        self.applied = self._apply_current_settings(fresh_groups, saved_cfg, ckpt.get("total_steps"))
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        state.load_state_dict(ckpt["state"], self.device)
        state.stop_requested, state.stop_reason = False, None
        saved = ckpt.get("callbacks", {})
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "load_state_dict") and callback_key(cb, i) in saved:
                cb.load_state_dict(saved[callback_key(cb, i)])
        _warn_config_drift(saved_cfg, self.training_config.to_dict(), source)
        self._check_data_size(ckpt, state, source)
        cfg = self.training_config
        if (cfg.max_steps is not None and state.global_step >= cfg.max_steps) or state.epoch >= cfg.epochs:
            warnings.warn(f"{source!r} is already at step {state.global_step}, epoch {state.epoch}: with epochs="
                          f"{cfg.epochs}, max_steps={cfg.max_steps} there is nothing left to train. Fix: raise "
                          "epochs or max_steps to continue the run.", stacklevel=3)
        rng: dict[str, Any] = ckpt["rng"]
        return rng


    def _apply_current_settings(self, fresh_groups: list[dict[str, Any]], saved_cfg: dict[str, Any],
                                saved_total: int | None) -> list[str]:
        """Put the current config's optimisation settings into the restored optimizer and schedule.

        The restored state carries the old run's hyperparameters; the freshly built optimizer (``fresh_groups``,
        captured before the load) carries the current ones. Every group hyperparameter is taken from the fresh
        one; the learning rate scales the restored base rates by new/old (so a NaN-guard reduction is kept), and
        the rate at the current step is recomputed with the current schedule (its shape and warmup come from the
        current config: the schedule's function is never saved). Returns the "name: old -> new" lines.
        """
        cfg = self.training_config
        lines = [f"{k}: {saved_cfg[k]!r} -> {getattr(cfg, k)!r}" for k in APPLIED_ON_RESUME
                 if k in saved_cfg and saved_cfg[k] != getattr(cfg, k)]
        if saved_total is not None and self.total_steps is not None and saved_total != self.total_steps:
            lines.append(f"schedule length (optimizer steps, from epochs/max_steps): {saved_total} -> "
                         f"{self.total_steps}")
        groups = self.optimizer.param_groups
        # Only the hyperparameters the config sets, and only when a setting changed: a schedule of the user's may
        # drive others (OneCycleLR cycles momentum), and an unchanged resume keeps the restored groups bit for bit.
        if lines and len(groups) == len(fresh_groups):
            for group, fresh in zip(groups, fresh_groups):
                group.update({k: v for k, v in fresh.items() if k in _CONFIG_GROUP_KEYS})
        old_lr, sched = saved_cfg.get("learning_rate"), self.scheduler
        ratio = cfg.learning_rate / old_lr if isinstance(old_lr, (int, float)) and old_lr > 0 else 1.0
        # (only when something changed: an unchanged resume keeps the restored rates bit for bit)
        if lines and hasattr(sched, "base_lrs") and hasattr(sched, "lr_lambdas"):  # LambdaLR: trainforge's
            sched.base_lrs = [base * ratio for base in sched.base_lrs]
            for group, base, factor in zip(groups, sched.base_lrs, sched.lr_lambdas):
                group["initial_lr"] = base
                # the rate the current schedule gives at this step (last_epoch counts the steps taken)
                group["lr"] = base * factor(sched.last_epoch)
            sched._last_lr = [group["lr"] for group in groups]
        if lines and self.dist.is_main:
            print("[trainforge] resume applies the current optimisation settings: " + "; ".join(lines))
        return lines

    def _check_data_size(self, ckpt: dict[str, Any], state: TrainState, source: str) -> None:
        """A mid-epoch position is a count of samples into this epoch's order, which depends on the dataset's
        size: with another size the rest of the epoch cannot be mapped onto the samples already seen."""
        saved = (ckpt.get("sampler") or {}).get("num_samples")
        now = getattr(self.sampler, "num_samples", None)
        if state.batches_in_epoch == 0 or saved is None or now is None or int(saved) == int(now):
            return
        warnings.warn(f"Resuming mid-epoch from {source!r}, which was written with {int(saved)} training samples, on "
                      f"{int(now)} samples: this epoch's shuffled order depends on the dataset size, so the rest of "
                      f"epoch {state.epoch + 1} is not the rest of the interrupted one (some samples are seen twice "
                      "this epoch, others not at all). Fix: resume with the same training data, or resume from an "
                      "epoch-end checkpoint (epoch_N.pt) when the data changed.", stacklevel=4)

_CONFIG_GROUP_KEYS = ("weight_decay", "betas", "eps")  # the optimizer-group values TrainingConfig sets (lr: below)


def find_checkpoint(resume: str | Path | None, checkpoint_dir: str | Path | None) -> dict[str, Any] | None:
    """The checkpoint ``resume`` names (a path, or ``"auto"``: the newest readable one in ``checkpoint_dir``),
    loaded, with its path under ``"_path"``; None when there is nothing to resume."""
    if resume is None:
        return None
    if str(resume) == "auto":
        if checkpoint_dir is None:
            raise ConfigError(["resume_from='auto' needs checkpoint_dir to search. Fix: set checkpoint_dir, "
                               "or pass the checkpoint's path."], what="Trainer.train")
        # most advanced first, best.pt included (it may be newer than every epoch file: see checkpoint/saver.py);
        # unreadable ones are skipped, warned
        for candidate in ranked_checkpoints(checkpoint_dir, include_best=True):
            try:
                checkpoint = safe_load(candidate)
            except CheckpointError as exc:
                warnings.warn(f"resume_from='auto': skipping {str(candidate)!r}: {exc}", stacklevel=3)
                continue
            checkpoint["_path"] = str(candidate)
            return checkpoint
        print(f"[trainforge] resume_from='auto': no checkpoint in {str(checkpoint_dir)!r} yet, starting fresh.")
        return None
    checkpoint = safe_load(resume)
    checkpoint["_path"] = str(resume)
    return checkpoint


def rebase_position(ckpt: dict[str, Any], state: TrainState, samples_per_batch: int, dist_env: DistEnv,
                    device: torch.device) -> None:
    """Resume a checkpoint written by another number of processes (or batch size) at the same sample."""
    if not dist_env.is_main:
        state.reset_epoch_sums(device)  # the checkpoint's sums cover all ranks: rank 0 carries them
    saved = (int(ckpt.get("world_size", 1)), int(ckpt.get("samples_per_batch", samples_per_batch)))
    if state.batches_in_epoch == 0 or saved == (dist_env.world_size, samples_per_batch):
        return
    batches, exact = rebase_batches(state.batches_in_epoch, saved[1], saved[0], samples_per_batch,
                                    dist_env.world_size)
    if not exact:
        warnings.warn(f"The checkpoint stopped mid-epoch after {state.batches_in_epoch} batches of {saved[1]} on "
                      f"{saved[0]} process(es), which is not a whole number of this run's batches of "
                      f"{samples_per_batch} on {dist_env.world_size}: resuming at the batch before, so a few samples "
                      "are seen twice. Fix: keep the global batch (batch_size x processes) when changing processes.",
                      stacklevel=3)
    state.batches_in_epoch = batches


def config_dict(config: Any) -> dict[str, Any] | None:
    """The model's architecture config as JSON-safe data, whatever form it came in."""
    if config is None:
        return None
    if isinstance(config, dict):
        data = dict(config)
    elif is_dataclass(config) and not isinstance(config, type):
        data = asdict(config)
    elif hasattr(config, "to_dict"):
        data = config.to_dict()
    elif hasattr(config, "__dict__"):
        data = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    else:
        data = {"repr": repr(config)}
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return result


def _warn_config_drift(saved: dict[str, Any], current: dict[str, Any], source: str) -> None:
    changed = sorted(k for k in current if k in saved and k not in _RESUME_FREE and saved[k] != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {current[k]!r}" for k in changed[:6])
        warnings.warn(f"Resuming from {source!r} with a changed config ({details}); the current values are used, "
                      "so the run will not match an uninterrupted one exactly.", stacklevel=4)
