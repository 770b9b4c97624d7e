"""A step progress bar. ``tqdm`` is imported only when a bar is actually shown."""

from __future__ import annotations

from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """A thin wrapper over ``tqdm.auto`` (a widget in notebooks, text in terminals).

    When ``enabled`` is False (non-zero ranks, ``progress_bar=False``) or tqdm cannot be imported,
    every method is a no-op. ``update`` is called every step, so it does the least possible work:
    the postfix is only touched when one is given, and without a redraw (tqdm redraws at its own
    ``mininterval`` pace).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        enabled: bool = True,
        initial: int = 0,
        *,
        unit: str = "step",
        leave: bool = True,
    ) -> None:
        self._bar: Any = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is a dependency, but a bar is never worth failing a run for
            return
        self._bar = tqdm(total=total, desc=desc, initial=initial, unit=unit, leave=leave, dynamic_ncols=True)

    @property
    def enabled(self) -> bool:
        """Whether a bar is shown."""
        return self._bar is not None

    def update(self, n: int = 1, postfix: dict[str, str | float] | None = None) -> None:
        """Advance by ``n`` steps; set the postfix (e.g. ``{"loss": 2.31}``) when given."""
        bar = self._bar
        if bar is None:
            return
        if postfix:
            bar.set_postfix(postfix, refresh=False)
        bar.update(n)

    def set_description(self, desc: str) -> None:
        """Change the text before the bar."""
        if self._bar is not None:
            self._bar.set_description(desc, refresh=False)

    def write(self, line: str) -> None:
        """Print ``line`` above the bar without breaking it (plain ``print`` when disabled)."""
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line)

    def stream(self) -> _BarStream:
        """A file-like object whose complete lines are printed above the bar (for the console logger)."""
        return _BarStream(self)

    def close(self) -> None:
        """Close the bar; calling again is fine."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _BarStream:
    """Minimal text stream: buffers until a newline, then hands each line to ``ProgressBar.write``."""

    def __init__(self, bar: ProgressBar) -> None:
        self._bar = bar
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._bar.write(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._bar.write(self._pending)
            self._pending = ""
