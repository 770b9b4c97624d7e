"""Reading and writing config files: YAML (``.yaml``/``.yml``) or JSON (``.json``), chosen by suffix."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainforge.config._yaml import yaml_dumps, yaml_loads
from trainforge.errors import ConfigError

SUFFIXES = (".yaml", ".yml", ".json")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(
            [
                f"path: unknown config file type {suffix or '(no suffix)'!r}, got {str(path)!r}. "
                "Fix: use a name ending in .yaml, .yml or .json."
            ],
            what=f"config file {path}",
        )
    return "json" if suffix == ".json" else "yaml"


def write_mapping(data: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``data`` to ``path`` (parent folders are created); the format follows the suffix."""
    path = Path(path)
    fmt = _format(path)
    text = json.dumps(data, indent=2) + "\n" if fmt == "json" else yaml_dumps(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config file that must hold a mapping. A missing file raises ``FileNotFoundError``."""
    path = Path(path)
    fmt = _format(path)
    text = path.read_text(encoding="utf-8")
    what = f"config file {path}"
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                [f"file: is not valid JSON ({exc}), got {str(path)!r}. Fix: correct the file."], what
            ) from exc
    else:
        import yaml  # lazily: importing trainforge must not import yaml

        try:
            data = yaml_loads(text)
        except yaml.YAMLError as exc:
            problem = (
                f"file: is not valid YAML ({' '.join(str(exc).split())}), got {str(path)!r}. Fix: correct the file."
            )
            raise ConfigError([problem], what) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            [
                f"file: must hold a mapping of option names to values, got {data!r}. "
                f"Fix: write one 'name: value' per line in {path}."
            ],
            what,
        )
    return data
