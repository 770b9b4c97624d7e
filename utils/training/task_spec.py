"""``from utils.training.task_spec import TaskSpec``."""

from trainforge.tasks import TaskSpec

__all__ = ["TaskSpec"]
