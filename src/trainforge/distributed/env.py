"""The process group, read from the environment ``torchrun`` sets (RANK, LOCAL_RANK, WORLD_SIZE)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class DistEnv:
    """Rank facts plus the two collectives the loop needs; a no-op for one process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def sum(self, t: Tensor) -> Tensor:
        """All-reduce sum (returns a new tensor; the input is unchanged)."""
        if not self.enabled:
            return t
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, enabled: bool) -> Iterator[None]:
        """Skip DDP's gradient all-reduce on accumulation micro-steps that are not the window's last."""
        no_sync = getattr(model, "no_sync", None)
        if enabled and self.enabled and callable(no_sync):
            with no_sync():
                yield
        else:
            yield


def from_environment(strategy: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1) unless strategy is 'single'."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or strategy == "single":
        return DistEnv()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local)
