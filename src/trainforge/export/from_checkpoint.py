"""``export_checkpoint``: a bundle from any trainforge checkpoint file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from trainforge.errors import CheckpointError, ModelError
from trainforge.tasks import TaskSpec

from .bundle import export_bundle

__all__ = ["DEFAULT_FORMATS", "export_checkpoint", "model_from_checkpoint"]

DEFAULT_FORMATS = ("onnx", "torchscript")


def _is_gpt_config(data: Any) -> bool:
    from dataclasses import fields

    from trainforge.models.gpt import GPTConfig

    return isinstance(data, dict) and bool(data) and set(data) <= {f.name for f in fields(GPTConfig)}


def model_from_checkpoint(ckpt: dict[str, Any], model: nn.Module | None, source: str) -> nn.Module:
    """``model`` (or a rebuilt trainforge GPT) with the checkpoint's weights loaded."""
    from trainforge.checkpoint.io import load_model_state

    config = ckpt.get("model_config")
    if model is None:
        if not _is_gpt_config(config):
            what = "no model_config" if not config else f"a model_config with keys {sorted(config)}"
            raise ModelError(
                f"{source!r} has {what}, which is not a trainforge GPTConfig, so the model cannot be rebuilt from "
                "the checkpoint alone. Fix: build the model in Python and call "
                "export_checkpoint(path, model=your_model), or train a trainforge GPT."
            )
        from trainforge.models.gpt import GPT, GPTConfig

        assert isinstance(config, dict)
        model = GPT(GPTConfig.from_dict(dict(config)))
    load_model_state(model, ckpt["model"], source)
    return model


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    model: nn.Module | None = None,
    formats: str | Sequence[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    task: TaskSpec | None = None,
    measure_latency: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Export the model saved in ``checkpoint`` into a bundle; returns the manifest.

    Args:
        checkpoint: a checkpoint written by the Trainer (read with ``safe_load``, so no code runs).
        model: the model to load the weights into; ``None`` rebuilds a trainforge ``GPT`` from the
            checkpoint's ``model_config`` (any other architecture needs the model passed in).
        formats: default: the checkpoint's ``training_config.export_formats``, else ``("onnx", "torchscript")``.
        out_dir: the bundle directory; default ``exports/<run_name>`` (run name from the checkpoint, else the
            file's stem).
        task: overrides the checkpoint's ``task_spec`` (needed for checkpoints saved without one).
        kwargs: passed on to :func:`export_bundle` (``tokenizer``, ``sample_batch``, ``tolerance``, ...).

    Raises:
        CheckpointError: unreadable checkpoint, or no TaskSpec in it and none given.
        ModelError: ``model`` is None and the checkpoint is not of a trainforge GPT.
    """
    from trainforge.checkpoint.io import safe_load

    path = Path(checkpoint)
    ckpt = safe_load(path)
    if task is None:
        spec = ckpt.get("task_spec")
        if not spec:
            raise CheckpointError(
                f"{str(path)!r} has no task_spec (an older or bare state-dict checkpoint). "
                "Fix: pass task=TaskSpec.language_modeling(...) (or the task it was trained for)."
            )
        task = TaskSpec.from_dict(spec)
    model = model_from_checkpoint(ckpt, model, str(path))
    training = ckpt.get("training_config") or None
    if formats is None:
        formats = (training or {}).get("export_formats") or DEFAULT_FORMATS
    from trainforge.checkpoint.ownership import stored_run_name
    from trainforge.safe_paths import inside, safe_name

    # A name read from the file is a directory name only when it is a plain one (else: the file's stem, or "model")
    run_name = stored_run_name(ckpt, str(path), safe_name(path.stem, "model"))
    target = Path(out_dir) if out_dir is not None else Path("exports") / run_name
    if out_dir is None:
        inside("exports", target)  # a name read from a file stays below exports/
    return export_bundle(
        model,
        task,
        target,
        formats,
        model_config=ckpt.get("model_config"),
        training_config=training,
        measure_latency=measure_latency,
        run_name=run_name,
        **kwargs,
    )
