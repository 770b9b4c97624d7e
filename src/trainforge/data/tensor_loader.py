"""A loader for in-memory tensor data in one process: the batches a ``DataLoader`` would give, cheaper.

With ``num_workers=0`` a ``DataLoader`` spends tens of microseconds per batch on its fetcher, iterator and
collate plumbing. For tensors that is pure overhead on small models, so this loader takes the same sampler
order, cuts it into the same batches and fetches each with one ``index_select`` (``__getitems__``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import Sampler

from trainforge.data.inputs import PairSamples, Subset, in_order
from trainforge.data.tokenfile import TokenSamples

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec


def every_target_counts(loader: Any, task: TaskSpec) -> bool:
    """True when every next-token position of every batch ``loader`` gives is a target that counts.

    That holds for causal LM on a plain tensor of token ids (no labels, no ``pad_token_id``: the labels are the ids
    themselves) that contains no ``ignore_index`` value — checked here, once, over the whole tensor. The training
    step can then take each batch's target count from its shape instead of counting on the device every step.
    """
    if not isinstance(loader, TensorBatchLoader) or task.task_type != "language_modeling":
        return False
    if task.pad_token_id is not None:
        return False
    base = _base(loader.dataset)
    if isinstance(base, TokenSamples):  # unsigned token ids (uint16/uint32): never the negative ignore_index
        return True
    if not isinstance(base, PairSamples) or base.labels is not None or not isinstance(base.inputs, Tensor):
        return False
    ids = base.inputs
    return ids.dim() == 2 and not ids.is_floating_point() and not bool((ids == task.ignore_index).any())


def is_tensor_backed(dataset: Any) -> bool:
    """True for ``(inputs[, labels])`` tensor datasets and the windows of a memory-mapped ``TokenFile`` (directly or
    through a Subset): whole batches come from one ``__getitems__`` call, so they take this loader."""
    base = _base(dataset)
    return (isinstance(base, PairSamples) and base.tensor_backed) or isinstance(base, TokenSamples)


def batches_on(loader: Any, device: torch.device) -> bool:
    """True when every batch ``loader`` gives holds only tensors already on ``device``: the training step can use
    them as they are instead of building a moved copy of each batch dict."""
    base = _base(loader.dataset) if isinstance(loader, TensorBatchLoader) and loader.collate is None else None
    if not isinstance(base, PairSamples) or not base.tensor_backed:
        return False
    tensors: list[Any] = [base.inputs] if base.labels is None else [base.inputs, base.labels]
    return all(t.device == device for t in tensors)


def _base(dataset: Any) -> Any:
    while isinstance(dataset, Subset):
        dataset = dataset.base
    return dataset


def finishes_batches(task: TaskSpec) -> bool:
    """True when the task's collator adds to a stacked tensor batch what the model needs (an attention mask,
    ``decoder_input_ids``, float images): the tensor loader then passes each batch through it, so tensor data give
    the same batches as any other container. A causal-LM batch of token ids is already complete (its labels are
    built on the device by ``TaskSpec.targets``), so the hot loop pays nothing for it."""
    return task.task_type != "language_modeling"


class TensorBatchLoader:
    """Batches of ``batch_size`` in ``sampler`` order (or dataset order), the last one possibly shorter.

    ``collate``, when given, finishes each stacked batch (see :func:`finishes_batches`).
    """

    def __init__(self, dataset: Any, batch_size: int, sampler: Sampler[int] | None = None,
                 collate: Callable[[Any], Any] | None = None) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = sampler
        self.collate = collate

    def __len__(self) -> int:
        n = len(self.sampler) if isinstance(self.sampler, Sized) else len(self.dataset)
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        order = list(self.sampler) if self.sampler is not None else list(range(len(self.dataset)))
        fetch = self.dataset.__getitems__
        if self.collate is not None:
            collate, getitems = self.collate, fetch

            def fetch(indices: Any) -> Any:
                return collate(getitems(indices))

        n, size = len(order), self.batch_size
        first = order[0] if order else 0
        if in_order(order):  # shuffle=False: ranges, so the order is checked once per epoch, not per batch
            for start in range(0, n, size):
                yield fetch(range(first + start, first + min(start + size, n)))
            return
        for start in range(0, n, size):
            yield fetch(order[start : start + size])
