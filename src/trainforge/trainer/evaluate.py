"""Validation: the task's metrics over a data loader, with no side effects on the model or RNG."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec
    from trainforge.trainer.adapter import ModelAdapter


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Mapping[str, Tensor]],
    task: TaskSpec,
    adapter: ModelAdapter,
    to_device: Callable[[Mapping[str, Tensor]], dict[str, Tensor]],
    autocast: Callable[[], Any],
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """``{"loss": ..., "perplexity": ..., "accuracy": ...}`` (per the task), token-weighted over all batches.

    ``reduce`` sums the raw metric tensors across processes in distributed runs.
    """
    was_training = model.training
    model.eval()
    metrics = task.new_metrics()
    try:
        for raw in batches:
            batch = to_device(raw)
            labels = task.targets(batch)
            with autocast():
                out = adapter.forward(model, batch, labels)
            if out.logits is None:
                # A loss-only model: its mean loss weighted by the target count is all we can report.
                count = task.count_targets(labels)
                assert out.loss is not None
                metrics.update_loss(out.loss.float() * count, count)
            else:
                metrics.update(out.logits, labels)
    finally:
        model.train(was_training)
    if reduce is not None:
        return metrics.compute_from(reduce(metrics.tensors()))
    return metrics.compute()
