"""Checkpoint files: atomic writes, safe reads, canonical keys, and the older formats.

Loading always uses ``torch.load(weights_only=True)``: a checkpoint can hold tensors and plain containers but
never objects whose unpickling runs code.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainforge.atomic import atomic_write_text, commit_temporary, write_temporary_by_name
from trainforge.errors import CheckpointError

__all__ = ["FORMAT_VERSION", "atomic_save", "atomic_write_text", "canonical_key", "canonical_state_dict",
           "commit_temporary", "load_model_state", "safe_load", "save_temporary", "upgrade"]

FORMAT_VERSION = 1
# Prefixes added by wrappers: torch.compile (`_orig_mod.`) and DDP / DataParallel (`module.`).
_COMPILE_PREFIX = "_orig_mod."
_DDP_PREFIX = "module."


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` with ``torch.save`` so that ``path`` is either the old file or the complete new one.

    The bytes go to a temporary file in the same directory, are fsynced, and are renamed over ``path``; a crash
    at any point leaves no half-written file under the final name.
    """
    return commit_temporary(save_temporary(obj, path), path)


def save_temporary(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Step 1 of ``atomic_save``: ``torch.save`` into a temporary file next to ``path``; returns its path.

    Once it returns, the file holds every byte and ``obj`` may change. ``commit_temporary(tmp, path)`` is step 2
    (fsync, rename, fsync of the directory); until then a crash leaves only a temporary, which
    ``CheckpointManager`` removes when it is next created.
    """
    return write_temporary_by_name(path, lambda tmp: torch.save(obj, tmp))


def safe_load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and return it in the current format.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, or holds objects that could run code.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(
            f"Checkpoint not found: {str(p)!r}. Fix: pass the path of an existing .pt file, or "
            "resume_from='auto' to pick the newest checkpoint in checkpoint_dir."
        )
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(exc)
        if not any(marker in detail for marker in _UNSAFE_MARKERS):  # e.g. random bytes: "Unsupported operand"
            raise CheckpointError(
                f"Checkpoint {str(p)!r} is corrupt or not a torch.save file and cannot be read ({detail}). "
                "Fix: resume from an earlier checkpoint (resume_from='auto' skips unreadable ones)."
            ) from exc
        raise CheckpointError(
            f"Refused to load {str(p)!r}: it contains Python objects that are not plain data, and unpickling "
            f"them could run code ({detail}). Fix: load only checkpoints you trust with plain torch, "
            "then re-save the state dict with torch.save(model.state_dict(), path)."
        ) from exc
    except Exception as exc:  # RuntimeError, EOFError, BadZipFile, OSError; garbage bytes even IndexError, KeyError
        raise CheckpointError(
            f"Checkpoint {str(p)!r} is corrupt or truncated and cannot be read ({_first_line(exc)}). "
            "Fix: resume from an earlier checkpoint (resume_from='auto' skips unreadable ones)."
        ) from exc
    return upgrade(raw, p)


# What torch's weights-only unpickler says when a file asks for a non-allowlisted callable or class.
_UNSAFE_MARKERS = ("GLOBAL", "add_safe_globals", "unrecognized function")


def _unpickler_detail(exc: BaseException) -> str:
    """The weights-only unpickler's own reason (torch puts it after a long generic preamble)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()
        if reason:
            return reason[0][:300]
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def upgrade(raw: Any, path: Path) -> dict[str, Any]:
    """Bring older layouts to the current one: a bare state dict, or a dict with ``model_state_dict``."""
    if isinstance(raw, Mapping) and "format_version" in raw and "model" in raw:
        return dict(raw)
    if isinstance(raw, Mapping) and "model_state_dict" in raw:
        legacy = dict(raw)
        return {
            "format_version": 0,
            "model": legacy["model_state_dict"],
            "optimizer": legacy.get("optimizer_state_dict"),
            "scheduler": legacy.get("scheduler_state_dict"),
            "legacy_epoch": legacy.get("epoch"),
        }
    if isinstance(raw, Mapping) and raw and all(isinstance(v, Tensor) for v in raw.values()):
        return {"format_version": 0, "model": dict(raw)}
    raise CheckpointError(
        f"{str(path)!r} is not a checkpoint trainforge understands: expected a dict with 'model' (trainforge), "
        "'model_state_dict' (older notebooks) or a bare state dict of tensors. "
        "Fix: pass a file written by trainforge or by torch.save(model.state_dict(), path)."
    )


def canonical_key(key: str) -> str:
    """Strip ``_orig_mod.`` anywhere in a key (a compiled submodule puts it mid-key)."""
    if key.startswith(_COMPILE_PREFIX):
        key = key[len(_COMPILE_PREFIX) :]
    return key.replace("." + _COMPILE_PREFIX, ".")


def canonical_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys without wrapper prefixes: ``_orig_mod.`` (torch.compile) anywhere, and ``module.`` (DDP) when it
    leads *every* key. A model's own child named ``module`` keeps its name: stripping it key by key would rename
    (or silently overwrite, e.g. ``module.weight`` over ``weight``) the model's own parameters."""
    keys = [canonical_key(k) for k in state]
    while keys and all(k.startswith(_DDP_PREFIX) for k in keys):
        keys = [k[len(_DDP_PREFIX) :] for k in keys]
    return dict(zip(keys, state.values()))


def load_model_state(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load weights, or explain precisely why the checkpoint belongs to another model."""
    state = canonical_state_dict(state)
    own = canonical_state_dict(model.state_dict())
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and isinstance(state[k], Tensor) and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:3]})")
        raise CheckpointError(
            f"Checkpoint {source!r} was saved from a different model: " + "; ".join(parts) + ". "
            "Fix: build the model with the same architecture config as the run that wrote the checkpoint "
            "(its config is stored in the checkpoint under 'model_config')."
        )
    model.load_state_dict(state, strict=True)
