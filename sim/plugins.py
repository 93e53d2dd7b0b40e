"""The one place where ``sim`` reaches into ``models``: learned dynamics, twins, exports.

Everything in ``sim`` runs without torch. A learned model plugs into the engine through
the :class:`~sim.engine.dynamics.Dynamics` protocol, and the few features that need the
``models`` package (a learned decision model, a learned twin, the twin's fidelity table
in scenario reports, the PyG temporal export) import it here, lazily, only when a user
asks for them. A test checks that no other module of ``sim`` imports ``models``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.errors import SignsimError

if TYPE_CHECKING:
    from sim.config import SimConfig
    from sim.engine.agents import Population
    from sim.engine.dynamics import Dynamics
    from sim.store.database import Store

__all__ = ["learned_dynamics", "temporal_export", "twin_dynamics", "twin_fidelity_rows"]


def learned_dynamics(config: SimConfig) -> Dynamics:
    """The learned dynamics named by ``dynamics.model`` (imports torch, only then)."""
    if not Path(config.dynamics.model).is_file():
        raise SignsimError(f"dynamics.model: checkpoint '{config.dynamics.model}' does not exist.")
    from models.learned import LearnedDynamics

    return LearnedDynamics(config.dynamics.model, candidates=config.dynamics.model_candidates)


def twin_dynamics(config: SimConfig) -> tuple[Dynamics, Population, SimConfig]:
    """The learned twin named by ``dynamics.twin``: dynamics, nodes and adjusted settings."""
    from models.twin.scenario import twin_generator

    return twin_generator(config)


def twin_fidelity_rows(store: Store, run_ids: list[int], network: str, split: float,
                       horizon: float) -> Any:
    """The twin's fidelity table (baseline runs vs the real period) for a scenario report."""
    from models.twin.scenario import fidelity_rows

    return fidelity_rows(store, run_ids, network, split, horizon)


def temporal_export(store: Store, run_id: int, path: Path) -> Path:
    """Write run ``run_id`` as a PyG ``TemporalData`` file (imports torch, only then)."""
    from models.export import export_temporal_data

    return export_temporal_data(store, run_id, path)

