"""YAML reading and writing, imported lazily because ``import trainforge`` must stay fast.

Loading uses a ``SafeLoader`` subclass (so it is exactly as safe as ``yaml.safe_load``) that also reads
``1e-3`` as a float. YAML 1.1, which PyYAML implements, requires a dot in a float (``1.0e-3``), so without
this fix the most common way to write a learning rate would arrive as the *string* ``'1e-3'``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# Floats written without a dot: 1e-3, -2E5, +3e+2, 5.e-1 (the dotted forms are already handled by PyYAML).
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@lru_cache(maxsize=1)
def _loader() -> type:
    import yaml

    class SafeLoaderWithExpFloats(yaml.SafeLoader):
        """``yaml.SafeLoader`` that resolves ``1e-3`` to a float."""

    SafeLoaderWithExpFloats.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))
    return SafeLoaderWithExpFloats


def yaml_loads(text: str) -> Any:
    """Parse YAML text with safe-load semantics (plus ``1e-3`` floats). Raises ``yaml.YAMLError``."""
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 - the loader is a SafeLoader subclass


def yaml_dumps(data: Any) -> str:
    """Serialise plain data (dicts, lists, str, numbers, bools, None) with ``yaml.safe_dump``."""
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
