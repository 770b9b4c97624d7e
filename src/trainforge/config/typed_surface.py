"""Writes ``_kwargs.py``: the ``TypedDict``s that give ``TrainingConfig(...)`` and ``TrainingConfigBuilder.with_*(...)``
typed keywords in mypy and IDEs, generated from the field declarations in :mod:`trainforge.config.fields`.

Why generated: a type checker reads source, so the keyword lists must exist as source; written by hand they would
repeat every field's name and type twice more. Run ``python -m trainforge.config.typed_surface`` after changing a
declaration; ``tests/config/test_fields.py`` fails while ``_kwargs.py`` is out of date.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from trainforge.config.fields import ALIASES, BUILDER_KEYWORDS, SETTINGS, TrainingFields

TARGET = Path(__file__).with_name("_kwargs.py")

# with_<section> -> the name of its TypedDict (with_export spells out its few keywords in its signature).
BUILDER_TYPEDDICTS = {
    "with_training": "TrainingKwargs",
    "with_logging": "LoggingKwargs",
    "with_checkpointing": "CheckpointingKwargs",
    "with_optimization": "OptimizationKwargs",
}

_HEADER = '''"""Typed keywords of ``TrainingConfig(...)`` and ``TrainingConfigBuilder.with_*(...)``, for mypy and IDEs.

GENERATED from the declarations in ``trainforge/config/fields.py`` by ``python -m trainforge.config.typed_surface``.
Do not edit; a test fails when this file is out of date.
"""

from __future__ import annotations

from typing import Any, TypedDict

from trainforge.config.setting import PathLike

__all__ = ["TrainingConfigKwargs", {names}]
'''


def _annotation(name: str) -> str:
    """The keyword's type as source: the field's annotation, with ``PathLike`` for paths (stored as str)."""
    text = str({f.name: f.type for f in dataclasses.fields(TrainingFields)}[name])
    if SETTINGS[name].path:
        text = " | ".join("PathLike" if part == "str" else part for part in text.split(" | "))
    return text


def _typeddict(class_name: str, doc: str, keys: dict[str, str]) -> str:
    lines = [f"class {class_name}(TypedDict, total=False):", f'    """{doc}"""', ""]
    lines += [f"    {key}: {_annotation(name)}" for key, name in keys.items()]
    return "\n".join(lines)


def source() -> str:
    """The text ``_kwargs.py`` must hold."""
    names = ", ".join(f'"{n}"' for n in sorted(BUILDER_TYPEDDICTS.values()))
    blocks = [_HEADER.replace("{names}", names)]
    every = {**{name: name for name in SETTINGS}, **ALIASES}
    blocks.append(_typeddict("TrainingConfigKwargs", "The keywords ``TrainingConfig(...)`` accepts: every field, "
                             "then every alias.", every))
    for method, class_name in BUILDER_TYPEDDICTS.items():
        blocks.append(_typeddict(class_name, f"Keywords of :meth:`TrainingConfigBuilder.{method}`.",
                                 BUILDER_KEYWORDS[method]))
    return "\n\n".join(blocks) + "\n"


def main() -> None:
    TARGET.write_text(source(), encoding="utf-8")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
