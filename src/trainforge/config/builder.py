"""``TrainingConfigBuilder``: an immutable, fluent way to assemble a TrainingConfig from a preset.

Every ``with_*`` call returns a new builder and leaves the original untouched, so one base builder can
fan out into many trials. Values are only collected along the way; ``build()`` validates them all at
once. A keyword a ``with_*`` method does not take is an immediate ``ConfigError`` that says which
method does take it. Which method takes which field is declared with the field (``fields.py``); the keyword
types are one generated ``TypedDict`` per method (``_kwargs.py``), so mypy and IDEs check them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from trainforge.config._kwargs import CheckpointingKwargs, LoggingKwargs, OptimizationKwargs, TrainingKwargs
from trainforge.config._suggest import closest, quote_list
from trainforge.config.fields import BUILDER_KEYWORDS
from trainforge.config.keys import canonicalize
from trainforge.config.presets import get_preset
from trainforge.config.schema import TrainingConfig, _defaults
from trainforge.errors import ConfigError, bounded_repr

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack


# method -> {keyword it takes -> TrainingConfig field}, derived from the field declarations (fields.py).
METHOD_KEYS: dict[str, dict[str, str]] = BUILDER_KEYWORDS


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
        """Epochs, steps, learning rate, batch sizes, seed, schedule, data limits, validation and early stopping."""
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
