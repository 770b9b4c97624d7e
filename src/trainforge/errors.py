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
