"""The package's layout: the direct parts of `wengert/` (subpackages and top-level modules) import
each other without a cycle, counting imports inside functions, so each part uses only parts
below it (docs/architecture.md draws the order)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wengert"


def _part(module: str) -> str | None:
    """`wengert.train.loop` -> `train`; the package itself (`wengert`) is no part."""
    names = module.split(".")
    return names[1] if len(names) > 1 and names[0] == "wengert" else None


def _module_name(path: Path) -> tuple[str, bool]:
    names = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = names[-1] == "__init__"
    return ".".join(names[:-1] if package else names), package


def _imported(tree: ast.AST, module: str, package: bool) -> list[tuple[int, str]]:
    """Every wengert module an `import` or `from ... import` anywhere in the file names (with
    `from X import Y`, both X and X.Y, since Y may be a submodule)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if package else module.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join(here + ([node.module] if node.module else []))
            out += [(node.lineno, base)] + [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return [(line, name) for line, name in out if name.split(".")[0] == "wengert"]


def import_graph() -> dict[str, dict[str, list[str]]]:
    """part -> imported part -> where ("file:line")."""
    parts = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    graph: dict[str, dict[str, list[str]]] = {part: {} for part in parts}
    for path in sorted(PACKAGE.rglob("*.py")):
        module, package = _module_name(path)
        source = _part(module)
        if source is None:
            continue
        for line, name in _imported(ast.parse(path.read_text(), str(path)), module, package):
            target = _part(name)
            if target in parts and target != source:
                graph[source].setdefault(target, []).append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_parts_import_each_other_without_a_cycle():
    graph = import_graph()
    found = cycles(graph)
    where = [f"{a} -> {b}: {', '.join(graph[a][b][:3])}" for c in found for a in c for b in graph[a] if b in c]
    assert not found, "import cycles between parts of wengert/:\n" + "\n".join(where)


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert {"diagnostics", "runtime", "dsl", "train", "compiler", "program", "cli"} <= set(graph)
    assert "inspect" in graph["cli"]  # cli imports inspect only inside its commands
    assert "compiler" in graph["program"]  # program.py imports the plan cache inside a method


@pytest.mark.parametrize("part, below", [
    ("diagnostics", set()),  # the ground floor imports nothing of wengert
    ("runtime", {"diagnostics"}),
    ("train", {"diagnostics", "runtime", "compiler"}),
    ("compiler", {"diagnostics", "runtime"}),
])
def test_the_lower_floors_import_only_what_is_below_them(part, below):
    assert set(import_graph()[part]) <= below


def test_a_cycle_is_found():
    graph = {"a": {"b": ["x:1"]}, "b": {"c": ["x:2"]}, "c": {"a": ["x:3"]}, "d": {"a": ["x:4"]}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b": []}, "b": {}}) == []
