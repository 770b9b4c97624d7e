"""What a checkpoint holds and how a run comes back from one: the payload, the restore, the position on another
world size, and finding the checkpoint ``resume_from`` names.

``RunCheckpoint`` is the one place that knows the checkpoint's contents; the Trainer's checkpoint writes, the NaN
guard's in-memory snapshots and resumes all go through it, so the three can never disagree.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainforge import __version__
from trainforge.checkpoint.io import FORMAT_VERSION, canonical_state_dict, load_model_state, safe_load
from trainforge.checkpoint.manager import ranked_checkpoints
from trainforge.checkpoint.rng import capture_rng
from trainforge.config import TrainingConfig
from trainforge.data.sampler import ResumableSampler
from trainforge.data.streaming import ResumableIterable
from trainforge.distributed import fsdp
from trainforge.distributed.env import DistEnv, rebase_batches
from trainforge.errors import CheckpointError, ConfigError
from trainforge.tasks import TaskSpec
from trainforge.trainer.events import callback_key
from trainforge.trainer.state import TrainState

__all__ = ["RunCheckpoint", "config_dict", "find_checkpoint", "rebase_position"]

# Config fields whose change between a checkpoint and a resumed run is expected, so not warned about.
_RESUME_FREE = {"epochs", "max_steps", "resume_from_checkpoint", "run_name", "output_dir", "progress_bar", "notes",
                "use_wandb", "wandb_project", "wandb_entity", "tags", "export_bundle", "export_formats", "export_dir",
                "log_every_n_steps", "checkpoint_dir", "keep_last_n", "on_checkpoint_error"}


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
    run_id: str | None = None

    def payload(self, state: TrainState, kind: str) -> dict[str, Any]:
        """The checkpoint dict (``kind``: epoch, step, best or snapshot)."""
        if self.skeleton is not None:  # FSDP (collective): the full states on rank 0, one-process format
            model_state = fsdp.full_model_state(self.model)
            optim_state = fsdp.full_optimizer_state(self.model, self.optimizer)
        else:
            model_state, optim_state = self.model.state_dict(), self.optimizer.state_dict()
        return {
            "format_version": FORMAT_VERSION,
            "trainforge_version": __version__,
            "kind": kind,
            "run_name": self.run_name,
            "run_id": self.run_id,  # the run's identity: a fresh run never writes into a directory holding another
            "model": canonical_state_dict(model_state),
            "optimizer": optim_state,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "state": state.state_dict(),
            "rng": capture_rng(),
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "world_size": self.dist.world_size,  # with samples_per_batch: the position on another world size
            "strategy": self.dist.strategy,  # informational: every strategy writes the one-process format
            "samples_per_batch": self.samples_per_batch,
            "callbacks": {callback_key(cb, i): cb.state_dict() for i, cb in enumerate(self.callbacks)
                          if hasattr(cb, "state_dict")},
            "training_config": self.training_config.to_dict(),
            "task_spec": self.task_spec.to_dict(),
            "model_config": config_dict(self.model_config),
        }

    def restore(self, ckpt: dict[str, Any], state: TrainState) -> dict[str, Any] | None:
        """Load ``ckpt`` into the model, optimizer, schedule, scaler, counters and callbacks.

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
        try:
            if self.skeleton is not None:
                fsdp.load_full_optimizer_state(self.model, self.optimizer, ckpt["optimizer"])
            else:
                self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"The optimizer state in {source!r} does not fit this model's parameters ({exc}). "
                                  "Fix: resume with the same model and weight_decay grouping.") from exc
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        state.load_state_dict(ckpt["state"], self.device)
        state.stop_requested, state.stop_reason = False, None
        saved = ckpt.get("callbacks", {})
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "load_state_dict") and callback_key(cb, i) in saved:
                cb.load_state_dict(saved[callback_key(cb, i)])
        _warn_config_drift(ckpt.get("training_config", {}), self.training_config.to_dict(), source)
        rng: dict[str, Any] = ckpt["rng"]
        return rng


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
