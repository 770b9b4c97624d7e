"""Precision: which autocast dtype, and whether a GradScaler is needed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch


def resolve_precision(precision: str, use_amp: bool, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA devices that support it, fp16 on older CUDA, fp32 on CPU and elsewhere."""
    if not use_amp:
        return "fp32"
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "fp16-mixed"
    return "fp32"


def autocast_factory(precision: str, device: torch.device) -> Callable[[], Any]:
    """A zero-argument factory of the autocast context for forward passes."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16

    def ctx() -> Any:
        return torch.autocast(device_type=device.type, dtype=dtype)

    return ctx


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling against gradient underflow; bf16 and fp32 do not."""
    if precision == "fp16-mixed":
        return torch.amp.GradScaler(device.type)
    return None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)
