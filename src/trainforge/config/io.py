"""Reading and writing config files: YAML (``.yaml``/``.yml``) or JSON (``.json``), chosen by suffix.

Every file trainforge reads as a mapping (configs, run files, sweep files) comes through :func:`read_mapping`,
and every job payload through :func:`loads_json`: both are bounded. A file over :data:`MAX_FILE_BYTES`, a
document whose aliases expand past :data:`~trainforge.config._yaml.MAX_NODES` values ("billion laughs"), and
nesting deeper than Python can walk are refused with an :class:`~trainforge.errors.InputTooLarge` at once,
before anything is built from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainforge.config._yaml import TooManyNodes, yaml_dumps, yaml_loads
from trainforge.errors import ConfigError, InputTooLarge, bounded_repr

SUFFIXES = (".yaml", ".yml", ".json")
# A hand-written config, run or sweep file is a few kB; 2 MB leaves room for long value lists.
MAX_FILE_BYTES = 2_000_000


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


def _too_large(size: int, what: str, name: str) -> InputTooLarge:
    return InputTooLarge([f"{name}: is {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} bytes. Fix: a config, "
                          "run or sweep file holds settings, not data; put data in files that data: names."], what)


def loads_text(text: str, fmt: str, what: str, name: str = "file", source: str | None = None) -> Any:
    """Parse YAML or JSON ``text`` within the limits; any problem is a ``ConfigError`` naming ``what`` (and
    ``source``, where the text came from)."""
    got = f", got {source!r}" if source else ""
    if len(text) > MAX_FILE_BYTES:
        raise _too_large(len(text.encode("utf-8", errors="replace")), what, name)
    try:
        if fmt == "json":
            return json.loads(text)
        return yaml_loads(text)
    except TooManyNodes as exc:
        raise InputTooLarge([f"{name}: {exc} (an alias bomb?). Fix: write the values out, without nested aliases."],
                            what) from None
    except RecursionError:
        raise InputTooLarge([f"{name}: is nested too deeply to read. Fix: flatten the nested lists/mappings."],
                            what) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{name}: is not valid JSON ({exc}){got}. Fix: correct the {name}."], what) from exc
    except Exception as exc:  # yaml.YAMLError: yaml is imported lazily, so it is not named here
        import yaml

        if not isinstance(exc, yaml.YAMLError):
            raise
        detail = " ".join(str(exc).split())[:400]
        problem = f"{name}: is not valid YAML ({detail}){got}. Fix: correct the {name}."
        raise ConfigError([problem], what) from exc


def loads_json(text: str, what: str) -> Any:
    """``json.loads`` within the limits (job payloads and other JSON columns); raises ``ConfigError``."""
    return loads_text(text, "json", what, name="payload")


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config file that must hold a mapping. A missing file raises ``FileNotFoundError``; a file over the
    limits raises :class:`~trainforge.errors.InputTooLarge` before it is parsed."""
    path = Path(path)
    fmt = _format(path)
    what = f"config file {path}"
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _too_large(size, what, "file")
    data = loads_text(path.read_text(encoding="utf-8"), fmt, what, source=str(path))
    if not isinstance(data, dict):
        raise ConfigError(
            [
                f"file: must hold a mapping of option names to values, got {bounded_repr(data)}. "
                f"Fix: write one 'name: value' per line in {path}."
            ],
            what,
        )
    return data
