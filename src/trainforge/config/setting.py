"""``setting(...)``: how one ``TrainingConfig`` field is declared, with everything known about it.

A field of :class:`~trainforge.config.fields.TrainingFields` reads::

    epochs: int = setting(3, "training", rule=AT_LEAST_1, fix="use a number of epochs such as 3 ...",
                          aliases=("n_epochs", "num_epochs"), lightning="honoured")

The annotation and the first argument are the field's type and default (the dataclass sees them as usual);
the rest is kept in the field's ``metadata["setting"]`` as a :class:`Setting`, from which the checks, the
alias map, the builder's keywords, the override reader and the Lightning allowlist are derived.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

# A path may be given as str or os.PathLike; it is stored as str.
PathLike: TypeAlias = str | os.PathLike[str]

# The builder method that takes a field: TrainingConfigBuilder.with_<section>(...).
Section = Literal["training", "logging", "checkpointing", "optimization", "export"]
SECTIONS: tuple[Section, ...] = ("training", "logging", "checkpointing", "optimization", "export")

# How the Lightning coordinator treats a field set to a non-default value: "honoured" (applied), "data" (applied
# only when it builds the data loaders), "display" (accepted, changes no result), "refused" (a ConfigError).
Lightning = Literal["honoured", "data", "display", "refused"]

# What resuming a run with a changed value does: "warn" (the run will not match an uninterrupted one), "free" (it
# changes no training math: where files go, what is logged, when to stop), "applied" (optimizer and schedule
# settings the resumed run applies on purpose, each change logged old -> new).
Resume = Literal["warn", "free", "applied"]

T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    """A check on a field's non-None value: ``ok(value)``, and what is wrong when it fails."""

    ok: Callable[[Any], bool]
    what: str  # "must be at least 1"


@dataclass(frozen=True)
class Setting:
    """Everything about one field besides its name, type and default (those are the dataclass field's)."""

    sections: tuple[Section, ...]  # with_<section> methods that take it; the first also takes its aliases
    rule: Rule | None = None  # range check on a non-None value
    fix: str = ""  # the "Fix:" of the rule's problem line
    choices: tuple[str | None, ...] = ()  # the allowed values (None listed when allowed)
    check: Callable[[Any], list[str]] | None = None  # any other check of the value alone: its problem lines
    aliases: tuple[str, ...] = ()  # other names TrainingConfig(...) accepts for it (HF, Lightning spellings)
    builder_aliases: tuple[str, ...] = ()  # names only its builder method accepts (frequency=, formats=)
    lightning: Lightning = "refused"  # new fields are refused on the Lightning path until it learns them
    resume: Resume = "warn"  # new fields warn when changed on resume until shown harmless
    path: bool = False  # takes os.PathLike too, stored as str
    clean: Callable[[str], str] | None = None  # applied to a str value before checking ("AdamW" -> "adamw")


def setting(
    default: T,
    section: Section | tuple[Section, ...],
    *,
    rule: Rule | None = None,
    fix: str = "",
    choices: tuple[str | None, ...] = (),
    check: Callable[[Any], list[str]] | None = None,
    aliases: tuple[str, ...] = (),
    builder_aliases: tuple[str, ...] = (),
    lightning: Lightning = "refused",
    resume: Resume = "warn",
    path: bool = False,
    clean: Callable[[str], str] | None = None,
) -> T:
    """A dataclass field with ``default`` and its :class:`Setting` as metadata (typed as ``T`` for mypy and IDEs).

    A list or dict default is copied for each config, as ``field(default_factory=...)`` would.
    """
    spec = Setting(
        sections=section if isinstance(section, tuple) else (section,),
        rule=rule,
        fix=fix,
        choices=choices,
        check=check,
        aliases=aliases,
        builder_aliases=builder_aliases,
        lightning=lightning,
        resume=resume,
        path=path,
        clean=clean,
    )
    metadata = {"setting": spec}
    if isinstance(default, (list, dict)):
        factory = functools.partial(copy.deepcopy, default)
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)
