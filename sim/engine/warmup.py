"""Warm start for sweep workers: importing this module loads every compiled loop.

A sweep's process-pool and Dask ``LocalCluster`` workers fork from one fork server
(:mod:`sim.sweep.executors`), which imports this module first. Each worker then starts with
numba initialised, the event kernel and metric loops loaded from numba's cache and the
native SQLite writer compiled, instead of paying about a second for that in its first
run. Nothing is left open: the tiny run's database is closed and deleted before any
fork.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sim.config import SimConfig
from sim.engine.simulate import run_into_store
from sim.store.database import open_store

__all__ = ["warm_up"]


def warm_up() -> bool:
    """Run a tiny simulation into a throw-away SQLite file; True when it ran.

    Never raises: a worker that starts cold is slower, not wrong.
    """
    try:
        cfg = SimConfig(horizon=1.0)
        cfg.population.n_agents = 60
        with tempfile.TemporaryDirectory(prefix="signsim-warm-") as tmp:
            store = open_store(str(Path(tmp) / "warm.db"))
            run_into_store(store, cfg, seed=0)
            store.dispose()
    except Exception:  # noqa: BLE001 - see the docstring
        return False
    return True


WARM = warm_up()
