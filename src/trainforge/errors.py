"""Exception types. Every message says what was wrong, the value received, and how to fix it."""

from __future__ import annotations


class TrainforgeError(Exception):
    """Base class of every error trainforge raises on purpose."""


class ConfigError(TrainforgeError, ValueError):
    """A configuration has one or more problems; ``problems`` lists each one on its own."""

    def __init__(self, problems: list[str], what: str = "TrainingConfig") -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{what} has {n} problem{'s' if n != 1 else ''}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class DataError(TrainforgeError, ValueError):
    """The data given to trainforge cannot be trained on as it is."""


class DataTypeError(TrainforgeError, TypeError, RuntimeError):
    """The data is of a type trainforge does not accept.

    It is a ``TypeError`` (the Python convention) and a ``RuntimeError`` (what older notebooks catch).
    """


class ModelError(TrainforgeError, ValueError):
    """The model's forward signature or outputs cannot be used for the task."""


class CheckpointError(TrainforgeError, ValueError):
    """A checkpoint file is missing, unreadable, unsafe, or belongs to another model."""


class InputTooLarge(ConfigError):
    """A config, run, sweep file or job payload is over the size or alias-expansion limit (``config.io``)."""


# Error messages quote the value received; a value from a hostile or mistaken file may be huge (a 10^6-element
# list, a 1 MB string). Every error message shows values through this one helper, so none is longer than this.
REPR_LIMIT = 160


def bounded_repr(value: object, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (containers and strings shortened with ``...``).

    >>> bounded_repr(list(range(1000)))
    '[0, 1, 2, 3, 4, 5, ...]'
    >>> len(bounded_repr("x" * 10_000)) <= 160
    True
    """
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = limit
    shortener.maxlevel = 4
    shortener.maxlist = shortener.maxtuple = shortener.maxset = shortener.maxfrozenset = 6
    shortener.maxdict = 8
    text = shortener.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
