"""Twins inside scenario files: ``[dynamics] twin = "edges.csv"``.

A scenario arm whose dynamics names a twin source (a signed edge list in the SNAP format
that ``signsim import`` reads) runs on the learned twin of that network: the history up to
``twin_split`` is replayed and learned, and the run generates the ``horizon`` days that
follow, with the arm's interventions acting on the twin's acts. The fit is deterministic
and kept per process, so the arms and seeds of a sweep share it.

:func:`fidelity_rows` gives the report of such a scenario its first section: the
baseline arm's runs against what really happened after the split.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

from models.twin.dynamics import TwinDynamics, newcomer_slots, twin_population
from models.twin.fit import TwinFit, fit_twin
from models.twin.observed import Observed, Stream, TwinSplit, _renumber, split_observed
from models.twin.report import fmt_value
from models.twin.run import apply_opinion_steps, stored_stream
from sim.config import SimConfig
from sim.engine.agents import Population
from sim.engine.dynamics import Dynamics
from sim.errors import SignsimError
from sim.store.database import Store
from sim.store.importers import SECONDS_PER_DAY, read_snap_signed

__all__ = ["fidelity_rows", "load_source", "twin_generator"]

_FITS: dict[tuple[str, int, int, float], TwinFit] = {}
_ROOT = Path(__file__).resolve().parents[2]


def load_source(path: str | Path) -> Observed:
    """An edge-list file as an observed run (no database involved)."""
    edges = read_snap_signed(path)
    t = (edges.time - edges.time[0]) / SECONDS_PER_DAY
    stream = Stream.from_columns(t, edges.src, edges.dst, edges.rating, np.abs(edges.rating) / 10.0)
    src, dst, originals = _renumber(stream.src, stream.dst)
    n = originals.shape[0]
    return Observed(run_id=0, name=Path(path).stem,
                    stream=Stream(stream.t, src, dst, stream.sign, stream.weight),
                    node_ids=originals, kind=np.zeros(n, dtype=np.int8),
                    group=np.zeros(n, dtype=np.int32), opinion=np.zeros(n),
                    span=float(stream.t[-1]))


def _resolve(path: str) -> Path:
    p = Path(path)
    for candidate in (p, _ROOT / "scenarios" / p):
        if candidate.is_file():
            return candidate.resolve()
    raise SignsimError(f"dynamics.twin: the edge-list file '{path}' does not exist.")


def _fit(path: str, split: float) -> TwinFit:
    p = _resolve(path)
    st = os.stat(p)
    key = (str(p), st.st_size, st.st_mtime_ns, split)
    if key not in _FITS:
        _FITS[key] = fit_twin(split_observed(load_source(p), split))
    return _FITS[key]


def twin_generator(config: SimConfig) -> tuple[Dynamics, Population, SimConfig]:
    """Dynamics, population and engine settings of a twin scenario arm."""
    fit = _fit(config.dynamics.twin, config.dynamics.twin_split)
    cfg = copy.deepcopy(config)
    capacity = fit.split.n_known + newcomer_slots(fit, cfg.horizon)
    cfg.population.n_agents = capacity
    cfg.network.kind = "none"
    apply_opinion_steps(cfg, fit.opinion_steps)
    cfg.recording.batch_events = min(cfg.recording.batch_events, 32)
    dyn = TwinDynamics(fit, capacity)
    return dyn, twin_population(fit, capacity, dyn.initial_rates()), cfg


def fidelity_rows(store: Store, run_ids: list[int], twin: str, split: float, horizon: float
                  ) -> tuple[str, list[str], list[list[str]]] | None:
    """The fidelity table of a twin scenario's baseline runs (note, header, rows)."""
    from models.twin.stats import SCOREBOARD, compare, stream_statistics

    if not run_ids:
        return None
    cut: TwinSplit = split_observed(load_source(_resolve(twin)), split)
    t1 = cut.t_split + min(horizon, cut.horizon)
    future = cut.future.slice(0, int(np.searchsorted(cut.future.t, t1, side="right")))
    real = stream_statistics(future, cut.history, cut.t_split, t1)
    runs = [stream_statistics(stored_stream(store, i, cut.t_split, t1), cut.history,
                              cut.t_split, t1) for i in run_ids]
    table = compare(real, {"twin": runs})
    board = table[table["scoreboard"]]
    rows: list[list[str]] = []
    for stat, r in zip(SCOREBOARD, board.to_dict("records"), strict=True):
        rows.append([stat.label, fmt_value(r["real"]), f"{fmt_value(r['mean'])} [{fmt_value(r['low'])}, "
                     f"{fmt_value(r['high'])}]", fmt_value(r["distance"])])
    note = (
        f"This scenario runs on the learned twin of `{Path(twin).name}`, fitted on the events "
        f"before its {split:g} split (day {cut.t_split:.1f}). Its baseline arm "
        f"({len(run_ids)} runs) is compared here with what really happened in the "
        f"{t1 - cut.t_split:.1f} days after the split: the closer, the more the other arms "
        "can be trusted. Distance: relative error, mean KS or total variation (see "
        "docs/models.md); `signsim twin` compares the twin with calibrated rules and a "
        "no-learning null."
    )
    return note, ["statistic", "real", "twin (baseline arm): mean [95% interval]", "distance"], rows

