"""``trainforge train --nproc N``: re-run the same command under ``torchrun`` (one process per device)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (the workers must not relaunch themselves)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N -m trainforge <args>``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "trainforge", *args]


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch(nproc: int, args: Sequence[str]) -> int:
    """Run ``trainforge <args>`` in ``nproc`` processes and return torchrun's exit code.

    ``OMP_NUM_THREADS`` defaults to 1 per process (as torchrun does) so the workers do not oversubscribe the CPU.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = torchrun_command(nproc, args)
    print(f"[trainforge] launching {nproc} processes: {' '.join(cmd)}", flush=True)
    return subprocess.call(cmd, env=env)
