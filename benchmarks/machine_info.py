"""The machine description every benchmark report starts with (CPU, versions, date, commit, load)."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# By default glibc hands the free top of its heap back to the OS and faults it in again on the next step. Training
# the bench GPT (~320 ms steps) that was 0 to ~4,000 page faults per step (up to 2% of the step) for any engine, set
# by the allocator's state when a run started rather than by the engine: single raw-vs-trainforge pairs then
# differed by ±2%. With these (read by glibc at process start) freed memory stays in the heap, up to 4 GiB of it, and
# blocks under 32 MiB come from the heap, for every side of a benchmark alike.
STEADY_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(4 << 30), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}
DEFAULT_MALLOC_FLAG = "--default-malloc"


def rerun_with_steady_malloc() -> None:
    """Re-execute the running script with ``STEADY_MALLOC`` set, unless it is set already, the platform is not
    Linux (glibc), or the command line has ``--default-malloc``. Call it first thing under ``__main__``."""
    argv = sys.argv[1:]
    if not sys.platform.startswith("linux") or DEFAULT_MALLOC_FLAG in argv or steady_malloc():
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **STEADY_MALLOC})


def steady_malloc() -> bool:
    """Whether this process runs with ``STEADY_MALLOC``."""
    return all(os.environ.get(k) == v for k, v in STEADY_MALLOC.items())


def malloc_note() -> str:
    """The report's line on the allocator settings."""
    if steady_malloc():
        return "- malloc: " + ", ".join(f"{k}={v}" for k, v in STEADY_MALLOC.items()) + " (freed memory stays in the heap)"
    return "- malloc: glibc defaults"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (else what ``platform`` knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe(threads_note: str, versions: list[str] | None = None) -> str:
    """Markdown bullet lines: CPU and threads, software versions, date and git commit."""
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, cwd=ROOT).stdout.strip() or "unknown"
    software = ", ".join([f"torch {torch.__version__}", *(versions or []), f"Python {platform.python_version()}"])
    return (f"- CPU: {cpu_name()}, {os.cpu_count()} cores; torch threads {threads_note}\n"
            f"- {software}, {platform.system()} {platform.release()}\n"
            f"- date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, git {commit} "
            "(the working tree may hold uncommitted changes)")


def load_avg() -> str:
    """The 1/5/15-minute load averages (other processes on a shared machine show here)."""
    with contextlib.suppress(OSError, AttributeError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "unknown"
