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


# What an extension may build on (docs/extending.md): a rule on the rules' shared modules, the layers, the network
# and the draws; a data set on the data package's readers and registry. Nothing else of gevb (not the config, the
# command line, the loop or another extension's own file), so adding one changes nothing it does not name.
EXTENSION_API = {
    "gevb.rules": {"gevb.rules.base", "gevb.rules.options", "gevb.rules.bp", "gevb.rules.feedback", "gevb.rules.dfa",
                   "gevb.layers", "gevb.layers.base", "gevb.init", "gevb.intervals", "gevb.models.network"},
    "gevb.data.sets": {"gevb.data.datasets", "gevb.data.digits", "gevb.data.errors", "gevb.data.formats",
                       "gevb.data.readers", "gevb.data.registry", "gevb.files"},
    "gevb.layers": {"gevb.layers.base", "gevb.layers.kinds", "gevb.layers.dispatch", "gevb.init"},
    "gevb.models.families": {"gevb.models.architectures", "gevb.models.specs", "gevb.layers"},
}  # fmt: skip
SHARED = {"gevb.rules.base", "gevb.rules.options", "gevb.rules.bp", "gevb.rules.feedback", "gevb.rules.dfa",
          "gevb.layers.base", "gevb.layers.kinds", "gevb.layers.dispatch", "gevb.layers.gate"}  # fmt: skip


def test_each_rule_data_set_layer_kind_and_family_file_imports_only_the_extension_api():
    graph = import_graph()
    for package, allowed in EXTENSION_API.items():
        files = [name for name in graph if name.startswith(package + ".") and name not in SHARED]
        assert len(files) >= 3, package
        for name in files:
            assert graph[name] <= allowed, f"{name} imports {sorted(graph[name] - allowed)}"


def test_the_loop_holds_no_policy():
    """Patience, stop-at-100, the non-finite policy and data-parallel averaging are hooks (``gevb.policies``):
    the loop's module names none of their settings."""
    loop = (PACKAGE / "training.py").read_text()
    for name in ("patience", "stop_at_100", "on_nonfinite", "average_over_processes", "isfinite"):
        assert name not in loop, name


def test_no_code_outside_the_layers_dispatches_on_a_layer_kind():
    """Each layer kind carries its behaviour (``gevb.layers.kinds``): outside ``gevb.layers`` no ``isinstance``
    names a kind's spec or module class. The method's roles stay: a weight layer, a gate."""
    import dataclasses

    from gevb.layers import LAYER_KINDS
    from gevb.layers.kinds import LayerSpec

    kinds = {kind.__name__ for kind in LAYER_KINDS.values()} | {"LayerSpec", "Window", "Pooling"}
    modules = set()
    for kind in LAYER_KINDS.values():
        spec = kind(**{f.name: 2 for f in dataclasses.fields(kind) if f.default is dataclasses.MISSING})
        modules.add(type(spec.build((4,) if kind.flat else (4, 8, 8), 1, False, False, {})[0]).__name__)
    assert {"Linear", "Conv", "MaxPool"} <= kinds and {"VecLinear", "VecConv2d"} <= modules
    assert all(issubclass(kind, LayerSpec) for kind in LAYER_KINDS.values())
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "layers"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                named |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
                assert not named & (kinds | modules), f"{path.relative_to(PACKAGE)}:{node.lineno} {sorted(named)}"
