"""signsim's learning package and its Python API: temporal signed-graph models of a database.

The names below are what a notebook needs (reference: ``docs/api.md``; a worked
example: ``docs/tutorial.ipynb``):

* train: :func:`train_run` with :class:`TrainConfig` (:class:`TrainResult`);
* evaluate beside the baselines: :func:`evaluate_model` (:class:`EvaluationReport`,
  as a table: :func:`evaluation_frame`);
* forecast: :func:`forecast_model` (:class:`ForecastResult`, as a table:
  :func:`forecast_frame`);
* the learned twin: :func:`twin_run` (:class:`TwinResult`), :func:`load_observed`,
  :func:`split_observed`, :func:`fit_twin`;
* the pieces underneath: :func:`load_events` (:class:`SignedEvents`),
  :class:`LearnedDynamics`, :func:`export_temporal_data`.

Names are loaded on first use, so ``import models`` does not import torch; the modules
that hold them do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.data import SignedEvents, load_events
    from models.evaluate import EvaluationReport, evaluate_model
    from models.export import export_temporal_data
    from models.forecast import ForecastResult, forecast_model
    from models.frames import evaluation_frame, forecast_frame
    from models.learned import LearnedDynamics
    from models.train import TrainConfig
    from models.train_job import TrainResult, train_run
    from models.twin import TwinResult, fit_twin, load_observed, split_observed, twin_run

__all__ = [
    "EvaluationReport",
    "ForecastResult",
    "LearnedDynamics",
    "SignedEvents",
    "TrainConfig",
    "TrainResult",
    "TwinResult",
    "evaluate_model",
    "evaluation_frame",
    "export_temporal_data",
    "fit_twin",
    "forecast_frame",
    "forecast_model",
    "load_events",
    "load_observed",
    "split_observed",
    "train_run",
    "twin_run",
]

#: Where each public name lives (its module is imported on first access).
_EXPORTS: dict[str, str] = {
    "SignedEvents": "models.data",
    "load_events": "models.data",
    "TrainConfig": "models.train",
    "TrainResult": "models.train_job",
    "train_run": "models.train_job",
    "EvaluationReport": "models.evaluate",
    "evaluate_model": "models.evaluate",
    "ForecastResult": "models.forecast",
    "forecast_model": "models.forecast",
    "evaluation_frame": "models.frames",
    "forecast_frame": "models.frames",
    "TwinResult": "models.twin",
    "fit_twin": "models.twin",
    "load_observed": "models.twin",
    "split_observed": "models.twin",
    "twin_run": "models.twin",
    "LearnedDynamics": "models.learned",
    "export_temporal_data": "models.export",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's attributes, the public names included before they are loaded."""
    return sorted(set(globals()) | set(__all__))
