"""``TrainingConfigBuilder``: an immutable, fluent way to assemble a TrainingConfig from a preset.

Every ``with_*`` call returns a new builder and leaves the original untouched, so one base builder can
fan out into many trials. Values are only collected along the way; ``build()`` validates them all at
once. A keyword a ``with_*`` method does not take is an immediate ``ConfigError`` that says which
method does take it. The keyword types live in one ``TypedDict`` per method, so mypy and IDEs check them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypedDict

from trainforge.config._suggest import closest, quote_list
from trainforge.config.keys import canonicalize
from trainforge.config.presets import get_preset
from trainforge.config.schema import PathLike, TrainingConfig, _defaults
from trainforge.errors import ConfigError, bounded_repr

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack


class TrainingKwargs(TypedDict, total=False):
    """Keywords of :meth:`TrainingConfigBuilder.with_training`."""

    epochs: int
    max_steps: int | None
    learning_rate: float
    batch_size: int
    eval_batch_size: int | None
    seed: int
    deterministic: bool
    weight_decay: float
    warmup_ratio: float
    warmup_steps: int | None
    lr_schedule: str
    min_lr_ratio: float
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
    n_epochs: int
    num_epochs: int
    num_train_epochs: int
    lr: float
    per_device_train_batch_size: int
    warmup_proportion: float


class LoggingKwargs(TypedDict, total=False):
    """Keywords of :meth:`TrainingConfigBuilder.with_logging`."""

    use_wandb: bool
    wandb_project: str | None
    wandb_entity: str | None
    run_name: str | None
    notes: str | None
    tags: list[str]
    output_dir: PathLike | None
    log_every_n_steps: int
    dashboard_min_interval_s: float
    progress_bar: bool
    loggers: list[str]
    track_runs: bool
    plots: bool
    wandb_run_name: str | None


class CheckpointingKwargs(TypedDict, total=False):
    """Keywords of :meth:`TrainingConfigBuilder.with_checkpointing` (the field names work too)."""

    checkpoint_dir: PathLike | None
    frequency: int
    keep_last_n: int | None
    every_n_steps: int | None
    save_best: bool
    resume_from: PathLike | None
    checkpoint_frequency: int
    save_every_n_epochs: int
    checkpoint_every_n_steps: int | None
    resume_from_checkpoint: PathLike | None
    on_checkpoint_error: str
    overwrite: bool


class OptimizationKwargs(TypedDict, total=False):
    """Keywords of :meth:`TrainingConfigBuilder.with_optimization`."""

    compile_mode: str | None
    gradient_accumulation_steps: int
    optimizer: str
    optimizer_kwargs: dict[str, Any]
    precision: str
    use_amp: bool
    max_grad_norm: float | None
    weight_decay: float
    lr_schedule: str
    warmup_ratio: float
    warmup_steps: int | None
    min_lr_ratio: float
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    device: str
    strategy: str
    nan_guard: bool
    nan_max_consecutive: int
    nan_lr_factor: float | None
    nan_max_rollbacks: int
    grad_accum_steps: int
    accumulation_steps: int
    gradient_clip_val: float | None
    grad_clip: float | None


def _same(*names: str) -> dict[str, str]:
    return {n: n for n in names}


# method -> {keyword it takes -> TrainingConfig field}. Kept beside the TypedDicts; a test checks they agree.
METHOD_KEYS: dict[str, dict[str, str]] = {
    "with_training": {
        **_same(*(k for k in TrainingKwargs.__annotations__ if k in _defaults())),
        "n_epochs": "epochs",
        "num_epochs": "epochs",
        "num_train_epochs": "epochs",
        "lr": "learning_rate",
        "per_device_train_batch_size": "batch_size",
        "warmup_proportion": "warmup_ratio",
    },
    "with_logging": {
        **_same(*(k for k in LoggingKwargs.__annotations__ if k in _defaults())),
        "wandb_run_name": "run_name",
    },
    "with_checkpointing": {
        **_same("checkpoint_dir", "keep_last_n", "save_best", "checkpoint_frequency", "checkpoint_every_n_steps",
                "on_checkpoint_error", "overwrite"),
        "frequency": "checkpoint_frequency",
        "save_every_n_epochs": "checkpoint_frequency",
        "every_n_steps": "checkpoint_every_n_steps",
        "resume_from": "resume_from_checkpoint",
        "resume_from_checkpoint": "resume_from_checkpoint",
    },
    "with_optimization": {
        **_same(*(k for k in OptimizationKwargs.__annotations__ if k in _defaults())),
        "grad_accum_steps": "gradient_accumulation_steps",
        "accumulation_steps": "gradient_accumulation_steps",
        "gradient_clip_val": "max_grad_norm",
        "grad_clip": "max_grad_norm",
    },
    "with_export": {
        "export_bundle": "export_bundle",
        "formats": "export_formats",
        "export_formats": "export_formats",
        "export_dir": "export_dir",
    },
}


def _unknown_keyword(method: str, key: str, value: Any) -> str:
    """The problem line for a keyword ``method`` does not take: who takes it, or the closest name."""
    head = f"{key}: {method}() does not take this keyword, got {bounded_repr(value)}. Fix: "
    owners = [m for m, keys in METHOD_KEYS.items() if key in keys]
    if owners:
        return head + f"use .{owners[0]}({key}={bounded_repr(value)})."
    guess = closest(key, METHOD_KEYS[method])
    if guess:
        return head + f"did you mean {guess!r}?"
    everywhere = {k: m for m, keys in METHOD_KEYS.items() for k in keys}
    guess = closest(key, everywhere)
    if guess:
        return head + f"did you mean {guess!r}? It is taken by .{everywhere[guess]}()."
    return head + f"{method}() takes {quote_list(METHOD_KEYS[method])}."


class TrainingConfigBuilder:
    """Immutable, fluent builder of a :class:`TrainingConfig`.

    Example::

        config = (
            TrainingConfigBuilder.baseline()
            .with_training(epochs=10, learning_rate=5e-5)
            .with_logging(wandb_project="my-project", run_name="exp-1")
            .with_checkpointing(checkpoint_dir="./checkpoints", frequency=2)
            .with_optimization(compile_mode="default", gradient_accumulation_steps=4)
            .build()
        )
    """

    __slots__ = ("_values",)
    _values: Mapping[str, Any]

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        """Start from ``values`` (TrainingConfig field names or aliases); unset fields keep their defaults."""
        canonical, problems = canonicalize(values or {}, _defaults().keys())
        if problems:
            raise ConfigError(problems, what="TrainingConfigBuilder")
        # A private deep copy behind a read-only view: nothing outside can change this builder.
        object.__setattr__(self, "_values", MappingProxyType(copy.deepcopy(canonical)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"TrainingConfigBuilder is immutable; use a with_* method to get a changed copy ({name!r})."
        )

    def __repr__(self) -> str:
        return f"TrainingConfigBuilder({dict(self._values)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainingConfigBuilder) and dict(self._values) == dict(other._values)

    __hash__ = None  # type: ignore[assignment]  # values may be lists

    @property
    def values(self) -> dict[str, Any]:
        """A copy of the values set so far (canonical names; unset fields are absent)."""
        return copy.deepcopy(dict(self._values))

    # ------------------------------------------------------------ starting points

    @classmethod
    def preset(cls, name: str) -> Self:
        """Start from preset ``name`` (see ``list_presets()``)."""
        return cls(get_preset(name))

    @classmethod
    def baseline(cls) -> Self:
        """Start from the ``baseline`` preset."""
        return cls.preset("baseline")

    @classmethod
    def fast(cls) -> Self:
        """Start from the ``fast`` preset."""
        return cls.preset("fast")

    @classmethod
    def quality(cls) -> Self:
        """Start from the ``quality`` preset."""
        return cls.preset("quality")

    @classmethod
    def tiny(cls) -> Self:
        """Start from the CPU ``tiny`` preset."""
        return cls.preset("tiny")

    @classmethod
    def from_config(cls, config: TrainingConfig | Mapping[str, Any]) -> Self:
        """Start from every value of an existing config (or a mapping of field values)."""
        return cls(config.to_dict() if isinstance(config, TrainingConfig) else config)

    # ------------------------------------------------------------ changes (each returns a new builder)

    def _with(self, method: str, kwargs: Mapping[str, Any]) -> Self:
        accepted = METHOD_KEYS[method]
        changes: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        problems = []
        for key, value in kwargs.items():
            if key not in accepted:
                problems.append(_unknown_keyword(method, key, value))
                continue
            name = accepted[key]
            if name in given_as:
                problems.append(
                    f"{name}: given twice to {method}(), as {given_as[name]!r} and as {key!r}, "
                    f"got {bounded_repr(changes[name])} and {bounded_repr(value)}. Fix: give only one."
                )
                continue
            given_as[name] = key
            changes[name] = value
        if problems:
            raise ConfigError(problems, what=f"TrainingConfigBuilder.{method}()")
        return type(self)({**self._values, **changes})

    def with_training(self, **kwargs: Unpack[TrainingKwargs]) -> Self:
        """Epochs, steps, learning rate, batch sizes, seed, schedule, data limits and early stopping."""
        return self._with("with_training", kwargs)

    def with_logging(self, **kwargs: Unpack[LoggingKwargs]) -> Self:
        """Run name, output folder, W&B and console logging.

        Setting ``wandb_project`` does not turn W&B on; pass ``use_wandb=True`` for that.
        """
        return self._with("with_logging", kwargs)

    def with_checkpointing(self, **kwargs: Unpack[CheckpointingKwargs]) -> Self:
        """``checkpoint_dir``, ``frequency`` (epochs), ``keep_last_n``, ``every_n_steps``, ``save_best``, ``resume_from``,
        ``overwrite``."""
        return self._with("with_checkpointing", kwargs)

    def with_optimization(self, **kwargs: Unpack[OptimizationKwargs]) -> Self:
        """Compile, accumulation, precision, clipping, the optimizer and its settings, schedule, device and strategy."""
        return self._with("with_optimization", kwargs)

    def with_export(
        self,
        export_bundle: bool = True,
        formats: list[str] | None = None,
        export_dir: str | os.PathLike[str] | None = None,
        **unexpected: Any,
    ) -> Self:
        """Turn the export bundle on (or off); ``formats``/``export_dir`` change only when given.

        Any other keyword is a ``ConfigError`` (``export_formats`` is accepted as a spelling of ``formats``).
        """
        kwargs: dict[str, Any] = {"export_bundle": export_bundle}
        if formats is not None:
            kwargs["formats"] = formats
        if export_dir is not None:
            kwargs["export_dir"] = export_dir
        return self._with("with_export", {**kwargs, **unexpected})

    def build(self) -> TrainingConfig:
        """The validated :class:`TrainingConfig`; one ``ConfigError`` lists every problem."""
        return TrainingConfig.from_dict(self._values)
