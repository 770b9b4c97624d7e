"""Preemption: SIGTERM / SIGINT during ``fit`` end the run cleanly with a resumable checkpoint.

The handlers are installed only while training runs, only in the main thread (Python delivers signals there),
and the previous handlers are put back afterwards. A signal only sets a flag; the loop looks at it after each
optimizer step (and before an epoch's checkpoint decision), asks to stop with ``stop_reason="preempted (SIGTERM)"``
and the usual stop path writes a step checkpoint (when ``checkpoint_dir`` is set). A second signal while the first
is being handled is not polite any more: SIGINT raises ``KeyboardInterrupt``, SIGTERM exits the process.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preemption:
    """Context manager; ``received`` is the first signal's name (``"SIGTERM"``) once one arrived, else None."""

    def __init__(self, signals: tuple[signal.Signals, ...] = SIGNALS) -> None:
        self.signals = signals
        self.received: str | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def reason(self) -> str | None:
        return f"preempted ({self.received})" if self.received else None

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):  # e.g. an embedded interpreter that owns signals
                    continue
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the previous handlers back (idempotent)."""
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:  # asked twice: stop now
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.received = name
        print(f"[trainforge] {name} received: stopping after the current step and saving a resumable checkpoint "
              f"(send it again to stop at once).", file=sys.stderr, flush=True)


__all__ = ["SIGNALS", "Preemption"]
