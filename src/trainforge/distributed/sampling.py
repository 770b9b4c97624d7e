"""Evaluation sharding: every sample exactly once over all ranks (no padding, so metrics match one process)."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


class EvalShardSampler(Sampler[int]):
    """Rank ``r`` of ``W`` reads samples ``r, r + W, r + 2W, ...`` in dataset order.

    Unlike the training sampler it never pads, so ranks may hold one sample more or less; evaluation sums its
    metrics across ranks, so the result is that of one process over the whole set.
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1) -> None:
        self.num_samples = num_samples
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world_size))
