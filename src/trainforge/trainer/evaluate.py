"""Validation: the task's metrics over a data loader, with no side effects on the model or RNG."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainforge.trainer.user_metrics import MetricSet

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec
    from trainforge.tasks.adapter import ModelAdapter
    from trainforge.trainer.user_metrics import UserMetrics


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Mapping[str, Tensor]],
    task: TaskSpec,
    adapter: ModelAdapter,
    to_device: Callable[[Mapping[str, Tensor]], dict[str, Tensor]],
    autocast: Callable[[], Any],
    reduce: Callable[[Tensor], Tensor] | None = None,
    user_metrics: UserMetrics | None = None,
) -> dict[str, float]:
    """``{"loss": ..., "perplexity": ..., "accuracy": ...}`` (per the task), token-weighted over all batches, then
    the run's own metrics: one :class:`MetricSet` updates and computes them all.

    ``reduce`` sums the built-in metrics' sums across processes in distributed runs (one call). A sharded (FSDP) model's forward
    is collective, so its ranks evaluate in lock step: a rank whose shard of the data ran out repeats its last
    batch, without counting it, until every rank is done.
    """
    was_training = model.training
    model.eval()
    metrics = MetricSet(task, user_metrics.metrics if user_metrics is not None else None)
    metrics.reset(next((p.device for p in model.parameters()), None))
    try:
        for raw, counted in _lockstep(model, batches):
            batch = to_device(raw)
            labels = task.targets(batch)
            with autocast():
                out = adapter.forward(model, batch, labels)
            if not counted:
                continue
            if out.logits is None:
                # A loss-only model: its mean loss weighted by the target count is all we can report.
                count = task.count_targets(labels)
                assert out.loss is not None
                metrics.update_loss(out.loss.float() * count, count)
            else:
                metrics.update(out.logits, labels)
    finally:
        model.train(was_training)
    return metrics.compute(reduce)


def _lockstep(model: nn.Module, batches: Iterable[Mapping[str, Tensor]]) -> Iterator[tuple[Mapping[str, Tensor], bool]]:
    """``(batch, counted)``: the batches, then (FSDP with several ranks) uncounted repeats while another rank
    still has batches."""
    import torch.distributed as dist

    from trainforge.distributed.fsdp import is_fsdp, ranks_with_batch

    if not (is_fsdp(model) and dist.is_initialized() and dist.get_world_size() > 1):
        yield from ((raw, True) for raw in batches)
        return
    device = next(model.parameters()).device
    last: Mapping[str, Tensor] | None = None
    it = iter(batches)
    while True:
        raw = next(it, None)
        if ranks_with_batch(raw is not None, device) == 0:
            return
        if raw is not None:
            last = raw
            yield raw, True
        elif last is None:
            raise RuntimeError("FSDP evaluation: this rank has no validation batch while others do. Fix: use at "
                               "least as many validation samples as processes.")
        else:
            yield last, False
