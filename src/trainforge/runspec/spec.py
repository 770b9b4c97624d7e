"""A run spec: preset → run file → overrides merged into one dict, and the edits made to it.

``load_run_spec`` gives ``{training, model, data, task, preset, source}``; ``deep_update`` and ``apply_params``
change one (overrides, a sweep trial's parameters); ``import_function`` resolves the ``module:function`` a run
file may name for its model or data.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
from pathlib import Path
from typing import Any

from trainforge.errors import ConfigError

# Keys of a run file that are not TrainingConfig fields.
SECTIONS = ("preset", "model", "data", "task")


def load_run_spec(config: str | None, preset: str | None, overrides: list[str]) -> dict[str, Any]:
    """Merge preset → run file → overrides into one dict with ``training``, ``model``, ``data`` keys."""
    from trainforge.config import get_preset, parse_overrides
    from trainforge.config.io import read_mapping

    spec: dict[str, Any] = {}
    if config:
        if not Path(config).is_file():
            raise ConfigError([f"--config: file not found, got {config!r}. Fix: give the path of a YAML or JSON "
                               "run file (e.g. one written by TrainingConfig.save)."], what="command line")
        spec = dict(read_mapping(config))
    deep_update(spec, parse_overrides(overrides))
    name = preset or spec.pop("preset", None) or "tiny"
    spec.pop("preset", None)
    training = dict(get_preset(name))
    training.update({k: v for k, v in spec.items() if k not in SECTIONS})
    return {"training": training, "model": spec.get("model") or {}, "data": spec.get("data") or {},
            "task": spec.get("task") or {}, "preset": name, "source": config or "the command line"}


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    """``base`` updated in place with ``new``; nested mappings are merged key by key."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value


def apply_params(base_run: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the run spec with the parameters set: plain names are TrainingConfig fields, dotted names go
    into ``model`` / ``data`` / ``task`` (a ``module:function`` model cannot take keys)."""
    run = copy.deepcopy(base_run)
    for name, value in params.items():
        section, _, key = name.partition(".")
        if not key:
            run["training"][name] = value
            continue
        target = run.get(section)
        if not isinstance(target, dict):
            target = {} if target is None else target
            if not isinstance(target, dict):
                raise ValueError(f"parameter {name!r}: {section} is {target!r}, which takes no keys")
            run[section] = target
        node = target
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return run


def import_function(target: str, what: str) -> Any:
    """``"pkg.mod:fn"`` or ``"path/file.py:fn"`` → the function (imported only because a file names it)."""
    module_name, _, func = target.partition(":")
    if not func:
        raise ConfigError([f"{what}: expected 'module:function' or 'file.py:function', got {target!r}."], what="run")
    if module_name.endswith(".py"):
        path = Path(module_name)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ConfigError([f"{what}: file {module_name!r} not found. Fix: give a path to a .py file."], what="run")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError([f"{what}: cannot import {module_name!r} ({exc}). Fix: check the module name and that "
                               "it is importable (on PYTHONPATH)."], what="run") from exc
    if not callable(getattr(module, func, None)):
        raise ConfigError([f"{what}: {module_name!r} has no function {func!r}. Fix: name a function defined there."],
                          what="run")
    return getattr(module, func)
