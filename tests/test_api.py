"""Every module declares an explicit ``__all__`` whose names exist; sim/ never imports torch.

The public API (``sim/__init__.py``, ``models/__init__.py``): each name in ``__all__`` is
loaded lazily from the module its ``_EXPORTS`` entry names, the same name is imported under
``if TYPE_CHECKING:`` for type checkers, it has a docstring, docs/api.md describes it, and
every library function the CLI calls is among them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import models
import sim
from tests.test_layout import MODULES as LAYOUT
from tests.test_layout import _find_cycle, _sim_deps

MODULES = sorted(
    info.name
    for pkg in (sim, models)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}.")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_has_explicit_all(name):
    module = importlib.import_module(name)
    assert isinstance(module.__all__, list | tuple), name
    assert len(set(module.__all__)) == len(module.__all__)
    for symbol in module.__all__:
        assert hasattr(module, symbol), f"{name}.{symbol}"


def test_sim_never_imports_torch():
    code = (
        "import sys, importlib, pkgutil, sim\n"
        "for i in pkgutil.iter_modules(sim.__path__): importlib.import_module('sim.' + i.name)\n"
        "import cli\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the public API: sim/__init__.py and models/__init__.py --------------------------------
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"sim": sim, "models": models}

#: Names cli.py imports from sim/ and models/ that are not in the public API: they turn
#: results into terminal text; the API returns DataFrames and result objects instead.
CLI_ONLY = {"format_frame", "scoreboard_text"}


def _type_checking_imports(package: str) -> dict[str, str]:
    """``{name: module}`` of the imports under ``if TYPE_CHECKING:`` in a package's __init__."""
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                found.update({a.name: stmt.module for a in stmt.names})
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_public_api_lists_each_name_once_in_all_exports_and_type_checking(package):
    pkg = PACKAGES[package]
    assert len(set(pkg.__all__)) == len(pkg.__all__)
    assert set(pkg.__all__) == set(pkg._EXPORTS), "__all__ and _EXPORTS differ"
    assert _type_checking_imports(package) == pkg._EXPORTS, "what mypy sees differs from _EXPORTS"


@pytest.mark.parametrize("qualified", sorted(f"{p}.{n}" for p, pkg in PACKAGES.items()
                                             for n in pkg.__all__))
def test_public_name_exists_and_is_documented(qualified):
    package, name = qualified.split(".")
    pkg = PACKAGES[package]
    obj = getattr(pkg, name)
    assert obj is getattr(importlib.import_module(pkg._EXPORTS[name]), name)
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{qualified} has no docstring"
    assert not doc.startswith(f"{name}("), f"{qualified} has only the generated dataclass docstring"
    assert name in dir(pkg)


def test_every_library_call_of_the_cli_is_public():
    tree = ast.parse((ROOT / "cli.py").read_text())
    used = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] in PACKAGES for a in node.names}
    missing = used - CLI_ONLY - set(sim.__all__) - set(models.__all__)
    assert not missing, (f"cli.py uses {sorted(missing)}: add them to sim/__init__.py or "
                         "models/__init__.py (_EXPORTS, __all__, TYPE_CHECKING) and docs/api.md")


def test_every_public_name_is_in_the_api_reference():
    text = (ROOT / "docs" / "api.md").read_text()
    missing = [f"{p}.{n}" for p, pkg in PACKAGES.items() for n in pkg.__all__
               if not re.search(rf"(?<![\w.]){p}\.{n}\b", text)]
    assert not missing, f"docs/api.md does not describe {missing}"


def test_unknown_public_names_raise_attribute_error():
    for pkg in PACKAGES.values():
        with pytest.raises(AttributeError, match="no_such_name"):
            pkg.no_such_name  # noqa: B018
    from sim import store  # a subpackage still imports as usual

    assert store.__name__ == "sim.store"


def test_importing_the_packages_loads_nothing_until_a_name_is_used():
    code = (
        "import sys, sim, models, sim.contract\n"
        "def loaded(*prefixes): return sorted(m for m in sys.modules if m.startswith(prefixes))\n"
        "assert loaded('sim.', 'models.', 'torch') == ['sim.contract'], loaded('sim.', 'models.')\n"
        "from sim import simulate\n"
        "assert 'sim.engine.simulate' in sys.modules and 'sim.sweep.report' not in sys.modules\n"
        "assert sim.simulate is simulate and sim.__dict__['simulate'] is simulate\n"
        "for name in sim.__all__: getattr(sim, name)\n"
        "assert not loaded('models.', 'torch'), loaded('models.', 'torch')\n"
        "models.forecast_frame\n"
        "assert not loaded('torch'), 'models.frames needs no torch'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_library_code_never_imports_the_public_api_and_it_adds_no_cycle():
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "__init__.py" and path.parent == ROOT / package:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module in PACKAGES:
                    lazy = {a.name for a in node.names} & set(PACKAGES[node.module].__all__)
                    assert not lazy, f"{path}: import {sorted(lazy)} from its defining module"
                if isinstance(node, ast.Import):
                    assert not {a.name for a in node.names} & set(PACKAGES), path
    graph = {m: _sim_deps(m, runtime_only=True) for m in LAYOUT}
    graph["sim"] = graph["sim"] | set(sim._EXPORTS.values())
    assert _find_cycle(graph) is None, _find_cycle(graph)


def test_numba_errors_are_plain_so_compiling_threads_leave_sys_stdout_alone():
    # With colorama installed, numba's coloured errors swap sys.stdout from whatever thread
    # compiles (the writer and metrics threads do); importing sim turns that off.
    code = ("import sim.engine.kernel, sys; from numba.core import errors; "
            "print(type(errors.termcolor()).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "NOPColorScheme"
