"""A sampler whose position is plain arithmetic, so a run can resume mid-epoch exactly.

Epoch ``e`` visits ``permutation(seed, e)``; resuming at sample ``k`` of that epoch skips the first ``k``
indices of the same permutation without touching the data. With ``world_size > 1`` every rank takes a strided
share of the (padded) permutation, as ``DistributedSampler`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The visiting order of epoch ``epoch``: a pure function of (n, seed, epoch)."""
    if not shuffle:
        return list(range(n))
    return _permutation(n, seed, epoch).tolist()


def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator()
    # Large odd multiplier keeps (seed, epoch) pairs from colliding for small values.
    g.manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))
    return torch.randperm(n, generator=g)


def _iterate(order: torch.Tensor, start: int, piece: int = 8192) -> Iterator[int]:
    # A few thousand Python ints at a time: a list of the whole order costs ~40 bytes per sample (a memory-mapped
    # corpus of 100M tokens has millions of windows), the int64 tensor 8.
    for at in range(start, order.numel(), piece):
        yield from order[at:at + piece].tolist()


class ResumableSampler(Sampler[int]):
    """Seeded, epoch-aware, resumable and rank-aware sampler.

    Args:
        num_samples: length of the dataset.
        seed: base seed; each epoch's order derives from (seed, epoch).
        shuffle: shuffle each epoch (False keeps dataset order).
        rank, world_size: distributed share (defaults: single process).
    """

    def __init__(self, num_samples: int, seed: int = 42, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0  # samples of this rank's share already consumed in the current epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of this rank's share of the current epoch."""
        self.start = start

    def _share(self) -> list[int]:
        order = epoch_permutation(self.num_samples, self.seed, self.epoch, self.shuffle)
        if self.world_size == 1:
            return order
        per_rank = -(-len(order) // self.world_size)
        padded = order + order[: per_rank * self.world_size - len(order)]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        if self.world_size == 1:  # the same order as _share(), without a list of it
            if not self.shuffle:
                return iter(range(self.start, self.num_samples))
            return _iterate(_permutation(self.num_samples, self.seed, self.epoch), self.start)
        share = self._share()
        return iter(share[self.start :])

    def __len__(self) -> int:
        per_rank = -(-self.num_samples // self.world_size)
        return max(per_rank - self.start, 0)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed, "num_samples": self.num_samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.start = int(state["start"])
