"""trainforge: a small, exactly resumable training engine for custom PyTorch models.

Public names only; importing this package imports no optional integration (wandb, onnx, optuna, ...).
"""

__version__ = "0.1.0"

from trainforge.config import TrainingConfig, TrainingConfigBuilder  # noqa: E402
from trainforge.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    DataTypeError,
    ModelError,
    TrainforgeError,
)
from trainforge.generation import generate  # noqa: E402
from trainforge.tasks import TaskSpec  # noqa: E402
from trainforge.trainer import Callback, Event, Trainer, TrainState  # noqa: E402

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
