"""A run spec's ``model:``: a trainforge GPT from a preset and keys, or the user's ``module:function``."""

from __future__ import annotations

from typing import Any

from trainforge.runspec.spec import import_function


def build_model_from_spec(model_spec: Any) -> tuple[Any, Any]:
    """``{preset: tiny, n_layer: 4}`` → a trainforge GPT; ``"pkg.mod:fn"`` or ``"file.py:fn"`` → the user's
    factory (imported only because the run file names it), which returns a model or ``(model, config)``."""
    from trainforge.models import build_model

    if isinstance(model_spec, str):
        made = import_function(model_spec, "model")()
        return made if isinstance(made, tuple) else (made, None)
    spec = dict(model_spec)
    return build_model(spec.pop("preset", "tiny"), **spec)
