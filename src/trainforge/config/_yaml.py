"""YAML reading and writing, imported lazily because ``import trainforge`` must stay fast.

Loading uses a ``SafeLoader`` subclass (so it is exactly as safe as ``yaml.safe_load``) that also reads
``1e-3`` as a float. YAML 1.1, which PyYAML implements, requires a dot in a float (``1.0e-3``), so without
this fix the most common way to write a learning rate would arrive as the *string* ``'1e-3'``.

The loader is also bounded: an alias (``*a``) is a reference to a node written once, so 443 bytes of nested
aliases ("billion laughs") stand for 10^9 values. PyYAML builds them as shared references quickly, but
anything that walks the result (validation, ``json.dumps``, a deep copy, an error message) then hangs while
memory grows. Before anything is built, the loader counts the nodes the document holds *with every alias
expanded* (memoised per node, so counting takes time linear in the text) and refuses a document over
:data:`MAX_NODES`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# Floats written without a dot: 1e-3, -2E5, +3e+2, 5.e-1 (the dotted forms are already handled by PyYAML).
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")

# Nodes (scalars, lists, mappings) a document may hold once its aliases are expanded. A large hand-written
# config has a few thousand; a list of a hundred thousand values is still accepted.
MAX_NODES = 250_000


class TooManyNodes(ValueError):
    """The document expands to more than ``MAX_NODES`` nodes (raised by :func:`yaml_loads`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"expands to more than {limit:,} values once its aliases (*name) are expanded")


def expanded_size(root: Any, limit: int = MAX_NODES) -> int:
    """The number of nodes under ``root`` with every alias expanded; raises
    :class:`TooManyNodes` as soon as the count passes ``limit``. Each node is sized once (memoised by
    identity), so this is linear in the document's text even for exponential expansions."""
    import yaml

    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:  # iterative post-order: a deeply nested document must not hit Python's recursion limit
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes and not children_done:
            continue  # reached again through an alias: sized once, counted by every parent
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        if not children_done:
            sizes[key] = 0  # in progress (a recursive alias counts its own node once)
            stack.append((node, True))
            stack.extend((child, False) for child in children)
            continue
        total = 1 + sum(sizes[id(child)] for child in children)
        sizes[key] = total
        if total > limit:
            raise TooManyNodes(limit)
    return sizes.get(id(root), 0)


@lru_cache(maxsize=1)
def _loader() -> type:
    import yaml

    class BoundedSafeLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that resolves ``1e-3`` to a float and refuses alias bombs before building."""

        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                expanded_size(node)
            return node

    BoundedSafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))
    return BoundedSafeLoader


def yaml_loads(text: str) -> Any:
    """Parse YAML text with safe-load semantics (plus ``1e-3`` floats). Raises ``yaml.YAMLError``, and
    :class:`TooManyNodes` for a document that expands past :data:`MAX_NODES` values."""
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 - the loader is a SafeLoader subclass


def yaml_dumps(data: Any) -> str:
    """Serialise plain data (dicts, lists, str, numbers, bools, None) with ``yaml.safe_dump``."""
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
