"""Early stopping's public home. The rule lives in the trainer (:mod:`trainforge.trainer.early_stopping`): the
trainer builds it from the config and it uses the trainer's one "better" rule (``Monitor``), so keeping it there
lets ``trainer/`` import nothing above it."""

from trainforge.trainer.early_stopping import EarlyStopping

__all__ = ["EarlyStopping"]
