"""``from utils.training.training_config import TrainingConfig, TrainingConfigBuilder``."""

from trainforge.config import TrainingConfig, TrainingConfigBuilder

__all__ = ["TrainingConfig", "TrainingConfigBuilder"]
