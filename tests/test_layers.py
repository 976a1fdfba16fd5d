"""The packages form a layered DAG (docs/design.md, "Layers"): every import, lazy ones
included, goes down a layer, and no two modules import each other, directly or round a loop.

The layers, from the ground up:

- ``common``: helpers every layer uses (file I/O, config checks, registries); imports nothing
  of ours.
- ``envs``: environments, collection, the dataset format, typed metadata; over ``common``.
- the model core (``worldmodel`` without its application layer) and ``planners``: both over
  ``envs``, apart from each other; planners see a model only through their Protocols.
- ``callbacks`` and ``configs``: over the core and ``planners``.
- the application layer ``worldmodel.app`` (the CLI, the train and plan composition roots,
  ``load_agent``, the Trainer factory, the data commands) and the facade
  ``worldmodel/__init__.py``: over everything.
- ``benchmarks`` and the scripts ``train.py``, ``plan.py``: over the application.

Imports are read with ``ast`` from the source (no module is imported), including those inside
functions and the module names given to ``importlib.import_module`` as string literals.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "envs", "worldmodel", "planners", "callbacks", "configs", "benchmarks")
SCRIPTS = ("train.py", "plan.py")

# layer -> the layers it may import (besides its own)
ALLOWED = {
    "common": set(),
    "envs": {"common"},
    "core": {"common", "envs"},
    "planners": {"common", "envs"},
    "callbacks": {"common", "envs", "core", "planners"},
    "configs": {"common", "envs", "core", "planners"},
    "app": {"common", "envs", "core", "planners", "callbacks", "configs"},
    "benchmarks": {"common", "envs", "core", "planners", "callbacks", "configs", "app"},
    "scripts": {"app"},
}


def layer_of(module: str) -> str:
    """The layer of a module of ours, by its dotted name."""
    if module in ("train", "plan"):
        return "scripts"
    top = module.split(".")[0]
    if top == "worldmodel":
        return "app" if module == "worldmodel" or module.startswith("worldmodel.app") else "core"
    return top


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    files = [ROOT / s for s in SCRIPTS]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def imported_modules(path: Path) -> set[str]:
    """Every module of ours that ``path`` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(node.args[0].value)
        elif isinstance(node, ast.Dict):  # registries of "module" strings (worldmodel facade)
            found.update(v.value for v in node.values if isinstance(v, ast.Constant)
                         and isinstance(v.value, str) and v.value.split(".")[0] in PACKAGES
                         and " " not in v.value and "/" not in v.value)
    return {m for m in found if m.split(".")[0] in (*PACKAGES, "train", "plan")}


def our_modules() -> dict[str, Path]:
    return {module_name(path): path for path in source_files()}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours ``name`` refers to (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = our_modules()
    graph = {}
    for name, path in modules.items():
        targets = {resolve(m, modules) for m in imported_modules(path)}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def test_every_import_goes_down_a_layer():
    upward = []
    for module, targets in import_graph().items():
        source = layer_of(module)
        for target in targets:
            target_layer = layer_of(target)
            if target_layer != source and target_layer not in ALLOWED[source]:
                upward.append(f"{module} ({source}) imports {target} ({target_layer})")
    assert not upward, "imports against the layers:\n  " + "\n  ".join(sorted(upward))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, the first repeated last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    layers: dict[str, set[str]] = {}
    for module, targets in graph.items():
        layers.setdefault(layer_of(module), set()).update(
            layer_of(t) for t in targets if layer_of(t) != layer_of(module))
    return layers


def test_no_module_imports_itself_round_a_loop():
    graph = import_graph()
    # a package's __init__ that re-exports its modules is not a loop with them
    for name in list(graph):
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    assert find_cycle(package_graph(graph)) is None


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set(), "c": {"c"}}, ["c", "c"]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
])
def test_the_cycle_finder_finds_loops_and_only_loops(graph, cycle):
    assert find_cycle(graph) == cycle


def test_the_import_reader_sees_lazy_relative_and_string_imports(tmp_path, monkeypatch):
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    pkg = tmp_path / "planners"
    pkg.mkdir()
    (pkg / "x.py").write_text(
        "import importlib\n"
        "def f():\n    from worldmodel.data import thing\n"
        "    return importlib.import_module('callbacks.media')\n"
        "from .base import y\n")
    found = imported_modules(pkg / "x.py")
    assert {"worldmodel.data", "callbacks.media", "planners.base"} <= found
    assert layer_of("worldmodel.data") == "core" and layer_of("worldmodel.app.cli") == "app"
