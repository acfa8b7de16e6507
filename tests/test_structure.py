"""The code's shape, checked: short functions, no import cycles, no private names across modules, the project's own
imports at module top. (The layering between packages is checked by import-linter: `make lint`.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "core", "db", "pages")
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Dotted name -> file of every project module (migrations left out: they are history, not code to shape)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = modules()


def project_imports(tree: ast.AST, module: str) -> list[tuple[ast.ImportFrom | ast.Import, str]]:
    """(node, imported project module) for every import of a project module in `tree`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in PACKAGES:
                for a in node.names:  # `from core.steps import maps` imports the module core.steps.maps
                    sub = f"{node.module}.{a.name}"
                    found.append((node, sub if sub in MODULES else node.module))
    return found


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{node.lineno} {node.name} "
        f"({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_is_longer_than_60_lines():
    offenders = [line for path in MODULES.values() for line in long_functions(path)]
    assert offenders == []


def test_the_checks_see_a_long_function_and_a_cycle(tmp_path):
    """The checkers themselves can fail: a 61-line function is reported, a two-module cycle is found."""
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    assert long_functions(tmp_path / "m.py") == ["m.py:1 f (61 lines)"]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {target for _, target in project_imports(ast.parse(path.read_text()), module)}
        graph[module] = {t for t in targets if t in MODULES and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    """Every import counts, top-level and inside functions: a lazy import still makes a cycle."""
    graph = import_graph()
    assert len(graph) > 50  # the graph covers the project
    assert cycles(graph) == []


def test_no_module_imports_another_modules_private_name():
    offenders = []
    for module, path in MODULES.items():
        for node, _target in project_imports(ast.parse(path.read_text()), module):
            if isinstance(node, ast.ImportFrom):
                offenders += [f"{module}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def module_level(body: list[ast.stmt]):
    """Statements run at import time: the module body and the bodies of its top-level if / try blocks."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            for block in (node.body, node.orelse, getattr(node, "handlers", []), getattr(node, "finalbody", [])):
                yield from module_level([n for n in block if isinstance(n, ast.stmt)])
            for handler in getattr(node, "handlers", []):
                yield from module_level(handler.body)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_projects_own_imports_are_at_module_top(package):
    offenders = []
    for module, path in MODULES.items():
        if module.split(".")[0] != package:
            continue
        tree = ast.parse(path.read_text())
        top = {id(node) for node in module_level(tree.body)}
        for node, target in project_imports(tree, module):
            if id(node) not in top:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target} inside a function")
    assert offenders == []
