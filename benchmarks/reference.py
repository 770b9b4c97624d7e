"""Pieces of the hand-written reference loop that several benchmarks share."""

from __future__ import annotations

import math


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0 at ``total`` (trainforge's ``lr_schedule="cosine"``, written out)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
