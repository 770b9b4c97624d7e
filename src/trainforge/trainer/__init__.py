"""The Trainer, its loop, state and events."""

from trainforge.trainer.events import Callback, Event
from trainforge.trainer.state import TrainState
from trainforge.trainer.trainer import Trainer

__all__ = ["Callback", "Event", "TrainState", "Trainer"]
