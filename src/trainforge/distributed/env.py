"""The process group, read from the environment ``torchrun`` sets (RANK, LOCAL_RANK, WORLD_SIZE)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

# Overrides the backend choice (gloo on CPU, nccl on CUDA), e.g. gloo for two processes sharing one GPU.
BACKEND_ENV = "TRAINFORGE_DIST_BACKEND"


@dataclass
class DistEnv:
    """Rank facts plus the two collectives the loop needs; a no-op for one process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    strategy: str = "single"  # "single" | "ddp" | "fsdp": what ``Trainer`` wraps (or shards) the model in

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def sum(self, t: Tensor) -> Tensor:
        """All-reduce sum (returns a new tensor; the input is unchanged).

        A ``DTensor`` (under FSDP, e.g. a gradient norm and what is computed from it) is summed as its full value.
        """
        if not self.enabled:
            return t
        from torch.distributed.tensor import DTensor

        if isinstance(t, DTensor):
            t = t.full_tensor()
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @property
    def sharded(self) -> bool:
        """FSDP: the model's parameters are shards, so its forward is collective (every rank must run it)."""
        return self.strategy == "fsdp"

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, enabled: bool) -> Iterator[None]:
        """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP) on accumulation micro-steps that are not
        the window's last."""
        if self.sharded:
            from trainforge.distributed.fsdp import set_gradient_sync

            set_gradient_sync(model, not enabled)  # set on every micro-step: the window's last one syncs
            yield
            return
        no_sync = getattr(model, "no_sync", None)
        if enabled and self.enabled and callable(no_sync):
            with no_sync():
                yield
        else:
            yield


def backend_for(cuda: bool) -> str:
    """``gloo`` on CPU, ``nccl`` on CUDA, unless ``TRAINFORGE_DIST_BACKEND`` names one."""
    return os.environ.get(BACKEND_ENV) or ("nccl" if cuda else "gloo")


def from_environment(strategy: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1) unless strategy is 'single'.

    ``strategy='auto'`` and ``'ddp'`` give DDP, ``'fsdp'`` FSDP (FSDP2 ``fully_shard``, see docs/distributed.md).
    One process without torchrun is plain training whatever the strategy says; ``'fsdp'`` under
    ``torchrun --nproc_per_node 1`` shards over a process group of one (FSDP's code path and mixed precision, no
    memory saving).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    fsdp_of_one = strategy == "fsdp" and world == 1 and "RANK" in os.environ and "MASTER_ADDR" in os.environ
    if (world <= 1 and not fsdp_of_one) or strategy == "single":
        return DistEnv()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = backend_for(torch.cuda.is_available())
        if torch.cuda.is_available():
            torch.cuda.set_device(local % torch.cuda.device_count())
        dist.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local, strategy="fsdp" if strategy == "fsdp" else "ddp")


def shutdown(*, wait_for_peers: bool = True) -> None:
    """Leave the process group (end of a torchrun-launched command); nothing to do for one process.

    ``wait_for_peers``: every rank waits for the others first. A rank that tears its gloo connections down while a
    peer is still in its last collective (or still writing results) makes that peer abort ("terminate called
    without an active exception", seen under load). Pass False after an error, when a peer may never arrive."""
    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def global_sample_offset(batches_in_epoch: int, samples_per_batch: int, world_size: int) -> int:
    """How many samples of the epoch's permutation all ranks together have consumed.

    ``ResumableSampler`` gives rank ``r`` the positions ``r, r + W, r + 2W, ...``, so ``k`` batches of ``b`` on
    each of ``W`` ranks cover exactly the first ``k * b * W`` positions.
    """
    return batches_in_epoch * samples_per_batch * world_size


def rebase_batches(saved_batches: int, saved_per_batch: int, saved_world: int, per_batch: int,
                   world: int) -> tuple[int, bool]:
    """A mid-epoch position saved by ``saved_world`` ranks, in batches of this run (``world`` ranks).

    Returns ``(batches_in_epoch, exact)``; ``exact`` is False when the consumed samples are not a whole number of
    this run's global batches (the position is rounded down: a few samples are seen twice).
    """
    done = global_sample_offset(saved_batches, saved_per_batch, saved_world)
    step = per_batch * world
    return done // step, done % step == 0
