"""Built-in callbacks (observers that may request a stop)."""

from trainforge.callbacks.early_stopping import EarlyStopping

__all__ = ["EarlyStopping"]
