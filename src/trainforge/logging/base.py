"""The logger protocol every backend implements, plus the fan-out and the do-nothing logger.

A trainer talks to exactly one object, a :class:`MultiLogger`. It forwards every call to its
backends (console, CSV, W&B, ...) and *contains* their failures: a backend that raises is
warned about once and switched off, because a broken dashboard must never cost a trained model.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["MID_EPOCH", "Logger", "MultiLogger", "NullLogger"]

#: The key (value True) that marks a step record as a mid-epoch validation row (``eval_every_n_steps``): backends
#: keep it like any step record (``steps.jsonl``, W&B); the experiment database stores it, and dashboards that thin
#: step lines never drop it.
MID_EPOCH = "mid_epoch"

_T = TypeVar("_T")


@runtime_checkable
class Logger(Protocol):
    """What a metrics backend implements. All methods are called on the main process only.

    ``step`` is the number of optimizer steps taken so far; it never decreases within a run, and an
    epoch row is logged at the same step as the last step log of that epoch.
    """

    def log_config(self, config: dict[str, Any]) -> None:
        """Record the resolved training config, task spec and model config (a nested dict)."""
        ...

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Record per-optimizer-step metrics (``train/loss``, ``lr``, ``tokens_per_s``, ``grad_norm``...), or a
        mid-epoch validation row (``val/...``, ``epoch``, ``mid_epoch: True``; see :data:`MID_EPOCH`)."""
        ...

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Record one row per epoch (``epoch`` is 1-based; ``train/loss``, ``val/loss``, ``lr``...)."""
        ...

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Record the final results (``best_epoch``, ``final_loss``, ``training_time_s``, ...)."""
        ...

    def close(self) -> None:
        """Flush and release resources. Calling it more than once is allowed."""
        ...


class NullLogger:
    """A logger that does nothing: what non-zero ranks get, so only rank 0 writes."""

    def log_config(self, config: dict[str, Any]) -> None:
        """Ignore the config."""

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Ignore step metrics."""

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Ignore the epoch row."""

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Ignore the summary."""

    def close(self) -> None:
        """Nothing to release."""


def _name(lg: Logger) -> str:
    """The backend's name for messages (a background-thread wrapper names the backend it runs)."""
    name = getattr(lg, "backend_name", None)
    return name if isinstance(name, str) else type(lg).__name__


class MultiLogger:
    """Fan every call out to several loggers, containing their failures.

    A backend that raises is warned about once (``RuntimeWarning`` naming the backend, the method and
    the exception) and disabled for the rest of the run; the others keep receiving everything.
    ``close()`` closes every backend (disabled ones too, since they may hold files or a W&B run) and is
    idempotent.
    """

    def __init__(self, loggers: Iterable[Logger]) -> None:
        self.loggers: list[Logger] = list(loggers)
        for lg in self.loggers:
            if not isinstance(lg, Logger):
                raise TypeError(
                    f"MultiLogger expects objects with log_config/log_step/log_epoch/log_summary/close, "
                    f"got {lg!r} ({type(lg).__name__}); wrap it or implement trainforge.logging.Logger"
                )
        # Disabled backends are tracked by identity: loggers need not be hashable.
        self._disabled: set[int] = set()
        self._closed = False

    # -- helpers -----------------------------------------------------------------------------
    def _fail(self, lg: Logger, method: str, exc: BaseException) -> None:
        if id(lg) in self._disabled:
            return
        self._disabled.add(id(lg))
        name = _name(lg)
        warnings.warn(
            f"{name}.{method} failed: {type(exc).__name__}: {exc}. "
            f"{name} is disabled for the rest of this run; training continues and the other "
            f"loggers keep recording.",
            RuntimeWarning,
            stacklevel=3,
        )

    def _call(self, method: str, *args: Any) -> None:
        for lg in self.loggers:
            if id(lg) in self._disabled:
                continue
            try:
                getattr(lg, method)(*args)
            except Exception as exc:  # a logging backend must never stop training
                self._fail(lg, method, exc)

    @property
    def active(self) -> list[Logger]:
        """The backends that have not failed."""
        return [lg for lg in self.loggers if id(lg) not in self._disabled]

    def find(self, cls: type[_T]) -> _T | None:
        """Return the first active backend that is an instance of ``cls`` (e.g. to read a W&B run dir); a backend
        running on a logging thread is found by its own class."""
        for lg in self.active:
            inner = getattr(lg, "inner", lg)
            if isinstance(inner, cls):
                return inner
        return None

    # -- the protocol --------------------------------------------------------------------------
    def log_config(self, config: dict[str, Any]) -> None:
        """Forward the config to every active backend."""
        self._call("log_config", config)

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Forward step metrics to every active backend."""
        self._call("log_step", metrics, step)

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Forward the epoch row to every active backend."""
        self._call("log_epoch", row, step)

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Forward the final summary to every active backend."""
        self._call("log_summary", summary)

    def close(self) -> None:
        """Close every backend once; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        for lg in self.loggers:
            try:
                lg.close()
            except Exception as exc:  # closing one backend must not keep the others open
                self._fail(lg, "close", exc)

    def __enter__(self) -> MultiLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(_name(lg) + ("(disabled)" if id(lg) in self._disabled else "") for lg in self.loggers)
        return f"MultiLogger([{names}])"
