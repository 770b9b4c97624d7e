"""trainforge: a small, exactly resumable training engine for custom PyTorch models.

Public names only; importing this package imports no optional integration (wandb, onnx, optuna, ...).
"""

from trainforge._version import __version__
from trainforge.config import TrainingConfig, TrainingConfigBuilder
from trainforge.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DataTypeError,
    ModelError,
    TrainforgeError,
)
from trainforge.generation import generate
from trainforge.tasks import TaskSpec
from trainforge.trainer import Callback, Event, Trainer, TrainState

__all__ = [
    "Callback",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DataTypeError",
    "Event",
    "ModelError",
    "TaskSpec",
    "TrainState",
    "Trainer",
    "TrainforgeError",
    "TrainingConfig",
    "TrainingConfigBuilder",
    "__version__",
    "generate",
]
