"""Run a slow logging backend on its own thread, so the training loop only pays for a queue put.

W&B, TensorBoard and MLflow each spend 0.1-1 ms of Python per log line (MLflow's file store opens one file per
metric value). With a ~3 ms step logged every 10 steps that is several percent of the run. A
:class:`BackgroundLogger` takes step and epoch records on a FIFO queue and a single daemon thread hands them to
the backend in order; the thread mostly runs while the training thread is inside torch kernels (backward drops the
GIL), so the cost leaves the critical path.

Ordering and failure semantics stay those of a plain backend:

* one thread per backend, one FIFO queue: records reach the backend in the order they were logged;
* ``log_config``, ``log_summary`` and ``close`` first wait for the queue to drain, then run in the caller's thread,
  so the end of a run (summary, artifacts, ``finish``) happens exactly as before and its errors surface there;
* an exception on the thread is kept and raised (naming the backend and the call) at the next call from the
  training thread, where :class:`~trainforge.logging.base.MultiLogger` disables the backend and warns once;
  records queued after the failure are dropped, as they would be for a disabled backend.

With ``min_interval_s``, step records that come sooner than that after the last one the backend took are not sent
(epoch rows, mid-epoch validation rows, config and summary always are). The backends' Python runs under the GIL that the training thread needs
between torch ops, so their ~1 ms per line does not stay on the logging thread when lines come 33 times a second;
the always-on CSV and ``steps.jsonl`` keep every line.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from trainforge.logging.base import MID_EPOCH, Logger

__all__ = ["BackgroundLogger"]


class BackgroundLogger:
    """Wrap ``inner`` so that ``log_step``/``log_epoch`` are queued and written by a background thread.

    Args:
        inner: the backend to wrap (any :class:`~trainforge.logging.base.Logger`).
        min_interval_s: the shortest time between two step records sent to the backend (0: send every one).

    The wrapped backend is available as :attr:`inner`; :attr:`backend_name` is its class name, which is what
    failure warnings show.
    """

    def __init__(self, inner: Logger, min_interval_s: float = 0.0) -> None:
        self.inner = inner
        self.min_interval_s = min_interval_s
        self._last_step_sent = -float("inf")
        self.backend_name = type(inner).__name__
        # A record, a drain marker (Event), or None: stop the thread.
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._failed_call = ""

    # -- the worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):  # a drain marker: everything before it is written
                item.set()
                continue
            if self._error is not None:
                continue  # the backend failed: drop what follows, as MultiLogger will disable it
            method, args = item
            try:
                getattr(self.inner, method)(*args)
            except Exception as exc:  # kept and re-raised in the training thread, where it is contained
                self._error, self._failed_call = exc, method

    def _put(self, method: str, args: tuple[Any, ...]) -> None:
        self._raise_pending()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"trainforge-log-{self.backend_name}",
                                            daemon=True)
            self._thread.start()
        self._queue.put((method, args))

    def drain(self) -> None:
        """Wait until every queued record has been handed to the backend."""
        if self._thread is not None and self._thread.is_alive():
            done = threading.Event()
            self._queue.put(done)
            done.wait()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"{self.backend_name}.{self._failed_call} failed on the logging thread: "
                               f"{type(error).__name__}: {error}") from error

    def _sync(self, method: str, *args: Any) -> None:
        self.drain()
        self._raise_pending()
        getattr(self.inner, method)(*args)

    # -- the protocol -------------------------------------------------------------------------------
    def log_config(self, config: dict[str, Any]) -> None:
        """Write the config after everything queued, in the caller's thread."""
        self._sync("log_config", config)

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Queue the step metrics (a copy: the caller may reuse its dict), unless the last step record sent is
        less than ``min_interval_s`` old."""
        if self.min_interval_s > 0 and not metrics.get(MID_EPOCH):  # (a mid-epoch validation row is always sent)
            now = time.monotonic()
            if now - self._last_step_sent < self.min_interval_s:
                return
            self._last_step_sent = now
        self._put("log_step", (dict(metrics), step))

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Queue the epoch row (a copy)."""
        self._put("log_epoch", (dict(row), step))

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Write the summary after everything queued, in the caller's thread."""
        self._sync("log_summary", summary)

    def close(self) -> None:
        """Drain the queue, then close the backend (a queued failure is raised after the backend is closed)."""
        self.drain()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        try:
            self.inner.close()
        finally:
            self._raise_pending()

    def __repr__(self) -> str:
        return f"BackgroundLogger({self.inner!r})"
