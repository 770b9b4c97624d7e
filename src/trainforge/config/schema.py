"""``TrainingConfig``: every setting of a training run, validated as a whole.

Design of the constructor
-------------------------
The class is a dataclass, so its fields (with their types and defaults) are declared once, below, and
``repr``/``==``/``dataclasses.fields`` come for free. Its ``__init__`` is written by hand as
``__init__(self, **kwargs: Unpack[TrainingConfigKwargs])`` because it must do three things a generated
one cannot: accept aliases (``lr=``, ``save_every_n_epochs=``), turn unknown keys into a ``ConfigError``
with a did-you-mean instead of a ``TypeError``, and report every problem in one error.
``TrainingConfigKwargs`` is a ``TypedDict`` naming every field and alias with its type, so mypy and IDEs
still check and complete each keyword (PEP 692). A test keeps it in step with the fields.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

from trainforge.config.keys import ALIASES, canonicalize
from trainforge.config.validation import find_problems, normalize
from trainforge.errors import ConfigError, bounded_repr

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

# A path may be given as str or os.PathLike; it is stored as str.
PathLike: TypeAlias = str | os.PathLike[str]


class TrainingConfigKwargs(TypedDict, total=False):
    """The keywords ``TrainingConfig(...)`` accepts: every field, then every alias (see ``keys.ALIASES``)."""

    epochs: int
    max_steps: int | None
    learning_rate: float
    batch_size: int
    eval_batch_size: int | None
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
    eval_every_n_steps: int | None
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
    # aliases
    save_every_n_epochs: int
    n_epochs: int
    num_epochs: int
    num_train_epochs: int
    lr: float
    grad_accum_steps: int
    accumulation_steps: int
    gradient_clip_val: float | None
    grad_clip: float | None
    per_device_train_batch_size: int
    warmup_proportion: float
    wandb_run_name: str | None


@dataclass(init=False)
class TrainingConfig:
    """Every setting of a training run. Build it with keywords; it is validated on construction.

    Example::

        cfg = TrainingConfig(epochs=10, learning_rate=5e-5, batch_size=4, use_wandb=True, wandb_project="p")

    Aliases such as ``lr`` or ``save_every_n_epochs`` are accepted and stored under the canonical name.
    Every problem (unknown keys, types, ranges, choices, contradictions between fields) is reported at
    once in a single :class:`~trainforge.errors.ConfigError`. Fields may be changed afterwards; call
    :meth:`validate` (the trainer does, before step 0) to check again.
    """

    # --- training
    epochs: int = 3  # total target; a resumed run continues up to it
    max_steps: int | None = None  # cap on optimizer steps, across epochs
    learning_rate: float = 3e-4
    batch_size: int = 8
    eval_batch_size: int | None = None  # None -> batch_size
    gradient_accumulation_steps: int = 1
    seed: int = 42
    deterministic: bool = False
    # --- optimisation
    optimizer: str = "adamw"  # any torch.optim optimizer by name, any case: adamw | adam | sgd | adafactor | ...
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)  # its other keywords, e.g. {"momentum": 0.9}
    weight_decay: float = 0.01  # never applied to biases and norms
    adam_beta1: float = 0.9  # adam_*: the Adam family (adamw, adam, adamax, nadam, radam)
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float | None = 1.0  # None or 0 disables clipping
    lr_schedule: str = "cosine"  # cosine | linear | constant, after linear warmup
    warmup_ratio: float = 0.0  # fraction of optimizer steps
    warmup_steps: int | None = None  # overrides warmup_ratio when set
    min_lr_ratio: float = 0.0  # the schedule decays to learning_rate * min_lr_ratio
    precision: str = "auto"  # auto | fp32 | bf16-mixed | fp16-mixed
    use_amp: bool = True  # False forces fp32 whatever precision says
    compile_mode: str | None = None  # None = eager; else a torch.compile mode
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    # --- data
    validation_split: float = 0.0  # used only when no val_data is given
    max_train_samples: int | None = None
    max_val_samples: int | None = None
    eval_every_n_steps: int | None = None  # also validate mid-epoch, after every N-th optimizer step
    num_workers: int = 0
    shuffle: bool = True
    # --- early stopping
    early_stopping_patience: int | None = None  # None = off
    early_stopping_min_delta: float = 0.0
    monitor: str | None = None  # None = val/loss with validation data, else train/loss
    monitor_mode: str = "min"
    # --- checkpointing (files are written only when checkpoint_dir is set)
    checkpoint_dir: str | None = None
    checkpoint_frequency: int = 1  # every N epochs; the last epoch is always saved
    checkpoint_every_n_steps: int | None = None  # mid-epoch checkpoints for resume
    keep_last_n: int | None = None  # rotate epoch checkpoints; best.pt is never rotated away
    save_best: bool = True
    resume_from_checkpoint: str | None = None  # a path, or "auto" for the latest in checkpoint_dir
    # A fresh run refuses a checkpoint_dir or run directory that holds another run; True removes that run's files
    # (only trainforge's own: checkpoints, run records) first.
    overwrite: bool = False
    # --- run and logging
    output_dir: str | None = None  # None -> runs/<run_name>
    run_name: str | None = None  # None -> a unique generated name
    use_wandb: bool = False
    wandb_project: str | None = None  # None -> "trainforge"
    wandb_entity: str | None = None
    notes: str | None = None
    tags: list[str] = field(default_factory=list)
    log_every_n_steps: int = 10
    # W&B, TensorBoard and MLflow get a step line at most this often (console, CSV and steps.jsonl get every line):
    # a 3 ms step logged every 10 steps is 33 lines/s, which costs a tiny model ~5% of its speed in the backends'
    # Python and is more points than W&B advises (< 100k per metric). 0 sends every line.
    dashboard_min_interval_s: float = 1.0
    progress_bar: bool = True
    loggers: list[str] = field(default_factory=list)  # extra backends: tensorboard | mlflow | wandb
    track_runs: bool = True  # record the run in <output_dir parent>/trainforge_runs.db (SQLite)
    plots: bool = True  # plots/loss.png and plots/metrics.png in the run directory at the end (sweep trials: off)
    # --- export
    export_bundle: bool = False
    export_formats: list[str] = field(default_factory=lambda: ["onnx", "torchscript"])
    export_dir: str = "exports"
    # --- distributed
    strategy: str = "auto"  # auto | single | ddp | fsdp
    # --- reliability
    nan_guard: bool = True  # skip optimizer steps whose loss or gradient norm is NaN/Inf (counted in results)
    nan_max_consecutive: int = 3  # this many bad steps in a row roll back to the last good state
    nan_lr_factor: float | None = 0.5  # each rollback multiplies the learning rate by this; None keeps it
    nan_max_rollbacks: int = 2  # one more bad streak after this many rollbacks stops the run with an error
    on_checkpoint_error: str = "warn"  # warn: keep training; stop: raise CheckpointError (earlier files intact)

    def __init__(self, **kwargs: Unpack[TrainingConfigKwargs]) -> None:
        self._assign(kwargs, what="TrainingConfig")

    # ------------------------------------------------------------ validation

    def _assign(self, data: Mapping[Any, Any], what: str) -> None:
        """Set every field from ``data`` (defaults for the rest), then raise if anything is wrong."""
        values, key_problems = canonicalize(data, _defaults().keys())
        full = {name: values.get(name, _default(name)) for name in _defaults()}
        full = normalize(full, _field_types())
        for name, value in full.items():
            setattr(self, name, value)
        problems = [*key_problems, *self.problems()]
        if problems:
            raise ConfigError(problems, what)

    def problems(self) -> list[str]:
        """Every problem of the current values, one line each (empty when the config is valid)."""
        return find_problems(self._values(), _field_types(), _defaults())

    def validate(self) -> None:
        """Check the current values again (fields are mutable); raise one ``ConfigError`` listing all problems.

        Paths given as ``os.PathLike`` and ints given for float fields are converted first.
        """
        for name, value in normalize(self._values(), _field_types()).items():
            setattr(self, name, value)
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    def _values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # ------------------------------------------------------------ conversions

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON/YAML-safe data (lists are copies)."""
        return copy.deepcopy(self._values())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a mapping; aliases are accepted, unknown keys are a ``ConfigError``."""
        return cls._from_mapping(data, what="TrainingConfig")

    @classmethod
    def _from_mapping(cls, data: Any, what: str) -> Self:
        if not isinstance(data, Mapping):
            problem = f"config: must be a mapping of option names to values, got {bounded_repr(data)}. Fix: pass a dict."
            raise ConfigError([problem], what)
        obj = cls.__new__(cls)
        obj._assign(data, what)
        return obj

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the config to ``path`` as YAML (``.yaml``/``.yml``) or JSON (``.json``); returns the path."""
        from trainforge.config.io import write_mapping

        return write_mapping(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a config saved by :meth:`save` (or written by hand) from a ``.yaml``/``.yml``/``.json`` file."""
        from trainforge.config.io import read_mapping

        data = read_mapping(path)
        return cls._from_mapping(data, what=f"TrainingConfig from {os.fspath(path)}")

    def replace(self, **changes: Unpack[TrainingConfigKwargs]) -> Self:
        """A new, validated config with ``changes`` applied (aliases accepted); this one is unchanged."""
        values, problems = canonicalize(changes, _defaults().keys())
        if problems:
            raise ConfigError(problems)
        return self._from_mapping({**self.to_dict(), **values}, what="TrainingConfig")

    @classmethod
    def from_preset(cls, name: str, **changes: Unpack[TrainingConfigKwargs]) -> Self:
        """The config of preset ``name`` (see ``list_presets()``), with optional ``changes`` on top."""
        from trainforge.config.presets import get_preset

        values, problems = canonicalize(changes, _defaults().keys())
        if problems:
            raise ConfigError(problems)
        return cls._from_mapping({**get_preset(name), **values}, what=f"TrainingConfig from preset {name!r}")

    # ------------------------------------------------------------ resolved values

    @property
    def resolved_eval_batch_size(self) -> int:
        """``eval_batch_size``, or ``batch_size`` when it is None."""
        return self.eval_batch_size if self.eval_batch_size is not None else self.batch_size

    def resolved_monitor(self, has_validation: bool) -> str:
        """The metric early stopping and ``best.pt`` follow: ``monitor``, else val/loss or train/loss
        (``monitored_metric``; ``trainer.monitor.Monitor`` checks it and compares values)."""
        return monitored_metric(self.monitor, has_validation)


def monitored_metric(monitor: str | None, has_validation: bool) -> str:
    """The one rule for the monitored metric's name: ``monitor`` when set, else ``val/loss`` when the run has
    validation data, else ``train/loss``."""
    if monitor is not None:
        return monitor
    return "val/loss" if has_validation else "train/loss"


@lru_cache(maxsize=1)
def _field_types() -> dict[str, Any]:
    # Evaluated once: the annotations are strings because of ``from __future__ import annotations``.
    hints = typing.get_type_hints(TrainingConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainingConfig)}


@lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    return {f.name: _default(f.name) for f in dataclasses.fields(TrainingConfig)}


def _default(name: str) -> Any:
    f = TrainingConfig.__dataclass_fields__[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


__all__ = ["ALIASES", "TrainingConfig", "TrainingConfigKwargs"]
