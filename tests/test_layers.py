"""The package's layers import downward only: cli → sweeps → jobs → runspec → trainer → ... (DESIGN.md, "Target
shape of the core").

Every import statement counts, wherever it stands: at the top, inside a function (a lazy import), under
``if TYPE_CHECKING:``, and ``importlib.import_module("...")`` with a literal name. A lazy import hides an upward
arrow from the reader, not from the import graph.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import trainforge

PACKAGE = Path(trainforge.__file__).parent

# layer -> the packages it must never import (neither directly nor through a lazy import)
FORBIDDEN = {
    "trainforge.runspec": ("trainforge.cli", "trainforge.jobs", "trainforge.sweeps"),
    "trainforge.jobs": ("trainforge.cli", "trainforge.sweeps"),
    "trainforge.sweeps": ("trainforge.cli",),
}
# Packages that must stay out of every import circle (circles elsewhere belong to other work).
NO_CIRCLES_IN = ("trainforge.cli", "trainforge.jobs", "trainforge.sweeps", "trainforge.runspec", "trainforge.data")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "templates" not in path.parts}


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _imported_names(module: str, path: Path) -> set[str]:
    """Every ``trainforge`` module ``module`` names in an import, anywhere in its file."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # ``from pkg import submodule`` names the submodule, else the module itself
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in _modules() else base)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return {n for n in names if _in(n, "trainforge")}


@cache
def _graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (a name that is not a module, e.g. a class, is dropped)."""
    modules = _modules()
    return {name: {n for n in _imported_names(name, path) if n in modules and n != name}
            for name, path in modules.items()}


def test_the_import_reader_sees_lazy_and_type_checking_imports():
    # guard the guard: these arrows exist in the code today and must be seen, or the checks below prove nothing
    graph = _graph()
    assert "trainforge.runspec.tokens" in graph["trainforge.runspec.train"]  # lazy, inside train_spec
    assert "trainforge.jobs.worker" in graph["trainforge.jobs.callbacks"]  # under TYPE_CHECKING
    assert "trainforge.data.tokenfile" in graph["trainforge.data.inputs"]  # at the top
    assert len(graph) > 100


def test_lower_layers_never_import_the_layers_above():
    wrong = []
    for module, imported in _graph().items():
        for layer, above in FORBIDDEN.items():
            if _in(module, layer):
                wrong += [f"{module} imports {name}" for name in sorted(imported) if any(_in(name, a) for a in above)]
    assert wrong == []


def test_queue_handlers_name_no_command_line_module():
    # the worker imports its handlers by name on first use: a name is an import too
    from trainforge.jobs.worker import HANDLERS

    targets = {kind: h.partition(":")[0] if isinstance(h, str) else h.__module__ for kind, h in HANDLERS.items()}
    assert {"train", "export", "sweep-trial"} <= set(targets)
    assert not [t for t in targets.values() if _in(t, "trainforge.cli")], targets
    assert _in(targets["train"], "trainforge.jobs") and _in(targets["export"], "trainforge.jobs")


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_runs_through_cli_jobs_sweeps_runspec_or_data():
    touching = [c for c in _circles(_graph()) if any(_in(m, p) for m in c for p in NO_CIRCLES_IN)]
    assert touching == []
