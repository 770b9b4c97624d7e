"""Option names: turning user keys (field names or their aliases, see ``fields.ALIASES``) into field names."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from trainforge.config._suggest import closest
from trainforge.config.fields import ALIASES  # declared with each field in fields.py
from trainforge.errors import bounded_repr

__all__ = ["ALIASES", "canonicalize", "suggestion"]

def suggestion(key: str, canonical: Collection[str], aliases: Mapping[str, str] = ALIASES) -> str:
    """The ``Fix:`` text for an unknown key: a did-you-mean over canonical names and aliases."""
    guess = closest(key, [*canonical, *aliases])
    if guess is None:
        return "remove it; the valid options are the fields of TrainingConfig."
    if guess in aliases:
        return f"did you mean {guess!r} (an alias of {aliases[guess]!r})?"
    return f"did you mean {guess!r}?"


def canonicalize(
    data: Mapping[Any, Any], canonical: Collection[str], aliases: Mapping[str, str] = ALIASES
) -> tuple[dict[str, Any], list[str]]:
    """Map every key of ``data`` to its canonical name.

    Returns the canonical values and the problems found: unknown keys (with a did-you-mean), non-string
    keys, and a field given more than once through its aliases. Unknown keys are left out of the values,
    so the rest can still be validated and every problem reported in one error.
    """
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}  # canonical name -> the key it was first given as
    problems: list[str] = []
    for key, value in data.items():
        if not isinstance(key, str):
            problems.append(f"{key!r}: option names must be strings, got {key!r}. Fix: quote the name.")
            continue
        name = aliases.get(key, key)
        if name not in canonical:
            problems.append(f"{key}: unknown option, got {bounded_repr(value)}. Fix: {suggestion(key, canonical, aliases)}")
            continue
        if name in given_as:
            first = given_as[name]
            problems.append(
                f"{name}: given twice, as {bounded_repr(first)} and as {bounded_repr(key)}, got {bounded_repr(values[name])} and {bounded_repr(value)}. "
                "Fix: give only one."
            )
            continue
        given_as[name] = key
        values[name] = value
    return values, problems
