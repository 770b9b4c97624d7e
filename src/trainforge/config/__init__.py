"""Training configuration: the validated ``TrainingConfig``, its builder, presets and CLI overrides.

Nothing here imports torch or yaml at import time; YAML is imported only when a file is read or written.
"""

from trainforge.config.builder import TrainingConfigBuilder
from trainforge.config.overrides import parse_overrides
from trainforge.config.presets import PRESETS, get_preset, list_presets
from trainforge.config.schema import TrainingConfig
from trainforge.errors import ConfigError

__all__ = [
    "PRESETS",
    "ConfigError",
    "TrainingConfig",
    "TrainingConfigBuilder",
    "get_preset",
    "list_presets",
    "parse_overrides",
]
