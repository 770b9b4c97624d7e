"""``Monitor``: the metric that ``best.pt``, early stopping and the Lightning path follow, and the one rule that says
whether a value is better.

The name is resolved once (``TrainingConfig.resolved_monitor``: ``monitor``, else ``val/loss`` with validation data,
else ``train/loss``; with named validation sets ``val/<first set>/loss``) and checked against the metrics the run
logs before step 0. Every evaluation is a candidate: the epoch-end rows and, with ``eval_every_n_steps``, the
mid-epoch evaluations (``trainer/loop.py``), compared by this one rule. "Better" means better by more than
``min_delta`` (``early_stopping_min_delta``), and a NaN or infinite value is never better: a diverged epoch can
neither become the best epoch nor reset early stopping's patience.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainforge.config._suggest import closest, quote_list
from trainforge.errors import ConfigError
from trainforge.trainer.val_sets import UNNAMED, metric_key

if TYPE_CHECKING:
    from trainforge.config import TrainingConfig
    from trainforge.tasks import TaskSpec

__all__ = ["EPOCH_KEYS", "Monitor", "logged_metrics"]

#: The numeric columns of every epoch row besides the task's metrics (``trainer/loop.py`` writes them).
EPOCH_KEYS = ("train/loss", "lr", "epoch_time_s", "tokens_per_s")


def logged_metrics(task: TaskSpec, has_validation: bool, user_metrics: Iterable[str] = (),
                   val_sets: Sequence[str] = (UNNAMED,)) -> list[str]:
    """The metric names an epoch row of this run holds: ``train/loss``, ``val/<metric>`` per task metric and per
    user metric (``Trainer(metrics=...)``) when there is validation data (``val/<set>/<metric>`` per named
    validation set), then the rate and timing columns."""
    names = ["train/loss"]
    if has_validation:
        metrics = (*task.metric_names, *user_metrics)
        names += [metric_key(set_name, name) for set_name in val_sets for name in metrics]
    return names + [k for k in EPOCH_KEYS if k not in names]


@dataclass(frozen=True)
class Monitor:
    """The monitored metric: its resolved ``name``, ``mode`` (``"min"``/``"max"``) and ``min_delta``.

    Build it with :meth:`for_run` (checked against what the run logs) or directly for a known name.
    """

    name: str
    mode: str = "min"
    min_delta: float = 0.0

    @classmethod
    def for_run(cls, cfg: TrainingConfig, task: TaskSpec, has_validation: bool, *, what: str = "Trainer.train",
                user_metrics: Iterable[str] = (), val_sets: Sequence[str] = (UNNAMED,)) -> Monitor:
        """The run's monitor; a name the run does not log is refused (with the closest logged name).

        ``val_sets``: the validation sets' names (``[""]`` for one unnamed set); with named sets the default is
        the first set's loss, ``val/<first>/loss``."""
        name = cfg.resolved_monitor(has_validation)
        if cfg.monitor is None and has_validation and val_sets and val_sets[0] != UNNAMED:
            name = metric_key(val_sets[0], "loss")
        monitor = cls(name, cfg.monitor_mode, float(cfg.early_stopping_min_delta))
        monitor.check(logged_metrics(task, has_validation, user_metrics, val_sets), has_validation, what=what)
        return monitor

    def check(self, logged: list[str], has_validation: bool, *, what: str = "Trainer.train") -> None:
        """Raise a ConfigError when ``name`` is not one of ``logged`` (the epoch row's metrics)."""
        if self.name in logged:
            return
        if self.name.startswith("val/") and not has_validation:
            fix = ("pass val_data (or set validation_split) so validation runs, or monitor a training metric "
                   "such as 'train/loss'.")
        else:
            guess = closest(self.name, logged)
            fix = (f"did you mean {guess!r}? " if guess else "") + f"Use one of: {quote_list(logged)}."
        raise ConfigError([f"monitor: {self.name!r} is not a metric this run logs, so best.pt and early stopping "
                           f"would never see it. Fix: {fix}"], what=what)

    def value(self, row: dict[str, Any]) -> float | None:
        """The monitored value in an epoch row or a mid-epoch evaluation row (None when the row lacks it)."""
        value = row.get(self.name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def non_finite(self, row: dict[str, Any]) -> str | None:
        """Which of the row's losses and the monitored metric are NaN or infinite (``"train/loss, val/loss"``), or
        None. (Other metrics may be NaN by nature, e.g. accuracy of a model that returns only a loss.)"""
        keys = dict.fromkeys(("train/loss", "val/loss", self.name))
        bad = [k for k in keys if isinstance(row.get(k), float) and not math.isfinite(row[k])]
        return ", ".join(bad) if bad else None

    def improved(self, best: float | None, value: float | None) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``. A missing or non-finite value never does;
        any finite value beats no best (None) or a non-finite best (from a checkpoint of an older version)."""
        if value is None or not math.isfinite(value):
            return False
        if best is None or not math.isfinite(best):
            return True
        if self.mode == "max":
            return value > best + self.min_delta
        return value < best - self.min_delta
