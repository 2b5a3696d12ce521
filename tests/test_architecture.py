"""The package's import structure: no cycle among jstyleid's modules, and no stage module imports another.

Reads every module with `ast` (imports at the top and inside functions alike), so it sees what runs,
not only what the module header says.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jstyleid"
STAGES = "jstyleid.stages"
SHARED_STAGE_HELPERS = {"jstyleid.stages.options"}  # argument groups several stages add


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The jstyleid modules `path` imports anywhere in its body (`from . import x` names module x)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    # an import of a module inside a package means that module (its package's __init__ runs too, but
    # an __init__ that imports nothing cannot close a cycle; the ones that do are modules of their own)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colouring the visited)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_top_level_relative_and_function_level_imports():
    graph = import_graph()
    assert "jstyleid.engines.base" in graph["jstyleid.core.styleid"]  # from ..engines.base import (top level)
    assert "jstyleid.engines.base" in graph["jstyleid.training.lora"]
    assert graph["jstyleid.cli"]  # the CLI imports at least errors and the stages package
    assert all(name.startswith("jstyleid") for name in graph)


def test_find_cycle_names_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_stage_module_imports_another_stage():
    stage_imports = {
        name: sorted(m for m in targets if m.startswith(STAGES + ".") and m not in SHARED_STAGE_HELPERS)
        for name, targets in import_graph().items() if name.startswith(STAGES + ".")
    }
    offending = {name: targets for name, targets in stage_imports.items() if targets}
    assert not offending, f"stage modules importing other stages: {offending}"
