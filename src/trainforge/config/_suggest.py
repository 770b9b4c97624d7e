"""Did-you-mean suggestions shared by every config error message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, or None when nothing is close.

    A case-insensitive match or a unique prefix match wins (``bf16`` -> ``bf16-mixed``, which difflib
    alone scores too low); otherwise difflib's best match with ratio >= 0.6.
    """
    pool = list(candidates)
    lowered = word.lower()
    for c in pool:
        if c.lower() == lowered:
            return c
    prefixed = [c for c in pool if lowered and c.lower().startswith(lowered)]
    if len(prefixed) == 1:
        return prefixed[0]
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the candidate closest to ``word`` (see :func:`closest`), or ``""``."""
    guess = closest(word, candidates)
    return f"did you mean {guess!r}? " if guess else ""


def quote_list(items: Iterable[object]) -> str:
    """``'a', 'b', 'c'`` — a readable list of allowed values."""
    return ", ".join(repr(i) for i in items)
