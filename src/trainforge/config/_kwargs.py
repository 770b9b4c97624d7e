"""Typed keywords of ``TrainingConfig(...)`` and ``TrainingConfigBuilder.with_*(...)``, for mypy and IDEs.

GENERATED from the declarations in ``trainforge/config/fields.py`` by ``python -m trainforge.config.typed_surface``.
Do not edit; a test fails when this file is out of date.
"""

from __future__ import annotations

from typing import Any, TypedDict

from trainforge.config.setting import PathLike

__all__ = ["TrainingConfigKwargs", "CheckpointingKwargs", "LoggingKwargs", "OptimizationKwargs", "TrainingKwargs"]


class TrainingConfigKwargs(TypedDict, total=False):
    """The keywords ``TrainingConfig(...)`` accepts: every field, then every alias."""

    epochs: int
    max_steps: int | None
    learning_rate: float
    batch_size: int
    eval_batch_size: int | None
    eval_every_n_steps: int | None
    gradient_accumulation_steps: int
    seed: int
    deterministic: bool
    optimizer: str
    optimizer_kwargs: dict[str, Any]
    weight_decay: float
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    max_grad_norm: float | None
    lr_schedule: str
    warmup_ratio: float
    warmup_steps: int | None
    min_lr_ratio: float
    precision: str
    use_amp: bool
    compile_mode: str | None
    device: str
    validation_split: float
    max_train_samples: int | None
    max_val_samples: int | None
    num_workers: int
    shuffle: bool
    early_stopping_patience: int | None
    early_stopping_min_delta: float
    monitor: str | None
    monitor_mode: str
    checkpoint_dir: PathLike | None
    checkpoint_frequency: int
    checkpoint_every_n_steps: int | None
    keep_last_n: int | None
    save_best: bool
    resume_from_checkpoint: PathLike | None
    overwrite: bool
    output_dir: PathLike | None
    run_name: str | None
    use_wandb: bool
    wandb_project: str | None
    wandb_entity: str | None
    notes: str | None
    tags: list[str]
    log_every_n_steps: int
    dashboard_min_interval_s: float
    progress_bar: bool
    loggers: list[str]
    track_runs: bool
    plots: bool
    export_bundle: bool
    export_formats: list[str]
    export_dir: PathLike
    strategy: str
    nan_guard: bool
    nan_max_consecutive: int
    nan_lr_factor: float | None
    nan_max_rollbacks: int
    on_checkpoint_error: str
    n_epochs: int
    num_epochs: int
    num_train_epochs: int
    lr: float
    per_device_train_batch_size: int
    grad_accum_steps: int
    accumulation_steps: int
    gradient_clip_val: float | None
    grad_clip: float | None
    warmup_proportion: float
    save_every_n_epochs: int
    wandb_run_name: str | None

class TrainingKwargs(TypedDict, total=False):
    """Keywords of :meth:`TrainingConfigBuilder.with_training`."""

    epochs: int
    n_epochs: int
    num_epochs: int
    num_train_epochs: int
    max_steps: int | None
    learning_rate: float
    lr: float
    batch_size: int
    per_device_train_batch_size: int
    eval_batch_size: int | None
    eval_every_n_steps: int | None
    seed: int
    deterministic: bool
    weight_decay: float
    lr_schedule: str
    warmup_ratio: float
    warmup_proportion: float
    warmup_steps: int | None
    min_lr_ratio: float
    validation_split: float
    max_train_samples: int | None
    max_val_samples: int | None
    num_workers: int
    shuffle: bool
    early_stopping_patience: int | None
    early_stopping_min_delta: float
    monitor: str | None
    monitor_mode: str

class LoggingKwargs(TypedDict, total=False):
    """Keywords of :meth:`TrainingConfigBuilder.with_logging`."""

    output_dir: PathLike | None
    run_name: str | None
    wandb_run_name: str | None
    use_wandb: bool
    wandb_project: str | None
    wandb_entity: str | None
    notes: str | None
    tags: list[str]
    log_every_n_steps: int
    dashboard_min_interval_s: float
    progress_bar: bool
    loggers: list[str]
    track_runs: bool
    plots: bool

class CheckpointingKwargs(TypedDict, total=False):
    """Keywords of :meth:`TrainingConfigBuilder.with_checkpointing`."""

    checkpoint_dir: PathLike | None
    frequency: int
    checkpoint_frequency: int
    save_every_n_epochs: int
    every_n_steps: int | None
    checkpoint_every_n_steps: int | None
    keep_last_n: int | None
    save_best: bool
    resume_from: PathLike | None
    resume_from_checkpoint: PathLike | None
    overwrite: bool
    on_checkpoint_error: str

class OptimizationKwargs(TypedDict, total=False):
    """Keywords of :meth:`TrainingConfigBuilder.with_optimization`."""

    gradient_accumulation_steps: int
    grad_accum_steps: int
    accumulation_steps: int
    optimizer: str
    optimizer_kwargs: dict[str, Any]
    weight_decay: float
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    max_grad_norm: float | None
    gradient_clip_val: float | None
    grad_clip: float | None
    lr_schedule: str
    warmup_ratio: float
    warmup_steps: int | None
    min_lr_ratio: float
    precision: str
    use_amp: bool
    compile_mode: str | None
    device: str
    strategy: str
    nan_guard: bool
    nan_max_consecutive: int
    nan_lr_factor: float | None
    nan_max_rollbacks: int
