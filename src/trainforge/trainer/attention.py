"""Attention: turn on the fastest SDPA kernels the device has, and say which attention the model uses."""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import torch
from torch import nn


def enable_fast_sdpa(device: torch.device) -> list[str]:
    """Allow flash and memory-efficient SDPA kernels on CUDA; returns the kernels enabled."""
    if device.type != "cuda":
        return ["math"]
    enabled = []
    for name in ("flash", "mem_efficient", "cudnn"):
        setter = getattr(torch.backends.cuda, f"enable_{name}_sdp", None)
        if setter is not None:
            setter(True)
            enabled.append(name)
    # TF32 matmuls: a large speed-up on Ampere+ for fp32 parts, at precision that training tolerates.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return enabled


@lru_cache(maxsize=256)
def _forward_source(cls: Any) -> str:
    try:
        return inspect.getsource(cls.forward)  # type: ignore[attr-defined]
    except (OSError, TypeError, AttributeError):
        return ""


def describe_attention(model: nn.Module) -> str:
    """``sdpa``, ``nn.MultiheadAttention``, ``manual softmax(QK^T)``, a Hugging Face implementation, or ``none``.

    Read from the model's modules and their forward sources; a mix is reported joined by ``+``.
    """
    hf_config = getattr(model, "config", None)
    hf_impl = getattr(hf_config, "_attn_implementation", None)
    if isinstance(hf_impl, str):
        return f"hf:{hf_impl}"
    found: list[str] = []
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            kind = "nn.MultiheadAttention"
        else:
            src = _forward_source(type(module))  # type: ignore[arg-type]
            if "scaled_dot_product_attention" in src:
                kind = "sdpa"
            elif "softmax" in src and ("@" in src or "matmul" in src or "bmm" in src or "einsum" in src):
                kind = "manual softmax(QK^T)"
            else:
                continue
        if kind not in found:
            found.append(kind)
    return "+".join(found) if found else "none"
