"""A loader for in-memory tensor data in one process: the batches a ``DataLoader`` would give, cheaper.

With ``num_workers=0`` a ``DataLoader`` spends tens of microseconds per batch on its fetcher, iterator and
collate plumbing. For tensors that is pure overhead on small models, so this loader takes the same sampler
order, cuts it into the same batches and fetches each with one ``index_select`` (``__getitems__``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

from torch.utils.data import Sampler

from trainforge.data.inputs import PairSamples, Subset


def is_tensor_backed(dataset: Any) -> bool:
    """True for ``(inputs[, labels])`` tensor datasets (directly or through a Subset)."""
    while isinstance(dataset, Subset):
        dataset = dataset.base
    return isinstance(dataset, PairSamples) and dataset.tensor_backed


class TensorBatchLoader:
    """Batches of ``batch_size`` in ``sampler`` order (or dataset order), the last one possibly shorter."""

    def __init__(self, dataset: Any, batch_size: int, sampler: Sampler[int] | None = None) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(self.sampler) if isinstance(self.sampler, Sized) else len(self.dataset)
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        order = list(self.sampler) if self.sampler is not None else list(range(len(self.dataset)))
        fetch = self.dataset.__getitems__
        for start in range(0, len(order), self.batch_size):
            yield fetch(order[start : start + self.batch_size])
