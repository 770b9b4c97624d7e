"""Batch primitives shared by the collators and the datasets (the registry of collators is ``data.collators``):
padding, teacher-forcing shifts, and the mark of a batch a dataset stacked itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from trainforge.errors import DataError

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec

Batch = dict[str, Tensor]
Collator = Callable[[list[Any]], Batch]


class PreBatched(dict):  # type: ignore[type-arg]
    """A batch already stacked by a dataset's ``__getitems__``; collators return it unchanged."""


def pad_stack(values: Sequence[Tensor], pad_value: int | float, field: str, can_pad: bool = True,
              length: int | None = None) -> Tensor:
    """Stack tensors, right-padding the first dimension to the longest one (or to ``length``)."""
    first = values[0]
    if all(v.shape == first.shape for v in values) and (length is None or first.dim() == 0 or first.shape[0] == length):
        return torch.stack(list(values))
    if not can_pad or any(v.dim() != first.dim() or v.shape[1:] != first.shape[1:] for v in values):
        shapes = sorted({tuple(v.shape) for v in values})
        raise DataError(
            f"Field {field!r} has samples of different shapes {shapes[:4]} that cannot be padded. "
            "Fix: give equal shapes, or pre-pad them yourself."
        )
    length = max(v.shape[0] for v in values) if length is None else length
    out = first.new_full((len(values), length, *first.shape[1:]), pad_value)
    for i, v in enumerate(values):
        out[i, : v.shape[0]] = v
    return out


def shift_right(labels: Tensor, task: TaskSpec) -> Tensor:
    """Teacher-forcing decoder inputs: ``[start, y0, y1, ...]`` with ignored positions set to pad."""
    start = task.decoder_start_token_id if task.decoder_start_token_id is not None else (task.pad_token_id or 0)
    pad = task.pad_token_id if task.pad_token_id is not None else 0
    out = labels.new_full(labels.shape, pad)
    out[:, 1:] = labels[:, :-1]
    out[:, 0] = start
    out[out == task.ignore_index] = pad
    return out
