"""Validation metrics, the task's own and yours (``Trainer(..., metrics={"f1": MulticlassF1Score(3)})``), in one
collection: :class:`MetricSet`.

A metric is a torchmetrics ``Metric`` or any object with ``update(preds, target)``, ``compute()`` and ``reset()``.
Each is reset before a validation pass, updated once per validation batch and computed at its end; the value is
logged as ``val/<name>`` next to the task's own metrics and may be the ``monitor``.

What ``update`` receives (the torchmetrics convention: float scores and integer class ids):

- classification (text or vision): ``preds`` the logits ``[B, C]``, ``target`` the class ids ``[B]``;
- language modelling and seq2seq: the predicted positions only, flattened: ``preds`` the logits ``[N, V]`` and
  ``target`` the token ids ``[N]`` for the N positions whose target is not ``ignore_index`` (causal LM: already
  shifted, so ``preds[i]`` is the prediction of ``target[i]``).

Distributed runs (several processes, each validating its shard): a torchmetrics ``Metric`` synchronises its own
state across the process group in ``compute()``. A plain object cannot, so the rule for it is *gather the
predictions*: each process keeps its ``(preds, target)`` pairs on the CPU during validation, and at the end every
process feeds all processes' pairs (rank 0's first) to a reset metric and computes it. Any metric is then exact,
at the memory cost of holding the validation predictions (a reason to prefer torchmetrics for big LM runs).

The task's loss/perplexity/accuracy are metric objects of the same protocol (``tasks/metrics.py``), first in the
collection, so they are reset, updated and computed with yours. Their state is a few running sums
(:class:`~trainforge.tasks.metrics.SumMetric`), so the collection sums every built-in's state across processes in
one all-reduce and copies it to the host once. Their ``update`` gets the raw logits and the task's aligned
targets (``ignore_index`` where nothing is predicted) rather than the filtered pairs above: nothing is copied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from trainforge.errors import ConfigError
from trainforge.tasks.metrics import SumMetric, builtin_metrics

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec

__all__ = ["MetricSet", "UserMetrics", "check_metrics", "preds_and_target"]

_PROTOCOL = ("update", "compute", "reset")


def check_metrics(metrics: Any, task: TaskSpec | None = None) -> list[str]:
    """Problems with a ``metrics`` argument (empty when it is usable)."""
    if metrics is None:
        return []
    if not isinstance(metrics, Mapping):
        return [f"metrics: expected a dict of name -> metric, got {type(metrics).__qualname__}. Fix: e.g. "
                "metrics={'f1': torchmetrics.classification.MulticlassF1Score(num_classes=3)}."]
    builtin = set(task.metric_names) if task is not None else {"loss", "perplexity", "accuracy"}
    problems = []
    for name, metric in metrics.items():
        if not isinstance(name, str) or not name.strip() or "/" in name:
            problems.append(f"metrics: a name must be a non-empty string without '/', got {name!r}. Fix: e.g. 'f1' "
                            "(logged as 'val/f1').")
        elif name in builtin:
            problems.append(f"metrics: {name!r} is a metric the task already logs as 'val/{name}'. Fix: give yours "
                            f"another name, e.g. 'my_{name}'.")
        missing = [m for m in _PROTOCOL if not callable(getattr(metric, m, None))]
        if missing:
            problems.append(f"metrics[{name!r}]: a {type(metric).__qualname__} has no {', '.join(missing)} method. "
                            "Fix: pass a torchmetrics Metric or an object with update(preds, target), compute() "
                            "and reset().")
    return problems


def preds_and_target(task: TaskSpec, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """What a metric's ``update`` gets for one batch: see the module docstring."""
    targets = task.loss_targets(labels)  # aligned with the raw logits, ignore_index where nothing is predicted
    if not task.is_token_task:
        return logits, targets
    flat_targets = targets.reshape(-1)
    keep = flat_targets != task.ignore_index
    return logits.reshape(-1, logits.shape[-1])[keep], flat_targets[keep]


def _is_torchmetrics(metric: Any) -> bool:
    """Whether ``metric`` is a torchmetrics ``Metric``, without importing torchmetrics when it is not loaded."""
    import sys

    module = sys.modules.get("torchmetrics")
    return module is not None and isinstance(metric, module.Metric)


class UserMetrics:
    """The run's own metrics (``Trainer(metrics=...)``) as the Trainer hands them to validation."""

    def __init__(self, metrics: Mapping[str, Any], task: TaskSpec) -> None:
        self.metrics = dict(metrics)
        self.task = task

    @property
    def names(self) -> list[str]:
        return list(self.metrics)


class MetricSet:
    """Every metric of one validation pass, the task's own first: ``reset``, ``update`` per batch, ``compute``.

    Args:
        task: the task whose built-in metrics (``task.metric_names``) lead the set.
        metrics: the run's own metrics, ``{name: metric}`` (checked by :func:`check_metrics`).
    """

    def __init__(self, task: TaskSpec, metrics: Mapping[str, Any] | None = None) -> None:
        self.task = task
        self.metrics: dict[str, Any] = {**builtin_metrics(task), **(metrics or {})}
        self._gather: dict[str, list[tuple[Tensor, Tensor]]] = {}
        self._device: torch.device | None = None

    @property
    def names(self) -> list[str]:
        return list(self.metrics)

    def reset(self, device: torch.device | None = None) -> None:
        """Before a validation pass: forget the last one; torchmetrics states move to ``device``."""
        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self._device = device
        self._gather = {}
        for name, metric in self.metrics.items():
            metric.reset()
            if _is_torchmetrics(metric):
                if device is not None:
                    metric.to(device)
            elif distributed and not isinstance(metric, SumMetric):
                self._gather[name] = []

    @torch.no_grad()
    def update(self, logits: Tensor, labels: Tensor) -> None:
        """Add one batch: the model's logits and the labels from ``task.targets(batch)``. No host sync."""
        logits = logits.detach()
        targets = self.task.loss_targets(labels)  # aligned with the raw logits, ignore_index where nothing counts
        pairs: tuple[Tensor, Tensor] | None = None
        for name, metric in self.metrics.items():
            if isinstance(metric, SumMetric):
                metric.update(logits, targets)
                continue
            if pairs is None:
                pairs = preds_and_target(self.task, logits.float(), labels)
            if name in self._gather:  # a plain metric in a distributed run: gathered at compute
                self._gather[name].append((pairs[0].cpu(), pairs[1].cpu()))
            else:
                metric.update(*pairs)

    @torch.no_grad()
    def update_loss(self, loss_sum: Tensor, count: Tensor) -> None:
        """Add a batch of a model that returns a loss but no logits: only the built-ins can take it (accuracy
        becomes NaN); the run's own metrics need logits."""
        for metric in self.metrics.values():
            if isinstance(metric, SumMetric):
                metric.update_loss(loss_sum, count)

    def compute(self, reduce: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:
        """``{name: value}`` over everything since :meth:`reset`, over all processes.

        ``reduce`` sums a tensor across processes (distributed runs): the built-ins' sums go through it together,
        in one call.
        """
        summed = [m for m in self.metrics.values() if isinstance(m, SumMetric)]
        if summed:
            flat = torch.cat([m.sums(self._device) for m in summed])
            if reduce is not None:
                flat = reduce(flat)
            parts = flat.cpu().double().split([m.size for m in summed])  # the one host copy
            for metric, part in zip(summed, parts):
                metric.load_sums(part)
        values = {}
        for name, metric in self.metrics.items():
            if name in self._gather:
                _replay_gathered(metric, self._gather[name])
            values[name] = _as_float(name, metric.compute())
        return values


def _replay_gathered(metric: Any, local: list[tuple[Tensor, Tensor]]) -> None:
    """Feed every process's ``(preds, target)`` pairs, rank by rank, to the reset ``metric`` (collective)."""
    import torch.distributed as dist

    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, local)
    metric.reset()
    for pairs in everyone:
        for preds, target in pairs:
            metric.update(preds, target)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConfigError([f"metrics[{name!r}]: compute() must return one number (a float or a 1-element tensor) to be "
                       f"logged as 'val/{name}', got {type(value).__qualname__}"
                       f"{tuple(value.shape) if isinstance(value, Tensor) else ''}. Fix: reduce it, e.g. "
                       "average='macro' for a torchmetrics F1."], what="metrics")
