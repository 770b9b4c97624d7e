"""``key=value`` overrides from a command line, e.g. ``trainforge train lr=1e-3 model.n_layer=4``.

Accepted forms: ``key=value``, ``--key=value`` (what W&B sweep agents pass) and ``--key value``.
Values are read as YAML (``true``, ``null``, ``[onnx, torchscript]``), with ``1e-3`` read as a float; a
TrainingConfig field whose type is text (``run_name``, ``notes``, ``precision``, ...: ``fields.text_fields``) keeps
what was typed, so ``run_name=2024`` is ``"2024"`` and ``notes=yes`` is ``"yes"`` (``null`` is still None).
Dotted keys nest; dashes in keys become underscores (``--learning-rate`` is ``learning_rate``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from trainforge.config._yaml import TooManyNodes, yaml_loads
from trainforge.config.fields import text_fields
from trainforge.errors import ConfigError, bounded_repr

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_FORMS = "expected key=value, --key=value or --key value"


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse override items into a (nested) dict. Every malformed item is reported in one ``ConfigError``.

    >>> parse_overrides(["lr=1e-3", "--model.n_layer=4", "--tags", "[a, b]"])
    {'lr': 0.001, 'model': {'n_layer': 4}, 'tags': ['a', 'b']}
    """
    pairs, problems = _split(items)
    out: dict[str, Any] = {}
    for item, key, text in pairs:
        value, error = _parse_value(text)
        if key in text_fields() and isinstance(value, (bool, int, float)):
            value = text.strip()  # YAML would read 2024 as a number and yes as True; the field wants the text
        if error:
            problems.append(f"{bounded_repr(item)}: the value is not valid YAML ({error}). Fix: quote it, e.g. key='...'.")
            continue
        problem = _set_nested(out, key, value, item)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError(problems, what="overrides")
    return out


def _split(items: Sequence[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(item as written, key, value text) for each override, and a problem for each malformed one."""
    pairs: list[tuple[str, str, str]] = []
    problems: list[str] = []
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if not isinstance(item, str):
            problems.append(f"{bounded_repr(item)}: not a string. Fix: pass each override as a string, {_FORMS}.")
            continue
        body = item[2:] if item.startswith("--") else item
        if "=" in body:
            key, text = body.split("=", 1)
        elif item.startswith("--") and i < len(items) and not str(items[i]).startswith("--"):
            key, text = body, items[i]  # "--key value": the value is the next item
            item = f"{item} {text}"
            i += 1
        else:
            problems.append(f"{bounded_repr(item)}: has no value. Fix: {_FORMS}.")
            continue
        key = key.strip()
        if not _KEY.match(key):
            problems.append(
                f"{bounded_repr(item)}: {bounded_repr(key)} is not a valid key. Fix: {_FORMS}, with a key such as learning_rate or model.n_layer."
            )
            continue
        pairs.append((item, key.replace("-", "_"), text))
    return pairs, problems


def _parse_value(text: str) -> tuple[Any, str | None]:
    import yaml  # lazily: importing trainforge must not import yaml

    try:
        return yaml_loads(text), None
    except (yaml.YAMLError, TooManyNodes) as exc:
        return None, " ".join(str(exc).split())[:400]
    except RecursionError:
        return None, "nested too deeply"


def _set_nested(out: dict[str, Any], key: str, value: Any, item: str) -> str | None:
    """Set ``out[a][b][c] = value`` for key ``a.b.c``; a problem when a level is already a plain value."""
    *parents, leaf = key.split(".")
    node = out
    for depth, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(parents[: depth + 1])
            return f"{bounded_repr(item)}: {bounded_repr(prefix)} was already set to {bounded_repr(child)}, so it cannot have sub-keys. Fix: give {prefix} either a value or sub-keys."
        node = child
    if isinstance(node.get(leaf), dict) and not isinstance(value, dict):
        return f"{bounded_repr(item)}: {bounded_repr(key)} already has sub-keys {bounded_repr(node[leaf])}. Fix: give {key} either a value or sub-keys."
    node[leaf] = value  # a repeated key: the last one wins, as on any command line
    return None
