"""The package layout follows the data flow: foundations, engine, store, sweep.

Imports are read from the source with :mod:`ast`: module-level and function-local
imports are what runs; imports under ``if TYPE_CHECKING:`` are for annotations only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sim"
# The package itself ("sim") is the public API (lazy re-exports of every layer, checked in
# tests/test_api.py), not a foundation.
FOUNDATIONS = {"sim.atomic", "sim.config", "sim.contract", "sim.errors", "sim.limits",
               "sim.plugins", "sim.scenario"}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in ROOT.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, runtime?) for every import statement in ``path``."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.body:
                    visit_one(stmt, False)
                for stmt in child.orelse:
                    visit_one(stmt, runtime)
            else:
                visit_one(child, runtime)

    def visit_one(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, runtime))
            found.extend((f"{node.module}.{a.name}", runtime) for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((a.name, runtime) for a in node.names)
        else:
            visit(node, runtime)

    visit(ast.parse(path.read_text()), True)
    return found


def _sim_deps(module: str, runtime_only: bool) -> set[str]:
    return {m for m, runtime in _imports(MODULES[module])
            if m in MODULES and m != module and (runtime or not runtime_only)}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_the_layers_are_folders() -> None:
    layers = {m.split(".")[1] for m in MODULES if m.count(".") >= 2}
    assert layers == {"engine", "store", "sweep"}
    assert all(m in FOUNDATIONS for m in MODULES if m.count(".") <= 1
               and m not in ("sim", "sim.engine", "sim.store", "sim.sweep"))


def test_no_import_cycles_at_run_time() -> None:
    graph = {m: _sim_deps(m, runtime_only=True) for m in MODULES}
    assert _find_cycle(graph) is None, _find_cycle(graph)


def test_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("sim.store")))
def test_the_store_never_imports_the_engine_or_sweeps(module: str) -> None:
    bad = {m for m in _sim_deps(module, runtime_only=False)
           if m.startswith(("sim.engine", "sim.sweep"))}
    assert not bad, f"{module} imports {sorted(bad)}; share code through sim.contract"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("sim.engine")))
def test_the_engine_never_imports_sweeps(module: str) -> None:
    assert not {m for m in _sim_deps(module, runtime_only=False) if m.startswith("sim.sweep")}


@pytest.mark.parametrize("module", sorted(FOUNDATIONS & set(MODULES)))
def test_foundations_import_only_foundations_at_run_time(module: str) -> None:
    assert _sim_deps(module, runtime_only=True) <= FOUNDATIONS


def test_only_the_plugin_module_imports_models_and_nothing_imports_torch() -> None:
    reach = {m for m, p in MODULES.items()
             if any(i == "models" or i.startswith("models.") for i, _ in _imports(p))}
    assert reach == {"sim.plugins"}
    torch_users = {m for m, p in MODULES.items()
                   if any(i.split(".")[0] == "torch" for i, _ in _imports(p))}
    assert torch_users == set()
