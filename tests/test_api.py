"""Every module declares an explicit ``__all__`` whose names exist; sim/ never imports torch."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import models
import sim

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
