"""Export a run's interactions to files other tools load (``signsim export``).

Formats: ``csv`` and ``parquet`` (the ``interactions`` rows as stored), and ``tgb``: a
TGB-style edge list (``source,destination,timestamp,sign,weight``; delivered events only,
time-ordered, timestamps in seconds since the run's start). PyTorch Geometric
``TemporalData`` lives in :mod:`models.export` (it needs torch).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sim.errors import SignsimError
from sim.store.database import Store

__all__ = ["EXPORT_FORMATS", "export_run", "run_frame"]

EXPORT_FORMATS = ("csv", "parquet", "tgb", "pyg")


def run_frame(store: Store, run_id: int) -> pd.DataFrame:
    """A run's interactions as a DataFrame ordered by ``seq`` (clear error if unknown)."""
    store.run(run_id)
    return store.frame("SELECT * FROM interactions WHERE run_id = :r ORDER BY t, seq", {"r": run_id})


def export_run(store: Store, run_id: int, fmt: str, out: str | Path) -> Path:
    """Write run ``run_id`` to ``out`` in format ``fmt`` (csv, parquet, tgb or pyg)."""
    if fmt not in EXPORT_FORMATS:
        raise SignsimError(f"Unknown export format '{fmt}'; use one of: {', '.join(EXPORT_FORMATS)}.")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pyg":
        from sim.plugins import temporal_export  # torch only when asked for

        return temporal_export(store, run_id, path)
    df = run_frame(store, run_id)
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        d = df[df["delivered"].astype(bool)]
        t0 = float(d["t"].min()) if len(d) else 0.0
        pd.DataFrame({
            "source": d["src"].to_numpy(), "destination": d["dst"].to_numpy(),
            "timestamp": ((d["t"].to_numpy() - t0) * 86400.0).round(3),
            "sign": d["sign"].to_numpy(), "weight": d["weight"].to_numpy(),
        }).to_csv(path, index=False)
    return path
