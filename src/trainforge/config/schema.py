"""``TrainingConfig``: every setting of a training run, validated as a whole.

Design
------
The fields are declared once, in :mod:`trainforge.config.fields` (``TrainingFields``): type, default, check, fix
text, builder section, aliases, Lightning and resume flags. ``TrainingConfig`` is that dataclass plus behaviour: so
``repr``/``==``/``dataclasses.fields`` come for free, and mypy and IDEs see every field with its type. Its
``__init__`` is written by hand as ``__init__(self, **kwargs: Unpack[TrainingConfigKwargs])`` because it must do
three things a generated one cannot: accept aliases (``lr=``, ``save_every_n_epochs=``), turn unknown keys into a
``ConfigError`` with a did-you-mean instead of a ``TypeError``, and report every problem in one error.
``TrainingConfigKwargs`` is a ``TypedDict`` naming every field and alias with its type, so mypy and IDEs still check
and complete each keyword (PEP 692); it is generated from the declarations into ``_kwargs.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainforge.config._kwargs import TrainingConfigKwargs
from trainforge.config.fields import SETTINGS, TrainingFields, field_types
from trainforge.config.keys import ALIASES, canonicalize
from trainforge.config.setting import PathLike
from trainforge.config.validation import find_problems, normalize
from trainforge.errors import ConfigError, bounded_repr

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack


@dataclass(init=False)
class TrainingConfig(TrainingFields):
    """Every setting of a training run. Build it with keywords; it is validated on construction.

    Example::

        cfg = TrainingConfig(epochs=10, learning_rate=5e-5, batch_size=4, use_wandb=True, wandb_project="p")

    Aliases such as ``lr`` or ``save_every_n_epochs`` are accepted and stored under the canonical name.
    Every problem (unknown keys, types, ranges, choices, contradictions between fields) is reported at
    once in a single :class:`~trainforge.errors.ConfigError`. Fields may be changed afterwards; call
    :meth:`validate` (the trainer does, before step 0) to check again. The fields, their defaults and checks:
    :mod:`trainforge.config.fields`.
    """

    def __init__(self, **kwargs: Unpack[TrainingConfigKwargs]) -> None:
        self._assign(kwargs, what="TrainingConfig")

    # ------------------------------------------------------------ validation

    def _assign(self, data: Mapping[Any, Any], what: str) -> None:
        """Set every field from ``data`` (defaults for the rest), then raise if anything is wrong."""
        values, key_problems = canonicalize(data, _defaults().keys())
        full = {name: values.get(name, _default(name)) for name in _defaults()}
        full = normalize(full, field_types(), SETTINGS)
        for name, value in full.items():
            setattr(self, name, value)
        problems = [*key_problems, *self.problems()]
        if problems:
            raise ConfigError(problems, what)

    def problems(self) -> list[str]:
        """Every problem of the current values, one line each (empty when the config is valid)."""
        return find_problems(self._values(), field_types(), _defaults(), SETTINGS)

    def validate(self) -> None:
        """Check the current values again (fields are mutable); raise one ``ConfigError`` listing all problems.

        Paths given as ``os.PathLike`` and ints given for float fields are converted first.
        """
        for name, value in normalize(self._values(), field_types(), SETTINGS).items():
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
def _defaults() -> dict[str, Any]:
    return {f.name: _default(f.name) for f in dataclasses.fields(TrainingConfig)}


def _default(name: str) -> Any:
    f = TrainingConfig.__dataclass_fields__[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


__all__ = ["ALIASES", "PathLike", "TrainingConfig", "TrainingConfigKwargs"]
