"""``from utils.training.engine.trainer import Trainer``."""

from trainforge.trainer import Callback, Event, Trainer, TrainState

__all__ = ["Callback", "Event", "TrainState", "Trainer"]
