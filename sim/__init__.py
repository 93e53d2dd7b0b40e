"""signsim's simulation package and its Python API.

The names below are what a notebook needs, in the order data flows (reference:
``docs/api.md``; a worked example: ``docs/tutorial.ipynb``):

* scenarios: :func:`load_scenario`, :func:`parse_scenario`, :class:`Scenario`,
  :class:`SimConfig`; every bad input raises :class:`SignsimError`;
* one run: :func:`simulate`, :func:`run_into_store` (:class:`SimResult`);
  :class:`SocialModel`, :class:`MesaSocialModel` in memory;
* the database: :func:`open_store` (:class:`Store`), :func:`list_runs`, :func:`run_query`,
  :func:`interactions_frame`, :func:`metrics_frame` (pandas DataFrames);
* sweeps and reports: :func:`run_scenario_file`, :func:`run_experiment`,
  :func:`render_report`, :func:`write_report`, :func:`load_metrics`, :func:`graph_stats`,
  :func:`plot_stats`;
* real networks in and runs out: :func:`import_network`, :func:`export_run`.

Names are loaded on first use (``import sim`` itself imports nothing else, so worker
processes importing ``sim.contract`` stay light). This package never imports torch;
learned dynamics plug in through :class:`sim.engine.dynamics.Dynamics` and the learning
side is the ``models`` package.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# Numba colours its compile errors with colorama when colorama is installed: each colour
# block swaps sys.stdout/sys.stderr for wrappers and back. Our kernels also compile on the
# writer and metrics threads, and two threads swapping at once can leave a wrapper (or a
# stale stream) as sys.stdout. Plain messages avoid that; set before numba is imported.
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")

if TYPE_CHECKING:
    from sim.config import SimConfig
    from sim.engine.mesa_tools import MesaSocialModel
    from sim.engine.model import SocialModel
    from sim.engine.simulate import SimResult, run_into_store, simulate
    from sim.errors import SignsimError
    from sim.scenario import Scenario, load_scenario, parse_scenario
    from sim.store.database import Store, open_store
    from sim.store.export import export_run
    from sim.store.frames import interactions_frame, metrics_frame
    from sim.store.importers import ImportSummary, import_network
    from sim.store.query import list_runs, run_query
    from sim.sweep.experiment import ExperimentResult, run_experiment
    from sim.sweep.graphstats import graph_stats, plot_stats
    from sim.sweep.report import load_metrics, write_report
    from sim.sweep.runner import SweepOutcome, render_report, run_scenario_file

__all__ = [
    "ExperimentResult",
    "ImportSummary",
    "MesaSocialModel",
    "Scenario",
    "SignsimError",
    "SimConfig",
    "SimResult",
    "SocialModel",
    "Store",
    "SweepOutcome",
    "export_run",
    "graph_stats",
    "import_network",
    "interactions_frame",
    "list_runs",
    "load_metrics",
    "load_scenario",
    "metrics_frame",
    "open_store",
    "parse_scenario",
    "plot_stats",
    "render_report",
    "run_experiment",
    "run_into_store",
    "run_query",
    "run_scenario_file",
    "simulate",
    "write_report",
]

#: Where each public name lives (its module is imported on first access).
_EXPORTS: dict[str, str] = {
    "SimConfig": "sim.config",
    "SignsimError": "sim.errors",
    "Scenario": "sim.scenario",
    "load_scenario": "sim.scenario",
    "parse_scenario": "sim.scenario",
    "SimResult": "sim.engine.simulate",
    "run_into_store": "sim.engine.simulate",
    "simulate": "sim.engine.simulate",
    "SocialModel": "sim.engine.model",
    "MesaSocialModel": "sim.engine.mesa_tools",
    "Store": "sim.store.database",
    "open_store": "sim.store.database",
    "list_runs": "sim.store.query",
    "run_query": "sim.store.query",
    "interactions_frame": "sim.store.frames",
    "metrics_frame": "sim.store.frames",
    "ImportSummary": "sim.store.importers",
    "import_network": "sim.store.importers",
    "export_run": "sim.store.export",
    "ExperimentResult": "sim.sweep.experiment",
    "run_experiment": "sim.sweep.experiment",
    "SweepOutcome": "sim.sweep.runner",
    "render_report": "sim.sweep.runner",
    "run_scenario_file": "sim.sweep.runner",
    "load_metrics": "sim.sweep.report",
    "write_report": "sim.sweep.report",
    "graph_stats": "sim.sweep.graphstats",
    "plot_stats": "sim.sweep.graphstats",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's attributes, the public names included before they are loaded."""
    return sorted(set(globals()) | set(__all__))
