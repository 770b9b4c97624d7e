"""The task's own metrics: token-weighted loss, perplexity and accuracy over many batches.

Two forms of the same sums:

* :class:`Loss`, :class:`Perplexity` and :class:`Accuracy`: one metric object each, with the protocol of a user's
  metric (``update(preds, target)`` / ``compute()`` / ``reset()``), which validation drives in one collection with
  the run's own metrics (``trainer/user_metrics.py``). Their state is a few running sums (:class:`SumMetric`), so
  the collection all-reduces every built-in's sums in one call.
* :class:`MetricAccumulator`: the four sums of a task in one tensor, for code that keeps them itself (the
  Lightning module).

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
from typing import Protocol

import torch
from torch import Tensor

from trainforge.tasks import losses


class ScoredTask(Protocol):
    """What the metrics read of a task (a ``TaskSpec``; named here so this module needs no import of it)."""

    @property
    def ignore_index(self) -> int: ...
    @property
    def label_smoothing(self) -> float: ...
    @property
    def metric_names(self) -> list[str]: ...
    def loss_targets(self, labels: Tensor) -> Tensor: ...
    def loss_sum(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]: ...


#: Order of the entries in :meth:`MetricAccumulator.tensors`.
SUM_FIELDS: tuple[str, ...] = ("loss_sum", "nll_sum", "count", "correct")


def metrics_from_sums(sums: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """Metrics from raw sums ``[loss_sum, nll_sum, count, correct]``, keeping only ``names``.

    ``loss`` includes label smoothing (it is the training objective); ``perplexity`` is ``exp`` of the
    un-smoothed negative log-likelihood, so it means the same with or without smoothing. With no targets
    every metric is NaN rather than a misleading 0.
    """
    loss_sum, nll_sum, count, correct = (float(v) for v in sums)
    values = {"loss": _mean(loss_sum, count), "perplexity": _perplexity(nll_sum, count),
              "accuracy": _mean(correct, count)}
    return {name: values[name] for name in names}


def _mean(total: float, count: float) -> float:
    # With no targets a metric is NaN rather than a misleading 0.
    return total / count if count > 0 else math.nan


def _perplexity(nll_sum: float, count: float) -> float:
    if count <= 0:
        return math.nan
    try:
        return math.exp(nll_sum / count)
    except OverflowError:  # exp(>709) in float64: a diverged model, report it as inf
        return math.inf


class SumMetric:
    """A metric whose state is a few running sums on the device: adding two states gives the state of both data.

    So a distributed run adds every process's :meth:`sums` (one all-reduce for all such metrics together), hands the
    result back with :meth:`load_sums` and calls :meth:`compute`. ``update`` never synchronises with the device.
    """

    #: How many sums the state holds.
    size: int = 2

    def __init__(self) -> None:
        self._sums: Tensor | None = None

    def reset(self) -> None:
        """Forget everything added since the last reset."""
        self._sums = None

    def sums(self, device: torch.device | str | None = None) -> Tensor:
        """The running sums as a 1-D float64 tensor (float32 on MPS); zeros before any update (a process that saw
        no batch still joins the all-reduce), on ``device`` (default: where they are, or the CPU)."""
        if self._sums is None:
            target = torch.device(device) if device is not None else torch.device("cpu")
            return torch.zeros(self.size, dtype=_sum_dtype(target), device=target)
        sums = self._sums.clone()
        return sums if device is None else sums.to(device)

    def load_sums(self, sums: Tensor) -> None:
        """Replace the state, e.g. by the sums of every process after an all-reduce."""
        self._sums = sums.detach()

    def merge_sums(self, sums: Tensor) -> None:
        """Add sums laid out as :meth:`sums` returns them (another metric's, or saved ones) into the state."""
        sums = sums.detach()
        if self._sums is None:
            self._sums = sums.clone()
        else:
            self._sums = self._sums + sums.to(device=self._sums.device, dtype=self._sums.dtype)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch: ``preds`` the raw logits ``[..., C]``, ``target`` the targets aligned with them
        (``TaskSpec.loss_targets``), ``ignore_index`` where nothing is predicted."""
        raise NotImplementedError

    def update_loss(self, loss_sum: Tensor, count: Tensor) -> None:
        """Add a batch known only by its summed loss and target count (a model that returns no logits)."""
        raise NotImplementedError

    def compute(self) -> float:
        """The value over everything added since :meth:`reset` (one host copy of the sums)."""
        raise NotImplementedError

    def _add(self, *values: Tensor) -> None:
        dtype = _sum_dtype(values[0].device)
        batch = torch.stack([v.detach().to(dtype) for v in values])
        # The running sums follow the batch's device, so a step never copies from the device to the host.
        self._sums = batch if self._sums is None else self._sums.to(device=batch.device, dtype=dtype) + batch

    def _values(self) -> list[float]:
        return self.sums().double().cpu().tolist()


class Loss(SumMetric):
    """The task's loss, token-weighted: summed cross-entropy (label smoothing included: it is the objective) over
    the targets that count.

    ``update(preds, target)``: ``preds`` the raw logits ``[..., C]``, ``target`` the targets aligned with them
    (``TaskSpec.loss_targets``), ``ignore_index`` where nothing is predicted.
    """

    def __init__(self, ignore_index: int = -100, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        loss_sum, count = losses.cross_entropy_sum(preds.detach(), target, ignore_index=self.ignore_index,
                                                   label_smoothing=self.label_smoothing)
        self._add(loss_sum, count)

    @torch.no_grad()
    def update_loss(self, loss_sum: Tensor, count: Tensor) -> None:
        """Add a batch known only by its summed loss (a model that returns a loss but no logits)."""
        self._add(loss_sum, count)

    def compute(self) -> float:
        loss_sum, count = self._values()
        return _mean(loss_sum, count)


class Perplexity(SumMetric):
    """``exp`` of the mean un-smoothed negative log-likelihood, so it means the same with or without smoothing.

    Given ``of``, an un-smoothed :class:`Loss` updated with the same batches, it is that loss's ``exp`` and keeps no
    state of its own: the cross-entropy of a batch is computed once. Otherwise it sums its own NLL.
    """

    def __init__(self, ignore_index: int = -100, of: Loss | None = None) -> None:
        super().__init__()
        if of is not None and of.label_smoothing > 0.0:
            raise ValueError("Perplexity(of=loss) needs an un-smoothed loss; leave of=None to sum the plain NLL")
        self.ignore_index = ignore_index
        self.of = of
        self.size = 0 if of is not None else 2

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        if self.of is None:
            nll_sum, count = losses.cross_entropy_sum(preds.detach(), target, ignore_index=self.ignore_index)
            self._add(nll_sum, count)

    @torch.no_grad()
    def update_loss(self, loss_sum: Tensor, count: Tensor) -> None:
        """A loss-only batch: its loss stands for the NLL (there are no logits to compute it without smoothing)."""
        if self.of is None:
            self._add(loss_sum, count)

    def compute(self) -> float:
        nll_sum, count = (self.of or self)._values()
        return _perplexity(nll_sum, count)


class Accuracy(SumMetric):
    """The share of targets whose highest-scoring class is right (``ignore_index`` targets do not count)."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        correct = losses.correct_predictions(preds.detach(), target, self.ignore_index)
        self._add(correct, losses.count_valid(target, self.ignore_index))

    @torch.no_grad()
    def update_loss(self, loss_sum: Tensor, count: Tensor) -> None:
        """A loss-only batch: its targets count, but whether they were right is unknown, so accuracy becomes NaN."""
        self._add(torch.full((), math.nan, device=loss_sum.device), count)

    def compute(self) -> float:
        correct, count = self._values()
        return _mean(correct, count)


def builtin_metrics(task: ScoredTask) -> dict[str, SumMetric]:
    """The task's own metrics as metric objects, in ``task.metric_names`` order (fresh, empty)."""
    made: dict[str, SumMetric] = dict(zip(("loss", "perplexity", "accuracy"), _trio(task)))
    return {name: made[name] for name in task.metric_names}


def _trio(task: ScoredTask) -> tuple[Loss, Perplexity, Accuracy]:
    loss = Loss(task.ignore_index, task.label_smoothing)
    # Without smoothing the loss is the plain NLL: perplexity reads the loss's sums (one cross-entropy per batch).
    perplexity = Perplexity(task.ignore_index, of=loss if task.label_smoothing == 0.0 else None)
    return loss, perplexity, Accuracy(task.ignore_index)


class MetricAccumulator:
    """Loss, perplexity and accuracy of one task across batches, as the four sums of :meth:`tensors`.

    The same :class:`Loss`, :class:`Perplexity` and :class:`Accuracy` objects the validation collection uses, held
    together for code that keeps and reduces the sums itself (the Lightning module).

    Args:
        task: the task whose loss, shift and ignore index the metrics follow.
    """

    def __init__(self, task: ScoredTask) -> None:
        self.task = task
        self._loss, self._perplexity, self._accuracy = _trio(task)

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
        # Targets aligned with the unsliced logits (ignore_index where nothing is predicted), so the
        # large logits tensor is never sliced and copied.
        targets = self.task.loss_targets(labels)
        if loss_sum is None:
            self._loss.update(logits, targets)
        else:
            self._loss.update_loss(loss_sum, losses.count_valid(targets, self.task.ignore_index))
        self._perplexity.update(logits, targets)
        self._accuracy.update(logits, targets)

    @torch.no_grad()
    def update_loss(self, loss_sum: Tensor, count: Tensor) -> None:
        """Add a batch known only by its summed loss (a model that returns a loss but no logits).

        Accuracy cannot be known then, so it becomes NaN rather than a made-up number.
        """
        for metric in (self._loss, self._perplexity, self._accuracy):
            metric.update_loss(loss_sum, count)

    def tensors(self, device: torch.device | str | None = None) -> Tensor:
        """The raw sums ``[loss_sum, nll_sum, count, correct]`` as a 1-D float64 tensor (a copy).

        Sum these across ranks (``all_reduce``) and pass the result to :meth:`compute_from`. Before any
        update it is zeros, on ``device`` (default CPU), so a rank that saw no batch can still join the
        all-reduce. float64 keeps token counts exact far beyond 2**24; MPS, which has no float64, gets float32.
        """
        loss = self._loss.sums(device)
        nll = self._perplexity.sums(device) if self._perplexity.size else loss
        correct = self._accuracy.sums(device)
        return torch.stack([loss[0], nll[0], loss[1], correct[0].to(loss.device)])

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
        loss_sum, nll_sum, count, correct = sums.unbind()
        self._loss.merge_sums(torch.stack([loss_sum, count]))
        if self._perplexity.size:
            self._perplexity.merge_sums(torch.stack([nll_sum, count]))
        self._accuracy.merge_sums(torch.stack([correct, count]))

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        for metric in (self._loss, self._perplexity, self._accuracy):
            metric.reset()

    def state_dict(self) -> dict[str, float]:
        """The raw sums as plain floats (syncs), e.g. to save mid-epoch metrics in a checkpoint."""
        values = self.tensors().double().cpu().tolist()
        return dict(zip(SUM_FIELDS, values))

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore sums saved by :meth:`state_dict` (kept on CPU until the next update moves them)."""
        self.reset()
        self.merge(torch.tensor([float(state[k]) for k in SUM_FIELDS], dtype=torch.float64))


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64
