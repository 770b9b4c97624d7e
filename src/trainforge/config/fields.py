"""Every ``TrainingConfig`` field, declared once: type, default, check, fix text, builder section, aliases, whether
the Lightning path honours it and what a change on resume means (see :func:`~trainforge.config.setting.setting`).

Everything else is derived from these declarations, never written again:

- the checks of one field (``validation.value_problems``), the path/``clean`` conversions (``validation.normalize``);
- :data:`ALIASES` (``TrainingConfig(lr=...)``, ``keys.canonicalize``);
- :data:`BUILDER_KEYWORDS`: the keywords each ``TrainingConfigBuilder.with_*`` method takes;
- :func:`text_fields`: the fields the override reader keeps as text (``run_name=2024`` is ``"2024"``);
- the Lightning coordinator's allowlist (``lightning/fields.py``);
- which changes a resumed run applies or warns about (``trainer/resume.py``);
- the typed keyword surfaces for mypy and IDEs, generated into ``_kwargs.py`` (``python -m
  trainforge.config.typed_surface``; a test fails when it is out of date).

Rules that involve two fields are not declared here: they all live in ``validation.cross_field_problems``.
To add a field: declare it below (and regenerate ``_kwargs.py``); a field the Lightning coordinator does not apply
yet stays ``lightning="refused"`` (the default), so setting it there is an error rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from trainforge.config.setting import SECTIONS, Rule, Setting, setting
from trainforge.config.validation import (
    AT_LEAST_1,
    AT_LEAST_1_OR_NONE,
    COMPILE_MODES,
    FRACTION,
    LR_SCHEDULES,
    MONITOR_MODES,
    NON_EMPTY_PATH_OR_NONE,
    NON_NEGATIVE,
    ON_CHECKPOINT_ERROR,
    POSITIVE,
    PRECISIONS,
    STRATEGIES,
    ZERO_OR_MORE,
    device_problems,
    export_format_problems,
    logger_problems,
    non_empty,
    non_negative,
    optimizer_problems,
    union_args,
    zero_or_more,
)
from trainforge.safe_paths import NAME_RULE, is_safe_name


@dataclass(init=False)
class TrainingFields:
    """The fields of :class:`~trainforge.config.TrainingConfig` (which adds the constructor, checks and
    conversions). Each entry is the whole declaration of one setting."""

    # --- training
    epochs: int = setting(
        3, "training", rule=AT_LEAST_1, fix="use a number of epochs such as 3 (cap training with max_steps instead).",
        aliases=("n_epochs", "num_epochs", "num_train_epochs"), lightning="honoured", resume="free",
    )  # total target; a resumed run continues up to it
    max_steps: int | None = setting(
        None, "training", rule=AT_LEAST_1_OR_NONE, fix="use a number of optimizer steps, or None for no cap.",
        lightning="honoured", resume="free",
    )  # cap on optimizer steps, across epochs
    learning_rate: float = setting(
        3e-4, "training", rule=POSITIVE, fix="use a value such as 3e-4.", aliases=("lr",),
        lightning="honoured", resume="applied",
    )
    batch_size: int = setting(
        8, "training", rule=AT_LEAST_1, fix="use a batch size such as 8.",
        aliases=("per_device_train_batch_size",), lightning="honoured",
    )
    eval_batch_size: int | None = setting(
        None, "training", rule=AT_LEAST_1_OR_NONE, fix="use a batch size such as 16, or None to use batch_size.",
        lightning="data",
    )  # None -> batch_size
    # Validation also runs every N optimizer steps, besides each epoch's end (rows in steps.jsonl; best checkpoint
    # and early stopping may act on them).
    eval_every_n_steps: int | None = setting(
        None, "training", rule=AT_LEAST_1_OR_NONE,
        fix="use a number of optimizer steps such as 500, or None to validate only at each epoch's end.",
        resume="free",  # when to validate, not what is trained: the resumed steps stay the uninterrupted run's
    )
    gradient_accumulation_steps: int = setting(
        1, "optimization", rule=AT_LEAST_1,
        fix="use 1 for no accumulation, or the number of micro-batches per optimizer step.",
        aliases=("grad_accum_steps", "accumulation_steps"), lightning="honoured",
    )
    seed: int = setting(
        42, "training", rule=Rule(lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1"),
        fix="use a seed such as 42.", lightning="honoured",
    )
    deterministic: bool = setting(False, "training", lightning="honoured")
    # --- optimisation
    optimizer: str = setting(
        "adamw", "optimization", check=optimizer_problems, clean=lambda s: s.strip().lower(), lightning="honoured",
    )  # any torch.optim optimizer by name, any case (torch's class names: "AdamW" is "adamw"): adamw | adam | sgd | ...
    optimizer_kwargs: dict[str, Any] = setting(
        {}, "optimization", lightning="honoured",
    )  # its other keywords, e.g. {"momentum": 0.9} (checked against the optimizer: validation.cross_field_problems)
    weight_decay: float = setting(
        0.01, ("training", "optimization"), rule=NON_NEGATIVE, fix="use a value such as 0.01, or 0.0 for none.",
        lightning="honoured", resume="applied",
    )  # never applied to biases and norms
    adam_beta1: float = setting(
        0.9, "optimization", rule=FRACTION, fix="use a value such as 0.9.", lightning="honoured", resume="applied",
    )  # adam_*: the Adam family (adamw, adam, adamax, nadam, radam)
    adam_beta2: float = setting(
        0.999, "optimization", rule=FRACTION, fix="use a value such as 0.999.", lightning="honoured", resume="applied",
    )
    adam_epsilon: float = setting(
        1e-8, "optimization", rule=POSITIVE, fix="use a value such as 1e-8.", lightning="honoured", resume="applied",
    )
    max_grad_norm: float | None = setting(
        1.0, "optimization", rule=Rule(non_negative, "must be a non-negative number or None"),
        fix="use a value such as 1.0, or None (or 0) to disable clipping.",
        aliases=("gradient_clip_val", "grad_clip"), lightning="honoured", resume="applied",
    )  # None or 0 disables clipping
    lr_schedule: str = setting(
        "cosine", ("training", "optimization"), choices=LR_SCHEDULES, lightning="honoured", resume="applied",
    )  # after linear warmup
    warmup_ratio: float = setting(
        0.0, ("training", "optimization"), rule=FRACTION,
        fix="use a fraction of the training steps such as 0.1, or 0.0 for no warmup.",
        aliases=("warmup_proportion",), lightning="honoured", resume="applied",
    )  # fraction of optimizer steps
    warmup_steps: int | None = setting(
        None, ("training", "optimization"), rule=Rule(zero_or_more, "must be 0 or more, or None"),
        fix="use a number of optimizer steps, or None to use warmup_ratio.",
        lightning="honoured", resume="applied",
    )  # overrides warmup_ratio when set
    min_lr_ratio: float = setting(
        0.0, ("training", "optimization"), rule=Rule(lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        fix="use a fraction of learning_rate such as 0.1, or 0.0 to decay to zero.",
        lightning="honoured", resume="applied",
    )  # the schedule decays to learning_rate * min_lr_ratio
    precision: str = setting("auto", "optimization", choices=PRECISIONS, lightning="honoured")
    use_amp: bool = setting(True, "optimization", lightning="honoured")  # False forces fp32 whatever precision says
    compile_mode: str | None = setting(
        None, "optimization", choices=(None, *COMPILE_MODES), lightning="honoured",
    )  # None = eager; else a torch.compile mode
    device: str = setting("auto", "optimization", check=device_problems, lightning="honoured")
    # --- data
    validation_split: float = setting(
        0.0, "training", rule=FRACTION, fix="use a fraction such as 0.1, or 0.0 for no split.", lightning="data",
    )  # used only when no val_data is given
    max_train_samples: int | None = setting(
        None, "training", rule=AT_LEAST_1_OR_NONE, fix="use a number of samples, or None to use them all.",
        lightning="data",
    )
    max_val_samples: int | None = setting(
        None, "training", rule=AT_LEAST_1_OR_NONE, fix="use a number of samples, or None to use them all.",
        lightning="data", resume="free",
    )
    num_workers: int = setting(
        0, "training", rule=ZERO_OR_MORE,
        fix="use 0 to load data in the main process, or a small number such as 2.",
        lightning="honoured", resume="free",
    )
    shuffle: bool = setting(True, "training", lightning="honoured")
    # --- early stopping
    early_stopping_patience: int | None = setting(
        None, "training", rule=AT_LEAST_1_OR_NONE,
        fix="use a number of epochs such as 3, or None to turn early stopping off.",
        lightning="honoured", resume="free",
    )  # None = off
    early_stopping_min_delta: float = setting(
        0.0, "training", rule=NON_NEGATIVE, fix="use 0.0, or the smallest change that counts as an improvement.",
        lightning="honoured", resume="free",
    )
    monitor: str | None = setting(
        None, "training", rule=Rule(non_empty, "must be a metric name or None"),
        fix="use a name such as 'val/loss', or None for the default.", lightning="honoured", resume="free",
    )  # None = val/loss with validation data, else train/loss
    monitor_mode: str = setting("min", "training", choices=MONITOR_MODES, lightning="honoured", resume="free")
    # --- checkpointing (files are written only when checkpoint_dir is set)
    checkpoint_dir: str | None = setting(
        None, "checkpointing", rule=NON_EMPTY_PATH_OR_NONE, fix="use a directory such as './checkpoints', or None.",
        path=True, lightning="honoured", resume="free",
    )
    checkpoint_frequency: int = setting(
        1, "checkpointing", rule=AT_LEAST_1, fix="use 1 to save every epoch, or N to save every N epochs.",
        aliases=("save_every_n_epochs",), builder_aliases=("frequency",), lightning="honoured", resume="free",
    )  # every N epochs; the last epoch is always saved
    checkpoint_every_n_steps: int | None = setting(
        None, "checkpointing", rule=AT_LEAST_1_OR_NONE, fix="use a number of optimizer steps, or None.",
        builder_aliases=("every_n_steps",), lightning="honoured", resume="free",
    )  # mid-epoch checkpoints for resume
    keep_last_n: int | None = setting(
        None, "checkpointing", rule=AT_LEAST_1_OR_NONE, fix="use a number such as 3, or None to keep every checkpoint.",
        lightning="honoured", resume="free",
    )  # rotate epoch checkpoints; best.pt is never rotated away
    save_best: bool = setting(True, "checkpointing", lightning="honoured", resume="free")
    resume_from_checkpoint: str | None = setting(
        None, "checkpointing", rule=Rule(non_empty, "must be a path, 'auto' or None"),
        fix="use a checkpoint path, 'auto', or None.", builder_aliases=("resume_from",), path=True, resume="free",
    )  # a path, or "auto" for the latest in checkpoint_dir
    # A fresh run refuses a checkpoint_dir or run directory that holds another run; True removes that run's files
    # (only trainforge's own: checkpoints, run records) first.
    overwrite: bool = setting(False, "checkpointing", lightning="honoured", resume="free")
    # --- run and logging
    output_dir: str | None = setting(
        None, "logging", rule=NON_EMPTY_PATH_OR_NONE, fix="use a directory such as './runs/exp-1', or None.",
        path=True, lightning="honoured", resume="free",
    )  # None -> runs/<run_name>
    run_name: str | None = setting(
        None, "logging", rule=Rule(is_safe_name, f"must be one plain name ({NAME_RULE})"),
        fix="use a name such as 'exp-1' (it becomes the directory runs/<run_name> and exports/<run_name>).",
        aliases=("wandb_run_name",), lightning="honoured", resume="free",
    )  # None -> a unique generated name
    use_wandb: bool = setting(False, "logging", lightning="honoured", resume="free")
    wandb_project: str | None = setting(
        None, "logging", rule=Rule(non_empty, "must be a non-empty name or None"),
        fix="use a project name, or None for 'trainforge'.", lightning="honoured", resume="free",
    )  # None -> "trainforge"
    wandb_entity: str | None = setting(None, "logging", lightning="honoured", resume="free")
    notes: str | None = setting(None, "logging", lightning="honoured", resume="free")
    tags: list[str] = setting([], "logging", lightning="honoured", resume="free")
    log_every_n_steps: int = setting(
        10, "logging", rule=AT_LEAST_1, fix="use a value such as 10.", lightning="honoured", resume="free",
    )
    # W&B, TensorBoard and MLflow get a step line at most this often (console, CSV and steps.jsonl get every line):
    # a 3 ms step logged every 10 steps is 33 lines/s, which costs a tiny model ~5% of its speed in the backends'
    # Python and is more points than W&B advises (< 100k per metric). 0 sends every line.
    dashboard_min_interval_s: float = setting(
        1.0, "logging", rule=Rule(non_negative, "must be a non-negative number of seconds"),
        fix="use 1.0 (the default), or 0 to send every step line to W&B, TensorBoard and MLflow.",
        lightning="display", resume="free",
    )
    progress_bar: bool = setting(True, "logging", lightning="honoured", resume="free")
    loggers: list[str] = setting(
        [], "logging", check=logger_problems, lightning="honoured", resume="free",
    )  # extra backends: tensorboard | mlflow | wandb
    track_runs: bool = setting(
        True, "logging", lightning="honoured", resume="free",
    )  # record the run in <output_dir parent>/trainforge_runs.db (SQLite)
    plots: bool = setting(
        True, "logging", lightning="honoured", resume="free",
    )  # plots/loss.png and plots/metrics.png in the run directory at the end (sweep trials: off)
    # --- export
    export_bundle: bool = setting(False, "export", lightning="honoured", resume="free")
    export_formats: list[str] = setting(
        ["onnx", "torchscript"], "export", check=export_format_problems, builder_aliases=("formats",),
        lightning="honoured", resume="free",
    )
    export_dir: str = setting(
        "exports", "export", rule=Rule(non_empty, "must be a non-empty path"),
        fix="use a directory such as 'exports'.", path=True, lightning="honoured", resume="free",
    )
    # --- distributed
    strategy: str = setting("auto", "optimization", choices=STRATEGIES, lightning="honoured")
    # --- reliability (the NaN guard is the Trainer's: refused on the Lightning path, see lightning/fields.py)
    nan_guard: bool = setting(
        True, "optimization",
    )  # skip optimizer steps whose loss or gradient norm is NaN/Inf (counted in results)
    nan_max_consecutive: int = setting(
        3, "optimization", rule=AT_LEAST_1,
        fix="use the number of NaN/Inf steps in a row that triggers a rollback, such as 3.", resume="free",
    )  # this many bad steps in a row roll back to the last good state
    nan_lr_factor: float | None = setting(
        0.5, "optimization", rule=Rule(lambda v: 0 < v < 1, "must be in (0, 1) or None"),
        fix="use a factor such as 0.5 to halve the learning rate at each rollback, or None to keep it.", resume="free",
    )  # each rollback multiplies the learning rate by this; None keeps it
    nan_max_rollbacks: int = setting(
        2, "optimization", rule=ZERO_OR_MORE, fix="use a number such as 2, or 0 to stop at the first NaN/Inf streak.",
        resume="free",
    )  # one more bad streak after this many rollbacks stops the run with an error
    on_checkpoint_error: str = setting(
        "warn", "checkpointing", choices=ON_CHECKPOINT_ERROR, lightning="honoured", resume="free",
    )  # warn: keep training; stop: raise CheckpointError (earlier files intact)


# ---------------------------------------------------------------- derived from the declarations

SETTINGS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in dataclasses.fields(TrainingFields)}

# Names other libraries (HF Trainer, Lightning, older trainforge notebooks) use for a field -> the field.
ALIASES: dict[str, str] = {alias: name for name, spec in SETTINGS.items() for alias in spec.aliases}


def _builder_keywords() -> dict[str, dict[str, str]]:
    """``with_<section>`` -> {keyword it takes -> field}: a field's name in each of its sections; its aliases and
    builder aliases in its first section only."""
    keywords: dict[str, dict[str, str]] = {f"with_{section}": {} for section in SECTIONS}
    for name, spec in SETTINGS.items():
        home, *others = spec.sections
        keywords[f"with_{home}"].update({key: name for key in (*spec.builder_aliases, name, *spec.aliases)})
        for section in others:
            keywords[f"with_{section}"][name] = name
    return keywords


BUILDER_KEYWORDS: dict[str, dict[str, str]] = _builder_keywords()


@lru_cache(maxsize=1)
def field_types() -> dict[str, Any]:
    """Field name -> its type (the annotations are strings because of ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(TrainingFields)
    return {name: hints[name] for name in SETTINGS}


@lru_cache(maxsize=1)
def text_fields() -> frozenset[str]:
    """Fields (and aliases) whose value is text and never a number or bool: the override reader keeps what was
    typed (``run_name=2024`` is ``"2024"``, ``notes=yes`` is ``"yes"``) instead of YAML's reading."""
    names = {
        name for name, tp in field_types().items()
        if str in union_args(tp) and not {bool, int, float} & set(union_args(tp))
    }
    return frozenset(names | {alias for alias, name in ALIASES.items() if name in names})
