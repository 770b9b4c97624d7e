"""Re-exports for ``utils.training.*`` (see trainforge)."""
