"""Task semantics: what a batch holds, how the loss is computed, which metrics are reported."""

from trainforge.tasks.metrics import MetricAccumulator, metrics_from_sums
from trainforge.tasks.spec import TASK_TYPES, TaskSpec

__all__ = ["TASK_TYPES", "MetricAccumulator", "TaskSpec", "metrics_from_sums"]
