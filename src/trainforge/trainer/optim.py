"""Optimizer and learning-rate schedule: pure functions, unit-tested on their own."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from trainforge.errors import ConfigError

if TYPE_CHECKING:
    from trainforge.config import TrainingConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups: decay matrices, not biases or norm/scale vectors (anything with fewer than 2 dims)."""
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


# The Adam family: the config's adam_beta1/adam_beta2/adam_epsilon are their betas and eps.
_ADAM_FAMILY = ("adamw", "adam", "adamax", "nadam", "radam")
# torch's fused kernels (CUDA): the fastest there, and they take GradScaler's found_inf (the NaN guard's device path).
_FUSED = ("adamw", "adam")

OptimizerArg: TypeAlias = "torch.optim.Optimizer | Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None"
SchedulerFactory: TypeAlias = "Callable[[torch.optim.Optimizer], Any] | None"


def build_optimizer(model: nn.Module, cfg: TrainingConfig, device: torch.device) -> torch.optim.Optimizer:
    """``cfg.optimizer`` by name, with decay/no-decay groups, ``learning_rate`` and ``optimizer_kwargs`` (the user's
    own optimizer goes through :func:`custom_optimizer` instead)."""
    from trainforge.config.optimizers import keywords, optimizer_class

    name = cfg.optimizer
    accepted = set(keywords(name))
    kwargs: dict[str, Any] = {"lr": cfg.learning_rate}
    if name in _ADAM_FAMILY:
        kwargs.update(betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
    # fused on CUDA where torch has it; on CPU the foreach implementation is the fastest.
    fused = device.type == "cuda" and name in _FUSED
    if fused:
        kwargs["fused"] = True
    elif "foreach" in accepted:
        kwargs["foreach"] = True
    kwargs.update(cfg.optimizer_kwargs)  # the user's keywords win (checked against the signature by the config)
    if "weight_decay" in accepted:
        groups: Any = param_groups(model, cfg.weight_decay)
    else:  # e.g. Rprop: it has no weight decay; a group key it does not know would be silently ignored
        if cfg.weight_decay:
            warnings.warn(f"optimizer {name!r} has no weight decay, so weight_decay={cfg.weight_decay} is not "
                          "applied. Fix: set weight_decay=0.0 to silence this.", stacklevel=3)
        groups = [p for p in model.parameters() if p.requires_grad]
    optimizer: torch.optim.Optimizer = optimizer_class(name)(groups, **kwargs)
    return optimizer


def custom_optimizer(model: nn.Module, custom: Any) -> torch.optim.Optimizer:
    """The user's optimizer: ``custom`` itself (an instance) or ``custom(trainable parameters)`` (a factory), checked
    to hold the model's parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if isinstance(custom, torch.optim.Optimizer):
        optimizer = custom
    else:
        optimizer = custom(params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError([f"optimizer: the factory returned {type(optimizer).__qualname__}, expected a "
                               "torch.optim.Optimizer. Fix: return the optimizer, e.g. "
                               "lambda params: torch.optim.SGD(params, lr=0.1)."], what="Trainer")
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    if not held & {id(p) for p in params}:
        raise ConfigError(["optimizer: the optimizer holds none of this model's parameters (built for another "
                           "model, or before the model was replaced). Fix: build it on model.parameters(), or pass "
                           "a factory params -> Optimizer."], what="Trainer")
    if missing:
        warnings.warn(f"The optimizer does not hold {len(missing)} trainable parameter(s) of the model (e.g. "
                      f"{missing[0]!r}); they will not be trained.", stacklevel=3)
    return optimizer


def build_custom_scheduler(optimizer: torch.optim.Optimizer, factory: Callable[[torch.optim.Optimizer], Any]) -> Any:
    """The user's scheduler, ``factory(optimizer)``, checked: stepped once per optimizer step without arguments."""
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    scheduler = factory(optimizer)
    problem = None
    if isinstance(scheduler, ReduceLROnPlateau):
        problem = ("ReduceLROnPlateau steps on a metric, but the scheduler is stepped once per optimizer step "
                   "without one. Fix: use a step-based scheduler (e.g. LambdaLR, OneCycleLR, CosineAnnealingLR)")
    elif not all(callable(getattr(scheduler, m, None)) for m in ("step", "state_dict", "load_state_dict",
                                                                 "get_last_lr")):
        problem = (f"the factory returned {type(scheduler).__qualname__}, which is not an LRScheduler (needs step, "
                   "state_dict, load_state_dict, get_last_lr). Fix: return e.g. "
                   "torch.optim.lr_scheduler.LambdaLR(optimizer, fn)")
    elif getattr(scheduler, "optimizer", optimizer) is not optimizer:
        problem = ("the factory's scheduler drives another optimizer. Fix: build it on the optimizer it is given: "
                   "scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 100)")
    if problem:
        raise ConfigError([f"scheduler: {problem}."], what="Trainer")
    return scheduler


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
                    custom: SchedulerFactory = None, lr_scale: Callable[[], float] | None = None) -> Any:
    """Steps once per optimizer step. ``custom``: the user's factory ``optimizer -> LRScheduler`` (then the config's
    schedule settings are not used). Unknown length (a stream without ``max_steps``) keeps the rate constant.

    ``lr_scale``: a factor the schedule multiplies by, read at every step (the step guard's ``LrScale``, which a
    rollback after a NaN streak lowers; it is saved with the guard's state, not in the scheduler's). A custom
    scheduler does not read it: a rollback then lowers the optimizer's rates once.
    """
    if custom is not None:
        return build_custom_scheduler(optimizer, custom)
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
