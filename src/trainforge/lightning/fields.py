"""Which ``TrainingConfig`` fields ``TrainingCoordinator`` honours on the Lightning path, and the refusal of the rest.

A field is honoured when the Coordinator applies it (most through Lightning's own options, see
:mod:`trainforge.lightning.coordinator`). Every other field is refused by name before fitting when it is set to
anything but its default — one ``ConfigError`` that lists each such field, its value, why, and the fix — so a
setting never does nothing without a word. Fields added to ``TrainingConfig`` later are refused until the
Coordinator learns them (they are not in ``HONOURED``).
"""

from __future__ import annotations

from trainforge.config import TrainingConfig
from trainforge.errors import ConfigError, bounded_repr

__all__ = ["DATA_FIELDS", "DISPLAY_ONLY", "HONOURED", "check_fields"]

_USE_TRAINER = "Fix: use trainforge.Trainer for it, or leave it at its default on the Lightning path."

# Applied by the Coordinator (through Lightning, trainforge's optimizer/schedule/loss, or its own run files).
HONOURED = frozenset({
    "epochs", "max_steps", "learning_rate", "batch_size", "eval_batch_size", "gradient_accumulation_steps", "seed",
    "deterministic", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "lr_schedule",
    "warmup_ratio", "warmup_steps", "min_lr_ratio", "precision", "use_amp", "compile_mode", "device",
    "validation_split", "max_train_samples", "max_val_samples", "num_workers", "shuffle", "early_stopping_patience",
    "early_stopping_min_delta", "monitor", "monitor_mode", "checkpoint_dir", "checkpoint_frequency",
    "checkpoint_every_n_steps", "keep_last_n", "save_best", "on_checkpoint_error", "output_dir", "run_name",
    "use_wandb", "wandb_project", "wandb_entity", "notes", "tags", "log_every_n_steps", "progress_bar", "loggers",
    "track_runs", "plots", "export_bundle", "export_formats", "export_dir", "strategy",
    "optimizer", "optimizer_kwargs",  # (the module builds its optimizer with the Trainer's build_optimizer)
    "overwrite",  # (its run directory: one run per directory, as on the Trainer path)
})

# Applied only when the Coordinator builds the data (train_data=/val_data=); a LightningDataModule builds its own
# loaders, so these are refused with one (batch_size, num_workers and shuffle always have a value: the
# datamodule's own win, as documented).
DATA_FIELDS = ("validation_split", "max_train_samples", "max_val_samples", "eval_batch_size")

_WHY: dict[str, str] = {
    "resume_from_checkpoint": "the Lightning path does not resume a run (neither trainforge's .pt checkpoints nor "
                              "its own .ckpt files: the epoch history, best metric and rotation would restart). "
                              "Fix: train with trainforge.Trainer and resume with train(..., resume_from=...), or "
                              "leave it unset here",
    "nan_guard": "Lightning has no step guard that skips non-finite steps and rolls back. " + _USE_TRAINER,
    "nan_max_consecutive": "it configures trainforge's NaN guard, which Lightning does not have. " + _USE_TRAINER,
    "nan_lr_factor": "it configures trainforge's NaN guard, which Lightning does not have. " + _USE_TRAINER,
    "nan_max_rollbacks": "it configures trainforge's NaN guard, which Lightning does not have. " + _USE_TRAINER,
}

# Display pacing of trainforge's own console and dashboards, which a Lightning run does not use (Lightning paces
# its loggers with log_every_n_steps): accepted so that one config can drive both paths; it changes no result.
DISPLAY_ONLY = frozenset({"dashboard_min_interval_s"})


def check_fields(cfg: TrainingConfig, *, datamodule_given: bool) -> None:
    """Raise one ``ConfigError`` naming every set field the Coordinator cannot honour (nothing when all can)."""
    defaults = TrainingConfig().to_dict()
    problems: list[str] = []
    for name, value in cfg.to_dict().items():
        if value == defaults.get(name):
            continue
        if datamodule_given and name in DATA_FIELDS:
            problems.append(f"{name}={bounded_repr(value)}: a LightningDataModule builds its own data loaders, so the Coordinator "
                            "cannot apply it. Fix: pass the data as train_data=/val_data= (the Coordinator applies "
                            "it then), or apply it inside your datamodule and leave the field at its default")
        elif name not in HONOURED and name not in DISPLAY_ONLY:
            why = _WHY.get(name, f"the Lightning path has no equivalent of this trainforge.Trainer setting. "
                                 f"{_USE_TRAINER}")
            problems.append(f"{name}={bounded_repr(value)}: not applied by TrainingCoordinator: {why}")
    if problems:
        raise ConfigError(problems, what="TrainingCoordinator")
