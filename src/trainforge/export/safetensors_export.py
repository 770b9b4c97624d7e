"""safetensors export of the model's weights (``safetensors`` is imported only inside these functions).

Tied weights (e.g. GPT's ``lm_head.weight`` = ``tok_emb.weight``) are stored once, as ``safetensors.torch``'s
``save_model`` does; ``load_model`` restores them into a model of the same architecture.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["export_safetensors", "reload_into_copy"]


def export_safetensors(model: nn.Module, path: str | Path, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Save ``model``'s parameters and buffers to ``path``; ``metadata`` values are stored as JSON strings."""
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in (metadata or {}).items()}
    save_model(model, str(path), metadata=meta)
    return {"tensors": len(_load_file(path))}


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def reload_into_copy(model: nn.Module, path: str | Path) -> nn.Module:
    """A copy of ``model`` with every parameter/buffer zeroed, then loaded back from ``path`` (strict)."""
    from safetensors.torch import load_model

    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for t in [*fresh.parameters(), *fresh.buffers()]:
            if t.is_floating_point():
                t.zero_()
    missing, unexpected = load_model(fresh, str(path), strict=True)
    if missing or unexpected:
        raise RuntimeError(f"safetensors reload: missing {missing}, unexpected {unexpected}")
    return fresh.eval()


def max_weight_diff(model: nn.Module, path: str | Path) -> float:
    """Largest difference between the saved tensors and ``model``'s state dict (by name)."""
    state = model.state_dict()
    worst = 0.0
    for name, tensor in _load_file(Path(path)).items():
        ref = state[name]
        if ref.is_floating_point():
            worst = max(worst, float((ref.detach().cpu().float() - tensor.float()).abs().max()) if ref.numel() else 0.0)
        elif not torch.equal(ref.cpu(), tensor):
            return float("inf")
    return worst
