"""Optimizer and learning-rate schedule: pure functions, unit-tested on their own."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

if TYPE_CHECKING:
    from trainforge.config import TrainingConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices, not biases or norm/scale vectors (anything with fewer than 2 dims)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: TrainingConfig, device: torch.device) -> torch.optim.Optimizer:
    # fused AdamW is the fastest kernel on CUDA; on CPU the foreach implementation is.
    fused = device.type == "cuda"
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        fused=fused or None,
        foreach=None if fused else True,
    )


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float = 0.0) -> float:
    """The factor on the base learning rate at optimizer step ``step`` (0-based).

    Linear warmup over ``warmup_steps``, then ``cosine`` or ``linear`` decay to ``min_ratio`` at
    ``total_steps``, or ``constant``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return 1.0
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    if schedule == "linear":
        decay = 1.0 - progress
    else:
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * decay


def warmup_steps_for(cfg: TrainingConfig, total_steps: int) -> int:
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    return int(cfg.warmup_ratio * total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainingConfig, total_steps: int | None,
                    lr_scale: Callable[[], float] | None = None) -> LambdaLR:
    """Steps once per optimizer step. Unknown length (a stream without ``max_steps``) keeps the rate constant.

    ``lr_scale``: a factor the schedule multiplies by, read at every step (the step guard's ``LrScale``, which a
    rollback after a NaN streak lowers; it is saved with the guard's state, not in the scheduler's).
    """
    schedule = cfg.lr_schedule if total_steps else "constant"
    total = total_steps or 0
    warmup = warmup_steps_for(cfg, total) if total else (cfg.warmup_steps or 0)
    min_ratio = cfg.min_lr_ratio

    if lr_scale is None:
        def factor(step: int) -> float:
            return lr_multiplier(step, total, warmup, schedule, min_ratio)
    else:
        def factor(step: int) -> float:
            return lr_multiplier(step, total, warmup, schedule, min_ratio) * lr_scale()

    return LambdaLR(optimizer, factor)
