"""Pure loss helpers shared by ``TaskSpec`` and ``MetricAccumulator``.

Everything here runs on the training hot path, so nothing reads a tensor's value on the host: no
``.item()``, no ``bool(tensor)``, no Python branch on data. Branches on dtypes and shapes are fine,
they are known without a device sync.

Losses are returned as *sums* with a separate count of valid targets. The training loop divides the sum
over all micro-batches (and ranks) by the total count, which is what makes gradient accumulation
token-normalised: ``batch_size=b, accumulation=k`` gives the same gradients as ``batch_size=k*b``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a loss is computed in: float32, or float64 when the logits already are float64.

    bf16/fp16 logits are upcast because log-softmax over a 50k vocabulary in bf16 loses most of its
    mantissa, and a sum over thousands of tokens in bf16 loses the rest.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def shift_labels(labels: Tensor) -> Tensor:
    """Causal-LM targets: position ``t`` of the logits predicts token ``t + 1``."""
    return labels[..., 1:]


def drop_last_position(logits: Tensor) -> Tensor:
    """Causal-LM logits aligned with :func:`shift_labels`: the last position has nothing to predict."""
    return logits[..., :-1, :]


def causal_lm_targets(labels: Tensor, ignore_index: int) -> Tensor:
    """Labels shifted left by one, with ``ignore_index`` appended so they line up with the *unsliced* logits.

    Equivalent to comparing ``drop_last_position(logits)`` with ``shift_labels(labels)``, but slicing
    ``[B, T, V]`` logits makes them non-contiguous and ``reshape`` would then copy the whole
    (largest) tensor of the step; padding the small label tensor instead costs ``B*T`` integers.
    """
    return F.pad(labels[..., 1:], (0, 1), value=ignore_index)


def cross_entropy_sum(
    logits: Tensor,
    targets: Tensor,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Sum of per-target cross-entropy losses and the number of targets that count.

    Args:
        logits: ``[..., C]`` raw scores (any float dtype; computed in float32, or float64 if given).
        targets: ``[...]`` class indices, ``ignore_index`` where nothing is to be predicted.
        ignore_index: targets with this value add nothing to the sum or the count.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.

    Returns:
        ``(loss_sum, count)``: a 0-d float tensor and a 0-d int64 tensor on the logits' device.
        ``loss_sum / count`` equals ``F.cross_entropy(..., reduction="mean")``.
    """
    flat_targets = _flat_long(targets)
    loss = cross_entropy_total(logits, flat_targets, ignore_index=ignore_index, label_smoothing=label_smoothing)
    return loss, count_valid(flat_targets, ignore_index)


def cross_entropy_total(
    logits: Tensor,
    targets: Tensor,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    mean: bool = False,
) -> Tensor:
    """The summed loss of :func:`cross_entropy_sum` alone: the training step already knows the count, and
    skipping it saves two kernel launches per micro-batch in the hot loop. ``mean=True`` divides by the count
    inside the kernel (``reduction="mean"``), the same value and gradients as dividing the sum by it afterwards."""
    num_classes = logits.shape[-1]
    flat_logits = logits.reshape(-1, num_classes)
    if flat_logits.dtype != torch.float32:  # (a no-op .to() still costs a dispatch per step)
        flat_logits = flat_logits.to(compute_dtype(logits.dtype))
    return F.cross_entropy(
        flat_logits,
        _flat_long(targets),
        reduction="mean" if mean else "sum",
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )


def _flat_long(targets: Tensor) -> Tensor:
    flat = targets.reshape(-1)
    # cross_entropy wants int64 class indices; int32 ids from a tokenizer are common.
    return flat if flat.dtype == torch.long else flat.long()


def count_valid(targets: Tensor, ignore_index: int) -> Tensor:
    """Number of targets not equal to ``ignore_index``, as a 0-d int64 tensor (no host sync)."""
    return (targets != ignore_index).sum(dtype=torch.int64)


def correct_predictions(logits: Tensor, targets: Tensor, ignore_index: int) -> Tensor:
    """Number of valid targets whose argmax prediction is right, as a 0-d int64 tensor."""
    predictions = logits.argmax(dim=-1)
    hits = (predictions == targets) & (targets != ignore_index)
    return hits.sum(dtype=torch.int64)


def labels_from_input_ids(
    input_ids: Tensor,
    *,
    ignore_index: int = -100,
    pad_token_id: int | None = None,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """Labels for a bare token sequence: the sequence itself, with padding set to ``ignore_index``.

    Padding is recognised by ``pad_token_id`` and/or by ``attention_mask == 0``. The input tensor is
    never modified (``masked_fill`` returns a copy), so the model still sees the original ids; with no padding
    the input tensor itself is returned, so callers must not modify the labels in place.
    """
    labels = input_ids
    if labels.dtype != torch.long:
        labels = labels.long()
    if pad_token_id is not None:
        labels = labels.masked_fill(labels == pad_token_id, ignore_index)
    if attention_mask is not None:
        labels = labels.masked_fill(attention_mask == 0, ignore_index)
    # Without padding the labels are the input tensor itself (no copy in the hot loop): treat as read-only.
    return labels
