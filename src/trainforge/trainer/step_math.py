"""The step math both training paths share (``trainer/loop.py`` and the Lightning module): what one optimizer
step's loss sum is divided by.

An optimizer step's loss is sum(per-target losses over every micro-batch of the accumulation window and every rank)
/ count(valid targets in the window), so ``batch_size=b`` with ``k`` accumulation steps gives the gradients of
``batch_size=k*b`` however the micro-batches are padded (a mean per micro-batch would weight the targets of a short
micro-batch more).
"""

from __future__ import annotations

from typing import overload

from torch import Tensor

__all__ = ["window_divisor"]


@overload
def window_divisor(count: Tensor, world_size: int = 1) -> Tensor: ...
@overload
def window_divisor(count: int, world_size: int = 1) -> int | float: ...
def window_divisor(count: Tensor | int, world_size: int = 1) -> Tensor | int | float:
    """What each rank divides its loss sum of the window by: ``count`` (the window's valid targets over all ranks)
    over ``world_size``, because DDP averages the ranks' gradients, which supplies the rest of the division.

    ``count`` is taken as at least 1: a window whose targets are all ignored contributes zero loss instead of 0/0.
    A Python int stays a Python number (no kernel), a tensor stays a tensor (no sync).
    """
    if isinstance(count, int):
        return max(count, 1) if world_size == 1 else max(count, 1) / world_size
    divisor = count.clamp(min=1)
    return divisor if world_size == 1 else divisor / world_size
