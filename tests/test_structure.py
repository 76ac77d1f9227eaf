"""The package's import graph: no cycles, and analysis reads runs and models without the training loop."""

from __future__ import annotations

import ast
from pathlib import Path

import gevb

PACKAGE = Path(gevb.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the gevb modules it imports anywhere in its source (``from a import b`` counts ``a.b``
    when ``a.b`` is a module, else ``a``); a package's own submodules imported by it are left out."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets |= {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys() or {node.module}
        graph[name] = {t for t in targets if t in modules and t != name and not t.startswith(name + ".")}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_import_graph_has_no_cycles():
    graph = import_graph()
    assert len(graph) > 30
    cycles = sorted(name for name in graph if name in reachable(graph, name))
    assert cycles == []


def test_analysis_does_not_reach_the_training_loop_and_training_does_not_reach_analysis():
    graph = import_graph()
    loop = {"gevb.training", "gevb.grid", "gevb.hooks", "gevb.cli"}
    for name in graph:
        if name.startswith("gevb.analysis"):
            assert not reachable(graph, name) & loop, name
    for name in ("gevb.training", "gevb.hooks", "gevb.build", "gevb.evaluation"):
        assert not {target for target in reachable(graph, name) if target.startswith("gevb.analysis")}, name
