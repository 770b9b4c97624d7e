"""Guardrails for interactive kernels (Jupyter, Colab, VS Code notebooks).

A notebook kernel is one long-lived process. Multi-process strategies (DDP, FSDP) need one process per device,
started by a launcher: spawning them from a kernel fails on functions defined in cells (they cannot be pickled),
and a worker that dies leaves the kernel hanging in a collective. So in a kernel:

* ``strategy='ddp'`` / ``'fsdp'`` (or a torchrun environment with WORLD_SIZE > 1) is refused with the reason and
  the fix, unless ``ALLOW_NOTEBOOK_DDP=1`` is set;
* ``nn.DataParallel`` is never used (anywhere: it is slower than DDP and single-process only), and a model
  wrapped in it is refused;
* with several GPUs visible, training uses one and says so.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from torch import nn

from trainforge.errors import ConfigError

ALLOW_ENV = "ALLOW_NOTEBOOK_DDP"
MULTIPROCESS_STRATEGIES = frozenset({"ddp", "fsdp", "ddp_spawn", "ddp_fork", "ddp_notebook", "deepspeed"})
_TRUE = {"1", "true", "yes", "on"}


def in_notebook() -> bool:
    """True inside an interactive IPython kernel (Jupyter, JupyterLab, Colab, VS Code); False in a terminal
    IPython, a script, pytest or a torchrun worker."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # a broken IPython install is not a notebook
        return False
    if shell is None:
        return False
    if getattr(shell, "kernel", None) is not None:  # ipykernel's ZMQInteractiveShell (Jupyter, VS Code)
        return True
    return "google.colab" in sys.modules or type(shell).__name__ == "ZMQInteractiveShell"


def notebook_ddp_allowed() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip().lower() in _TRUE


def is_multiprocess(strategy: Any) -> bool:
    """A strategy that needs one process per device (or a torchrun environment that already has several)."""
    if strategy == "single":
        return False
    if isinstance(strategy, str) and strategy.lower() in MULTIPROCESS_STRATEGIES:
        return True
    if strategy is not None and not isinstance(strategy, str):  # a Lightning Strategy object
        name = type(strategy).__name__.lower()
        if any(word in name for word in ("ddp", "fsdp", "deepspeed")):
            return True
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def check_notebook_strategy(strategy: Any, what: str = "Trainer") -> None:
    """Refuse a multi-process strategy inside a notebook kernel unless ``ALLOW_NOTEBOOK_DDP=1``.

    Raises:
        ConfigError: in a kernel, with a multi-process strategy, without the override.
    """
    if not in_notebook() or not is_multiprocess(strategy) or notebook_ddp_allowed():
        return
    shown = strategy if isinstance(strategy, str) else type(strategy).__name__
    raise ConfigError(
        [f"strategy={shown!r} is refused in a notebook: it needs one process per device, and a notebook kernel "
         "is a single process (workers spawned from it cannot pickle functions defined in cells, and a worker "
         "that dies leaves the kernel hanging). Fix: use strategy='auto' or 'single' here (one device), or move "
         "the training code to a script and run `trainforge train --nproc N` (or `torchrun --nproc_per_node N "
         f"train.py`) in a terminal. If you know the kernel runs under a launcher, set {ALLOW_ENV}=1 to allow it."],
        what=what,
    )


def check_not_data_parallel(model: Any) -> str | None:
    """The problem with an ``nn.DataParallel``-wrapped model (trainforge never uses DataParallel), or None."""
    if isinstance(model, nn.DataParallel):
        return ("model: is wrapped in nn.DataParallel, which trainforge never uses (single-process, slower than "
                "DDP, and its state_dict keys carry a 'module.' prefix). Fix: pass model.module; for several GPUs "
                "run `trainforge train --nproc N` (DDP).")
    return None


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def notebook_device(device: str, *, say: bool = True) -> str:
    """In a notebook with several visible GPUs, pin ``auto``/``cuda`` to ``cuda:0`` and say so; else unchanged."""
    if device not in ("auto", "cuda") or not in_notebook() or os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        return device
    count = visible_gpus()
    if count <= 1:
        return device
    if say:
        print(f"[trainforge] {count} GPUs are visible; a notebook trains on one: using cuda:0. To train on all "
              f"{count}, run `trainforge train --nproc {count}` (DDP) from a terminal.", flush=True)
    return "cuda:0"
