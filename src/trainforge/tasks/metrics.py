"""``MetricAccumulator``: token-weighted loss, perplexity and accuracy over many batches.

``update`` only adds on-device tensors, so it can run every step without a host sync. The raw sums live
in one small 1-D tensor so distributed code can all-reduce them in a single call and compute global
metrics from the result::

    sums = metrics.tensors(device)          # [loss_sum, nll_sum, count, correct]
    dist.all_reduce(sums)                   # SUM over ranks
    global_metrics = metrics.compute_from(sums)

Loss is the token-weighted mean (sum of per-target losses / number of targets) across *all* batches, not
the mean of per-batch means: batches with more real tokens weigh more, as they do in the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from trainforge.tasks import losses

if TYPE_CHECKING:
    from trainforge.tasks.spec import TaskSpec

#: Order of the entries in :meth:`MetricAccumulator.tensors`.
SUM_FIELDS: tuple[str, ...] = ("loss_sum", "nll_sum", "count", "correct")


def metrics_from_sums(sums: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """Metrics from raw sums ``[loss_sum, nll_sum, count, correct]``, keeping only ``names``.

    ``loss`` includes label smoothing (it is the training objective); ``perplexity`` is ``exp`` of the
    un-smoothed negative log-likelihood, so it means the same with or without smoothing. With no targets
    every metric is NaN rather than a misleading 0.
    """
    loss_sum, nll_sum, count, correct = (float(v) for v in sums)
    if count <= 0:
        values = {"loss": math.nan, "perplexity": math.nan, "accuracy": math.nan}
    else:
        nll = nll_sum / count
        try:
            perplexity = math.exp(nll)
        except OverflowError:  # exp(>709) in float64: a diverged model, report it as inf
            perplexity = math.inf
        values = {"loss": loss_sum / count, "perplexity": perplexity, "accuracy": correct / count}
    return {name: values[name] for name in names}


class MetricAccumulator:
    """Accumulates loss, perplexity and accuracy for one :class:`TaskSpec` across batches.

    Args:
        task: the task whose loss, shift and ignore index the metrics follow.
    """

    def __init__(self, task: TaskSpec) -> None:
        self.task = task
        self._sums: Tensor | None = None

    @property
    def names(self) -> list[str]:
        """The metric names :meth:`compute` returns, in order (``task.metric_names``)."""
        return self.task.metric_names

    @torch.no_grad()
    def update(self, logits: Tensor, labels: Tensor, *, loss_sum: Tensor | None = None) -> None:
        """Add one batch: raw model ``logits`` and the unshifted ``labels`` from ``task.targets(batch)``.

        No host sync. Pass ``loss_sum`` (the first value of ``task.loss_sum``) when the loop has already
        computed it, to skip a second cross-entropy.
        """
        logits = logits.detach()
        ignore_index = self.task.ignore_index
        # Targets aligned with the unsliced logits (ignore_index where nothing is predicted), so the
        # large logits tensor is never sliced and copied.
        targets = self.task.loss_targets(labels)
        count = losses.count_valid(targets, ignore_index)
        if loss_sum is None:
            loss_sum, _ = self.task.loss_sum(logits, labels)
        loss_sum = loss_sum.detach()
        if self.task.label_smoothing > 0.0:
            # Smoothing changes the objective; perplexity must come from the plain NLL.
            nll_sum, _ = losses.cross_entropy_sum(logits, targets, ignore_index=ignore_index)
        else:
            nll_sum = loss_sum
        correct = losses.correct_predictions(logits, targets, ignore_index)
        dtype = _sum_dtype(logits.device)
        batch_sums = torch.stack([loss_sum.to(dtype), nll_sum.to(dtype), count.to(dtype), correct.to(dtype)])
        if self._sums is None:
            self._sums = batch_sums
        else:
            # Moving the (tiny) running sums to the batch's device keeps the step free of device-to-host copies
            # even after load_state_dict left them on the CPU.
            self._sums = self._sums.to(device=batch_sums.device, dtype=dtype) + batch_sums

    @torch.no_grad()
    def update_loss(self, loss_sum: Tensor, count: Tensor) -> None:
        """Add a batch known only by its summed loss (a model that returns a loss but no logits).

        Accuracy cannot be known then, so it becomes NaN rather than a made-up number.
        """
        dtype = _sum_dtype(loss_sum.device)
        loss = loss_sum.detach().to(dtype)
        nan = torch.full((), float("nan"), dtype=dtype, device=loss.device)
        self.merge(torch.stack([loss, loss, count.to(dtype), nan]))

    def tensors(self, device: torch.device | str | None = None) -> Tensor:
        """The raw sums ``[loss_sum, nll_sum, count, correct]`` as a 1-D float64 tensor (a copy).

        Sum these across ranks (``all_reduce``) and pass the result to :meth:`compute_from`. Before any
        update it is zeros, on ``device`` (default CPU), so a rank that saw no batch can still join the
        all-reduce. float64 keeps token counts exact far beyond 2**24; MPS, which has no float64, gets float32.
        """
        if self._sums is None:
            target = torch.device(device) if device is not None else torch.device("cpu")
            return torch.zeros(len(SUM_FIELDS), dtype=_sum_dtype(target), device=target)
        sums = self._sums.clone()
        return sums if device is None else sums.to(device)

    def compute_from(self, sums: Tensor | Sequence[float]) -> dict[str, float]:
        """Metrics from raw sums laid out as :meth:`tensors` returns them (e.g. after an all-reduce)."""
        values = sums.detach().double().cpu().tolist() if isinstance(sums, Tensor) else list(sums)
        return metrics_from_sums(values, self.names)

    def compute(self) -> dict[str, float]:
        """The metrics so far, as Python floats. The only method here that synchronises with the device."""
        return self.compute_from(self.tensors())

    def merge(self, other: MetricAccumulator | Tensor) -> None:
        """Add another accumulator's sums (or a sums tensor) into this one."""
        sums = other.tensors() if isinstance(other, MetricAccumulator) else other.detach()
        if self._sums is None:
            self._sums = sums.clone()
        else:
            self._sums = self._sums + sums.to(device=self._sums.device, dtype=self._sums.dtype)

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._sums = None

    def state_dict(self) -> dict[str, float]:
        """The raw sums as plain floats (syncs), e.g. to save mid-epoch metrics in a checkpoint."""
        values = self.tensors().double().cpu().tolist()
        return dict(zip(SUM_FIELDS, values))

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore sums saved by :meth:`state_dict` (kept on CPU until the next update moves them)."""
        self._sums = torch.tensor([float(state[k]) for k in SUM_FIELDS], dtype=torch.float64)


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64
