"""Re-exports for ``utils.training.engine.*`` (see trainforge)."""
