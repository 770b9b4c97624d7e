"""Collators: turn a list of samples into a padded batch dict, chosen by the TaskSpec.

Samples arrive normalised to dicts (see ``data.inputs``). Token fields are padded on the right; for language
modelling the labels of padded positions become ``ignore_index`` so they never count in the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from trainforge.data.inputs import PreBatched
from trainforge.errors import DataError

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec

Batch = dict[str, Tensor]
Collator = Callable[[list[Any]], Batch]

# Fields holding token ids that are padded with the pad id; everything else is padded with 0.
_TOKEN_FIELDS = ("input_ids", "decoder_input_ids")
_LABEL_FIELDS = ("labels",)


def _as_tensor(value: Any, field: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(
            f"Field {field!r} of a sample could not be turned into a tensor: got {type(value).__name__} "
            f"({exc}). Fix: give numbers, lists of numbers, numpy arrays or tensors."
        ) from exc


def pad_stack(values: Sequence[Tensor], pad_value: int | float, field: str, can_pad: bool = True) -> Tensor:
    """Stack tensors, right-padding the first dimension to the longest one."""
    first = values[0]
    if all(v.shape == first.shape for v in values):
        return torch.stack(list(values))
    if not can_pad or any(v.dim() != first.dim() or v.shape[1:] != first.shape[1:] for v in values):
        shapes = sorted({tuple(v.shape) for v in values})
        raise DataError(
            f"Field {field!r} has samples of different shapes {shapes[:4]} that cannot be padded. "
            "Fix: give equal shapes, or pre-pad them yourself."
        )
    length = max(v.shape[0] for v in values)
    out = first.new_full((len(values), length, *first.shape[1:]), pad_value)
    for i, v in enumerate(values):
        out[i, : v.shape[0]] = v
    return out


def collate_dicts(
    samples: list[dict[str, Any]], pad_token_id: int | None, ignore_index: int, add_mask: bool
) -> Batch:
    """Pad and stack dict samples field by field; add ``attention_mask`` when token lengths differ.

    ``pad_token_id=None`` means token fields of different lengths are an error (there is no safe pad value).
    """
    if not samples:
        raise DataError("Cannot collate an empty batch. Fix: check that the dataset is not empty.")
    batch: Batch = {}
    for field in samples[0]:
        if isinstance(samples[0][field], (str, bytes)):
            continue  # raw text columns (e.g. a Hugging Face dataset's "text") are not model inputs
        values = [_as_tensor(s[field], field) for s in samples]
        can_pad = values[0].dim() >= 1
        if field in _TOKEN_FIELDS:
            pad: int | float = pad_token_id if pad_token_id is not None else 0
            if pad_token_id is None and len({v.shape for v in values}) > 1:
                raise DataError(
                    f"Field {field!r} has sequences of different lengths "
                    f"({sorted({int(v.shape[0]) for v in values})[:6]}) but the TaskSpec has no pad_token_id. "
                    "Fix: pass pad_token_id=... to the TaskSpec, or give sequences of equal length."
                )
        elif field in _LABEL_FIELDS:
            pad = ignore_index
        else:
            pad = 0
        batch[field] = pad_stack(values, pad, field, can_pad=can_pad)
        if add_mask and field == "input_ids" and "attention_mask" not in samples[0]:
            sizes = [v.shape[0] for v in values]
            if min(sizes) != max(sizes):  # compared in Python: no tensor ops when nothing was padded
                lengths = torch.tensor(sizes)
                positions = torch.arange(batch[field].shape[1])
                batch["attention_mask"] = (positions[None, :] < lengths[:, None]).long()
    return batch


def language_modeling_collator(task: TaskSpec) -> Collator:
    """Pads ``input_ids``; labels are the inputs with padded positions set to ``ignore_index``.

    A causal LM may pad with any id when no pad id is set: padded positions are masked out of the labels, and
    with right padding no real position attends to a later pad.
    """
    pad = task.pad_token_id if task.pad_token_id is not None else 0

    def collate(samples: list[Any]) -> Batch:
        if isinstance(samples, PreBatched):
            return samples
        batch = collate_dicts(samples, pad, task.ignore_index, add_mask=True)
        if "labels" not in batch and "input_ids" in batch and "attention_mask" in batch:
            labels = batch["input_ids"].clone()
            labels[batch["attention_mask"] == 0] = task.ignore_index
            batch["labels"] = labels
        return batch

    return collate


def generic_collator(task: TaskSpec) -> Collator:
    """Classification, seq2seq and vision: pad token fields, stack the rest."""
    def collate(samples: list[Any]) -> Batch:
        if isinstance(samples, PreBatched):
            return samples
        batch = collate_dicts(samples, task.pad_token_id, task.ignore_index, add_mask=task.task_type != "vision_classification")
        if task.task_type == "seq2seq" and "decoder_input_ids" not in batch and "labels" in batch:
            batch["decoder_input_ids"] = shift_right(batch["labels"], task)
        return batch

    return collate


def shift_right(labels: Tensor, task: TaskSpec) -> Tensor:
    """Teacher-forcing decoder inputs: ``[start, y0, y1, ...]`` with ignored positions set to pad."""
    start = task.decoder_start_token_id if task.decoder_start_token_id is not None else (task.pad_token_id or 0)
    pad = task.pad_token_id if task.pad_token_id is not None else 0
    out = labels.new_full(labels.shape, pad)
    out[:, 1:] = labels[:, :-1]
    out[:, 0] = start
    out[out == task.ignore_index] = pad
    return out


def collator_for(task: TaskSpec) -> Collator:
    """The built-in collator for a task type."""
    if task.task_type == "language_modeling":
        return language_modeling_collator(task)
    return generic_collator(task)
