"""The package's structure: no import cycle among pooltools modules, one pooling normalizer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pooltools"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every pooltools module and the pooltools modules it imports, anywhere in its body (a
    lazy import inside a function still makes a cycle, just a hidden one)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                base = node.module
                for alias in node.names:  # `from pooltools import data` imports a module
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules (first == last), or None; a depth-first search."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_planted_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_pooltools_modules():
    graph = import_graph()
    assert "pooltools.config" in graph and "pooltools.data" in graph["pooltools.train"]
    # the package __init__ re-exports submodules; a submodule importing it is the only cycle
    # that Python resolves by itself, and none does
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_only_shapes_normalizes_pooling_parameters():
    """``pair(...)`` on pooling arguments and the stride-defaults-to-kernel rule live in
    shapes.PoolParams; no other module re-derives them."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "shapes.py":
            continue
        text = path.read_text()
        for needle in ('pair(kernel_size', 'pair(stride', "kernel if stride is None",
                       "kernel_size if stride is None", "def _pair("):
            if needle in text:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {needle}")
    assert offenders == []
