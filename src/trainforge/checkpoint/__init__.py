"""Checkpoint files: atomic IO, naming, rotation and the newest-checkpoint search."""

from trainforge.checkpoint.io import FORMAT_VERSION, atomic_save, canonical_state_dict, load_model_state, safe_load
from trainforge.checkpoint.manager import CheckpointManager, find_latest, list_checkpoints

__all__ = [
    "FORMAT_VERSION",
    "CheckpointManager",
    "atomic_save",
    "canonical_state_dict",
    "find_latest",
    "list_checkpoints",
    "load_model_state",
    "safe_load",
]
