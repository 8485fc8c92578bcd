"""The code's shape, held: no import cycle inside source_soundlink (type-only and deferred imports
included), no class over 200 lines, no function over 70 (the per-row hot loop aside)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "source_soundlink"
HOT_LOOP = "JsonlDecoder._validate_lines"  # one tight loop on purpose: every row goes through it
MAX_CLASS_LINES, MAX_FUNCTION_LINES = 200, 70


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text())
    return modules


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """Every package module this one imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_given_the_package_when_its_imports_are_followed_then_no_module_comes_back_to_itself() -> None:
    modules = _modules()
    graph = {name: _imports(tree, set(modules)) - {name} for name, tree in modules.items()}
    # A package's __init__ re-exporting its submodules is not a cycle; a submodule importing its package is.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(f"{t}.") or t == "source_soundlink"}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_given_every_class_and_function_when_measured_then_none_is_over_its_size() -> None:
    too_long = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                limit = MAX_CLASS_LINES
                members = [n for n in node.body if isinstance(n, ast.FunctionDef)]
                hot = sum(n.end_lineno - n.lineno + 1 for n in members if f"{node.name}.{n.name}" == HOT_LOOP)
                size = node.end_lineno - node.lineno + 1 - hot
            elif isinstance(node, ast.FunctionDef):
                limit, size = MAX_FUNCTION_LINES, node.end_lineno - node.lineno + 1
                qualified = [c.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and node in c.body]
                if f"{qualified[0]}.{node.name}" == HOT_LOOP if qualified else False:
                    continue
            else:
                continue
            if size > limit:
                too_long.append(f"{name}.{node.name}: {size} lines")
    assert not too_long, too_long
