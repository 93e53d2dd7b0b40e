"""DataFrame readers for notebooks: a run's interactions and metric time series.

Each reader takes a database path or URL (opened read-only and closed again) or an
open :class:`~sim.store.database.Store`, and returns a pandas DataFrame with fixed
columns, also when there are no rows. Anything else is one read-only SQL statement
away: :func:`sim.store.query.run_query`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pandas as pd

from sim.store.database import Store

__all__ = ["interactions_frame", "metrics_frame"]

_INTERACTION_TYPES = {"run_id": "int64", "seq": "int64", "t": "float64", "src": "int64",
                      "dst": "int64", "sign": "int64", "weight": "float64", "delivered": "bool",
                      "cause": "object", "blocked_by": "object"}
_METRIC_TYPES = {"run_id": "int64", "arm": "object", "seed": "int64", "t": "float64",
                 "name": "object", "value": "float64"}


@contextmanager
def _reading(db: str | Store) -> Iterator[Store]:
    if isinstance(db, Store):
        yield db
        return
    store = Store(db, create=False, read_only=True)
    try:
        yield store
    finally:
        store.dispose()


def _typed(df: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in types.items()})
    return df.astype(types)


def interactions_frame(db: str | Store, run_id: int, *, delivered_only: bool = False
                       ) -> pd.DataFrame:
    """A run's interactions, in time order.

    Args:
        db: Database path/URL or an open store.
        run_id: The run.
        delivered_only: Leave out the acts an intervention blocked.

    Returns:
        Columns ``run_id, seq, t, src, dst, sign, weight, delivered, cause, blocked_by``
        (``cause`` and ``blocked_by`` as names; ``blocked_by`` is None when delivered),
        ordered by ``t`` then ``seq``.

    Raises:
        SignsimError: No such run, or a database that cannot be read.
    """
    with _reading(db) as store:
        store.run(run_id)
        where = "run_id = :r" + (" AND delivered" if delivered_only else "")
        df = store.frame(f"SELECT {', '.join(_INTERACTION_TYPES)} FROM interactions "
                         f"WHERE {where} ORDER BY t, seq", {"r": run_id})
    return _typed(df, _INTERACTION_TYPES)


def metrics_frame(db: str | Store, runs: int | Iterable[int]) -> pd.DataFrame:
    """The metric time series of one or several runs, with their arm and seed.

    The columns are those of :func:`sim.sweep.report.load_metrics` (which selects a
    scenario's runs), so a wide table is one ``pivot_table`` away, e.g.
    ``df.pivot_table(index="t", columns="name", values="value")``.

    Args:
        db: Database path/URL or an open store.
        runs: A run id or several.

    Returns:
        Long frame with columns ``run_id, arm, seed, t, name, value``, ordered by run, name
        and ``t``.

    Raises:
        SignsimError: A run that does not exist, or a database that cannot be read.
    """
    ids = [int(runs)] if isinstance(runs, int) else [int(r) for r in runs]
    with _reading(db) as store:
        for run_id in ids:
            store.run(run_id)
        if not ids:
            return _typed(pd.DataFrame(), _METRIC_TYPES)
        marks = ", ".join(f":r{i}" for i in range(len(ids)))
        df = store.frame(
            "SELECT m.run_id AS run_id, r.arm AS arm, r.seed AS seed, m.t AS t, m.name AS name, "
            f"m.value AS value FROM metrics m JOIN runs r ON r.id = m.run_id "
            f"WHERE m.run_id IN ({marks}) ORDER BY m.run_id, m.name, m.t",
            {f"r{i}": r for i, r in enumerate(ids)},
        )
    return _typed(df, _METRIC_TYPES)
