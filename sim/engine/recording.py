"""Recording: stream a run's events, metrics, snapshots and intervention log to the store.

With a store, nothing accumulates in memory beyond one flush of rows and the sliding metric
window; ``keep_events`` (or no store) also keeps every batch, metric and intervention row.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from sim.contract import BLOCKS, EventBatch
from sim.store.database import Store
from sim.store.writer import EventWriter

if TYPE_CHECKING:
    from sim.engine.model import SocialModel

__all__ = ["Recorder"]

class Recorder:
    """Writes one run to a store (or keeps its events in memory when ``store`` is None).

    Args:
        store: Destination, or ``None`` to keep everything in ``self.batches``.
        run_id: The run's id in the store.
        keep_events: Also keep every batch, metric row and intervention row in memory
            (tests, small runs).
    """

    def __init__(self, store: Store | None, run_id: int = 0, keep_events: bool = False) -> None:
        self.store = store
        self.run_id = run_id
        self.writer = EventWriter(store, run_id, background=True) if store is not None else None
        self.keep_events = keep_events or store is None
        self.batches: list[EventBatch] = []
        self.metric_rows: list[dict[str, Any]] = []
        self.intervention_rows: list[dict[str, Any]] = []
        self._window: deque[EventBatch] = deque()
        self._blocked_since_tick: dict[str, int] = {}
        #: The metric values of the latest tick (NaN where undefined).
        self.latest_metrics: dict[str, float] = {}

    def attach(self, model: SocialModel) -> None:
        """Start the metric and snapshot processes on the model's clock."""
        rec = model.config.recording
        if self.writer is not None:
            self.writer.flush_rows = rec.flush_rows
        if rec.metric_cadence > 0:
            model.env.process(self._ticks(model, rec.metric_cadence, self._record_metrics))
        if rec.snapshot_cadence > 0:
            n = model.population.n
            sample_rng = model.rng.spawn(1)[0]
            size = n if rec.snapshot_sample == 0 else min(rec.snapshot_sample, n)
            self._sample = np.sort(sample_rng.choice(n, size=size, replace=False))
            model.env.process(self._ticks(model, rec.snapshot_cadence, self._snapshot))

    def _ticks(self, model: SocialModel, cadence: float, action: Any
               ) -> Generator[simpy.Event, Any, None]:
        action(model)
        while model.env.now + cadence < model.horizon - 1e-9:
            yield model.env.timeout(cadence)
            action(model)

    # -- events ------------------------------------------------------------------------
    def on_events(self, model: SocialModel, events: EventBatch) -> None:
        """Take one processed batch."""
        if len(events) == 0:
            return
        if self.writer is not None:
            self.writer.add(events)
        if self.keep_events:
            self.batches.append(events)
        if model.config.recording.metric_cadence > 0:
            self._window.append(events)
        for code in np.unique(events.blocked[events.blocked > 0]).tolist():
            name = BLOCKS[code] or ""
            self._blocked_since_tick[name] = self._blocked_since_tick.get(name, 0) + int(
                np.count_nonzero(events.blocked == code))

    def events(self) -> dict[str, np.ndarray]:
        """All kept events as columns (needs ``keep_events``)."""
        fields = ("t", "src", "dst", "sign", "weight", "blocked", "cause")
        if not self.batches:
            return {f: np.zeros(0) for f in fields}
        return {f: np.concatenate([getattr(b, f) for b in self.batches]) for f in fields}

    # -- side tables -------------------------------------------------------------------
    def _side(self, table: str, rows: list[dict[str, Any]]) -> None:
        if self.writer is not None:
            self.writer.add_side(table, rows)

    def log_intervention(self, t: float, intervention: str, action: str,
                         agent_id: int | None, count: int, detail: str) -> None:
        """Add an ``interventions`` row."""
        row = {"run_id": self.run_id, "t": float(t), "intervention": intervention,
               "action": action, "agent_id": agent_id, "count": int(count), "detail": detail}
        if self.keep_events:
            self.intervention_rows.append(row)
        self._side("interventions", [row])

    def _window_arrays(self, model: SocialModel) -> dict[str, np.ndarray]:
        start = model.env.now - model.config.recording.metric_window
        while self._window and float(self._window[0].t[-1]) < start:
            self._window.popleft()
        if not self._window:
            empty = np.zeros(0)
            return {"t": empty, "src": empty.astype(np.int64), "dst": empty.astype(np.int64),
                    "sign": empty.astype(np.int8), "weight": empty,
                    "delivered": empty.astype(bool)}
        cols = {f: np.concatenate([getattr(b, f) for b in self._window])
                for f in ("t", "src", "dst", "sign", "weight", "blocked")}
        keep = cols["t"] >= start
        out = {f: v[keep] for f, v in cols.items() if f != "blocked"}
        out["delivered"] = cols["blocked"][keep] == 0
        return out

    def _record_metrics(self, model: SocialModel) -> None:
        from sim.engine.metrics import compute_window_metrics, metric_rows

        pop = model.population
        now = model.env.now
        decay = np.exp(-(now - pop.neg_time) / model.config.dynamics.negativity_decay)
        values = compute_window_metrics(
            self._window_arrays(model), pop.opinion, pop.group, pop.negativity * decay,
            pop.active, model.config.recording.metric_window,
        )
        self.latest_metrics = values
        if model.datacollector is not None:
            model.datacollector.collect(model)
        rows = metric_rows(self.run_id, float(now), values)
        if self.keep_events:
            self.metric_rows.extend(rows)
        self._side("metrics", rows)
        for name, count in sorted(self._blocked_since_tick.items()):
            self.log_intervention(now, name, "blocked", None, count, "acts blocked since last tick")
        self._blocked_since_tick.clear()

    def _snapshot(self, model: SocialModel) -> None:
        pop = model.population
        now = model.env.now
        idx = self._sample
        neg = pop.negativity[idx] * np.exp(
            -(now - pop.neg_time[idx]) / model.config.dynamics.negativity_decay)
        self._side("opinions", [
            {"run_id": self.run_id, "t": float(now), "agent_id": int(i), "opinion": float(o),
             "negativity": float(v)}
            for i, o, v in zip(idx.tolist(), pop.opinion[idx].tolist(), neg.tolist(), strict=True)
        ])

    def close(self, model: SocialModel) -> None:
        """Record the final metrics and snapshot at the horizon, then flush everything."""
        rec = model.config.recording
        if rec.metric_cadence > 0:
            self._record_metrics(model)
        if rec.snapshot_cadence > 0:
            self._snapshot(model)
        if self.writer is not None:
            self.writer.close()
