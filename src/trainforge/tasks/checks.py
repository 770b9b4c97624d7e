"""Batch and logit checks: one batch and the model's output for it, against a task, before step 0.

They may read values from the device freely (they run once, not per step). Each error names the bad value and the
fix. ``TaskSpec.validate_batch`` / ``TaskSpec.validate_logits`` call these; what differs between task types comes
from the task's type object (``tasks/types.py``).

This is the check that turns "token id >= vocab size" into a clear message instead of a CUDA device-side assert in
the embedding lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from trainforge.errors import DataError, ModelError
from trainforge.tasks.types import TaskFields, TaskType


def check_logits(task: TaskFields, logits: Any, labels: Tensor | None = None) -> None:
    """Check the model's output against the task; raise ``ModelError`` with the fix if it does not fit."""
    token_task = task.kind.is_token_task
    expected = "[batch, seq_len, vocab_size]" if token_task else "[batch, num_classes]"
    if not isinstance(logits, Tensor):
        raise ModelError(
            f"expected the model to return logits as a tensor of shape {expected}, got {type(logits).__name__}; "
            "return the logits tensor (or a tuple/dict/object whose first item or .logits is that tensor)"
        )
    shape = tuple(logits.shape)
    if not (logits.is_floating_point() or logits.is_complex()):
        raise ModelError(
            f"expected float logits, got dtype {logits.dtype} with shape {shape}; return the output layer's "
            "raw scores (before argmax/softmax), not predicted ids"
        )
    want_rank = 3 if token_task else 2
    if logits.dim() != want_rank:
        if token_task and logits.dim() == 2:
            fix = (
                "a token task needs one score vector per position; return the logits before pooling, "
                "or use TaskSpec.classification if the model predicts one label per example"
            )
        elif not token_task and logits.dim() == 3:
            fix = (
                "a classification model must pool over the sequence (e.g. take the first token or the mean) "
                "before its output layer, or use TaskSpec.language_modeling for per-token prediction"
            )
        else:
            fix = f"reshape the model's output to {expected}"
        raise ModelError(
            f"{task.task_type} expects logits of shape {expected}, got shape {shape} (rank {logits.dim()}); {fix}"
        )
    size_name = "vocab_size" if token_task else "num_classes"
    outputs = task.num_outputs
    if shape[-1] != outputs:
        raise ModelError(
            f"logits' last dimension is {shape[-1]} (shape {shape}) but TaskSpec {size_name} is "
            f"{outputs} (expected {expected.replace(size_name, str(outputs))}); "
            f"set TaskSpec {size_name} to match the model's output layer, or resize the output layer to "
            f"{outputs}"
        )
    if labels is not None:
        want = tuple(labels.shape)
        if shape[:-1] != want:
            raise ModelError(
                f"logits of shape {shape} do not line up with labels of shape {want}: expected logits of "
                f"shape {(*want, outputs)}; the model must return one score vector per label "
                "(same batch size" + (" and sequence length" if token_task else "") + ")"
            )


def check_batch(task: TaskFields, batch: Any) -> None:
    """Check one batch against the task; raise ``DataError`` naming the bad value and the fix."""
    kind: TaskType = task.kind
    if not isinstance(batch, Mapping):
        raise DataError(
            f"expected the batch to be a dict of tensors, got {type(batch).__name__}; "
            f"have the dataset or collator return a dict with {task.input_field!r} and {task.label_field!r}"
        )
    if task.input_field not in batch:
        raise kind.missing(task, batch, task.input_field, kind.missing_input_fix)
    inputs = batch[task.input_field]
    if not isinstance(inputs, Tensor):
        raise DataError(
            f"batch[{task.input_field!r}] must be a tensor, got {type(inputs).__name__}; "
            "use a collator that stacks examples into tensors"
        )
    if kind.pixel_inputs:
        _check_pixels(task, inputs)
    elif kind.float_features and task.vocab_size is None and inputs.is_floating_point():
        pass  # classification on float features (no tokenizer): nothing to range-check in the inputs
    else:
        _check_token_ids(task, task.input_field, inputs)
        mask = batch.get("attention_mask")
        if isinstance(mask, Tensor) and tuple(mask.shape) != tuple(inputs.shape):
            raise DataError(
                f"attention_mask has shape {tuple(mask.shape)} but {task.input_field} has shape "
                f"{tuple(inputs.shape)}; build the mask from the same padded batch (1 = token, 0 = padding)"
            )
        if kind.decoder_inputs and isinstance(batch.get("decoder_input_ids"), Tensor):
            _check_token_ids(task, "decoder_input_ids", batch["decoder_input_ids"])

    if kind.causal and task.label_field not in batch:
        return  # labels derive from input_ids, already checked
    labels = task.targets(batch)
    if not isinstance(labels, Tensor):
        raise DataError(
            f"batch[{task.label_field!r}] must be a tensor, got {type(labels).__name__}; "
            "use a collator that stacks labels into a tensor"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise DataError(
            f"batch[{task.label_field!r}] has dtype {labels.dtype}; labels must be integer class or token "
            "indices (torch.long), with ignore_index for positions that do not count"
        )
    if kind.is_token_task:
        _check_token_labels(task, labels, inputs)
    else:
        _check_class_labels(task, labels, inputs)


def _check_token_ids(task: TaskFields, field: str, ids: Tensor) -> None:
    kind: TaskType = task.kind
    shape = tuple(ids.shape)
    if ids.is_floating_point() or ids.dtype == torch.bool or ids.is_complex():
        raise DataError(
            f"batch[{field!r}] has dtype {ids.dtype}; token ids must be integers (torch.long) — "
            "tokenize the text, or use TaskSpec.vision_classification for image tensors"
        )
    if kind.is_token_task and ids.dim() != 2:
        raise DataError(
            f"batch[{field!r}] must have shape [batch, seq_len], got {shape}; "
            "batch the sequences with a collator (a single sequence needs .unsqueeze(0))"
        )
    if field == task.input_field and kind.min_input_len > 1 and shape[-1] < kind.min_input_len:
        raise DataError(
            f"batch[{field!r}] has sequence length {shape[-1]} (shape {shape}); a language model needs at "
            "least 2 tokens per sequence to predict one — drop or merge shorter examples"
        )
    if task.max_seq_len is not None and ids.dim() >= 1 and shape[-1] > task.max_seq_len:
        raise DataError(
            f"batch[{field!r}] has sequence length {shape[-1]} (shape {shape}) but TaskSpec max_seq_len is "
            f"{task.max_seq_len}; truncate sequences to max_seq_len (e.g. tokenizer(..., truncation=True, "
            f"max_length={task.max_seq_len})) or raise max_seq_len if the model supports it"
        )
    if ids.numel() == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0:
        raise DataError(
            f"batch[{field!r}] contains token id {low}, but token ids must be >= 0; negative ids (like "
            f"ignore_index={task.ignore_index}) belong in 'labels', not in the model's input — replace them "
            f"with pad_token_id"
        )
    if task.vocab_size is not None and high >= task.vocab_size:
        raise DataError(
            f"batch[{field!r}] contains token id {high}, but vocab_size is {task.vocab_size} (ids must be in "
            f"[0, {task.vocab_size})); set TaskSpec vocab_size (and the model's embedding size) to at least "
            f"{high + 1}, e.g. len(tokenizer), or re-tokenize with the tokenizer the model was built for"
        )


def _check_token_labels(task: TaskFields, labels: Tensor, inputs: Tensor) -> None:
    shifted = task.kind.causal
    field = task.label_field
    shape = tuple(labels.shape)
    if labels.dim() != 2:
        raise DataError(
            f"batch[{field!r}] must have shape [batch, seq_len], got {shape}; "
            "pad the label sequences to one length with ignore_index"
        )
    if shifted and shape != tuple(inputs.shape):
        raise DataError(
            f"batch[{field!r}] has shape {shape} but {task.input_field} has shape "
            f"{tuple(inputs.shape)}; for causal LM the labels are the unshifted input ids (the loss shifts "
            "them), so give them the same shape — or leave 'labels' out and they are derived from input_ids"
        )
    if not shifted and shape[0] != inputs.shape[0]:
        raise DataError(
            f"batch[{field!r}] has batch size {shape[0]} but {task.input_field} has "
            f"{inputs.shape[0]}; give every example one label sequence"
        )
    if task.max_seq_len is not None and shape[-1] > task.max_seq_len:
        raise DataError(
            f"batch[{field!r}] has sequence length {shape[-1]} but TaskSpec max_seq_len is "
            f"{task.max_seq_len}; truncate the targets to max_seq_len or raise max_seq_len"
        )
    outputs, ignore = task.num_outputs, task.ignore_index
    if (value := _first_out_of_range(labels, ignore, outputs)) is not None:
        raise DataError(
            f"batch[{field!r}] contains {value}, but labels must be token ids in "
            f"[0, vocab_size={outputs}) or ignore_index={ignore}; mark positions that do "
            f"not count with {ignore} and check the tokenizer matches vocab_size"
        )
    if shifted and not bool((labels[:, 1:] != ignore).any()):
        raise DataError(
            f"batch[{field!r}] has no position to predict after the shift: every label from "
            f"position 1 on is ignore_index={ignore}; check the padding and masking in the collator"
        )


def _check_class_labels(task: TaskFields, labels: Tensor, inputs: Tensor) -> None:
    field = task.label_field
    shape = tuple(labels.shape)
    if labels.dim() != 1:
        fix = (
            "squeeze the trailing dimension (labels.view(-1))"
            if labels.dim() == 2 and shape[-1] == 1
            else ("give one class index per example (not one-hot vectors; use labels.argmax(-1))")
        )
        raise DataError(f"batch[{field!r}] must have shape [batch], got {shape}; {fix}")
    if inputs.dim() >= 1 and shape[0] != inputs.shape[0]:
        raise DataError(
            f"batch[{field!r}] has {shape[0]} labels but {task.input_field} has batch size "
            f"{inputs.shape[0]}; give every example exactly one label"
        )
    classes, ignore = task.num_classes, task.ignore_index
    assert classes is not None
    if (value := _first_out_of_range(labels, ignore, classes)) is not None:
        raise DataError(
            f"batch[{field!r}] contains label {value}, but labels must be in "
            f"[0, num_classes={classes}) or ignore_index={ignore}; set TaskSpec "
            f"num_classes to at least {value + 1 if value >= 0 else classes} or map the labels to "
            f"0..{classes - 1}"
        )


def _check_pixels(task: TaskFields, pixels: Tensor) -> None:
    field = task.input_field
    shape = tuple(pixels.shape)
    if not pixels.is_floating_point():
        raise DataError(
            f"batch[{field!r}] has dtype {pixels.dtype}; images must be float tensors — convert "
            "with .float() / 255 or torchvision's ToTensor()"
        )
    if pixels.dim() != 4:
        raise DataError(
            f"batch[{field!r}] must have shape [batch, channels, height, width], got {shape}; "
            "stack the images with a collator (a single image needs .unsqueeze(0))"
        )
    channels = task.num_channels
    if channels is not None and shape[1] != channels:
        hint = "; the images look channels-last, use pixel_values.permute(0, 3, 1, 2)" if shape[-1] == channels else ""
        raise DataError(
            f"batch[{field!r}] has {shape[1]} channels (shape {shape}) but TaskSpec num_channels is "
            f"{channels}{hint}; otherwise set num_channels to {shape[1]}"
        )
    size = task.image_size
    if size is not None and (shape[2] != size or shape[3] != size):
        raise DataError(
            f"batch[{field!r}] has images of {shape[2]}x{shape[3]} (shape {shape}) but TaskSpec "
            f"image_size is {size}; resize the images to {size}x{size} or set image_size to match the data"
        )


__all__ = ["check_batch", "check_logits"]


def _first_out_of_range(labels: Tensor, ignore: int, upper: int) -> int | None:
    """The first label outside ``[0, upper)`` that is not ``ignore``, or None when every label is usable."""
    bad = labels[(labels != ignore) & ((labels < 0) | (labels >= upper))]
    return int(bad[0]) if bad.numel() else None
