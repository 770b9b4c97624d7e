"""The machine description every benchmark report starts with (CPU, versions, date, commit, load)."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


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
