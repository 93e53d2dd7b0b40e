"""Recording: stream a run's events, metrics, snapshots and intervention log to the store.

With a store, nothing accumulates in memory beyond one flush of rows and the sliding metric
window; ``keep_events`` (or no store) also keeps every batch, metric and intervention row.

Periodic metrics of a stored run are computed off the simulation thread: at each tick the
simulation thread only copies what the metrics read (the window's events, opinions,
groups, current negativity, the active mask) and a metrics thread computes the values
from that snapshot, while the simulation goes on (the heavy parts, numpy and the compiled
triangle census, release the GIL). Their rows reach the writer, in tick order, at a later
tick or when the run closes, so a run's metric rows are those of the synchronous path.
A model with a Mesa DataCollector, or without a store, computes each tick at once (the
collector reads :attr:`Recorder.latest_metrics` right away).
"""

from __future__ import annotations

import queue
import threading
import weakref
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

__all__ = ["MetricThread", "Recorder"]

#: A tick's inputs: time and the arguments of ``compute_window_metrics``.
_Snapshot = tuple[float, tuple[Any, ...]]


class MetricThread:
    """Computes metric ticks from snapshots on a thread, one at a time, in order.

    Args:
        depth: Snapshots waiting at most; :meth:`submit` blocks beyond (bounds memory
            when the simulation outruns the metrics).
    """

    def __init__(self, depth: int = 1) -> None:
        self._jobs: queue.Queue[_Snapshot | None] = queue.Queue(maxsize=depth)
        self._done: queue.Queue[tuple[float, dict[str, float] | BaseException]] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="signsim-metrics", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        from sim.engine.metrics import compute_window_metrics

        failed = False
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if failed:
                continue
            t, args = job
            try:
                self._done.put((t, compute_window_metrics(*args)))
            except BaseException as exc:  # re-raised on the simulation thread
                failed = True
                self._done.put((t, exc))

    def submit(self, t: float, args: tuple[Any, ...]) -> None:
        """Queue one tick's snapshot (``compute_window_metrics`` arguments)."""
        self._jobs.put((t, args))

    def results(self) -> list[tuple[float, dict[str, float]]]:
        """The ticks computed so far, in order; re-raises a computation's error."""
        out: list[tuple[float, dict[str, float]]] = []
        while True:
            try:
                t, values = self._done.get_nowait()
            except queue.Empty:
                return out
            if isinstance(values, BaseException):
                raise values
            out.append((t, values))

    def stop(self) -> None:
        """Let the thread end after the queued ticks (it holds nothing else)."""
        self._jobs.put(None)

    def finish(self) -> list[tuple[float, dict[str, float]]]:
        """Wait for every queued tick, stop the thread, return the remaining results."""
        self.stop()
        self._thread.join()
        return self.results()


class Recorder:
    """Writes one run to a store (or keeps its events in memory when ``store`` is None).

    Args:
        store: Destination, or ``None`` to keep everything in ``self.batches``.
        run_id: The run's id in the store.
        keep_events: Also keep every batch, metric row and intervention row in memory
            (tests, small runs).
        metric_thread: Compute a stored run's metrics on a thread of their own (False:
            on the simulation thread, at each tick; the rows are the same).
    """

    def __init__(self, store: Store | None, run_id: int = 0, keep_events: bool = False,
                 metric_thread: bool = True) -> None:
        self.store = store
        self.run_id = run_id
        self.use_metric_thread = metric_thread
        self.writer = EventWriter(store, run_id, background=True) if store is not None else None
        self.keep_events = keep_events or store is None
        self.batches: list[EventBatch] = []
        self.metric_rows: list[dict[str, Any]] = []
        self.intervention_rows: list[dict[str, Any]] = []
        self._window: deque[EventBatch] = deque()
        self._blocked_since_tick: dict[str, int] = {}
        self._metric_thread: MetricThread | None = None
        #: The metric values of the latest tick computed (NaN where undefined); with a
        #: DataCollector or without a store, that of the latest tick.
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
        from sim.engine.metrics import compute_window_metrics

        pop = model.population
        now = float(model.env.now)
        decay = np.exp(-(now - pop.neg_time) / model.config.dynamics.negativity_decay)
        window = self._window_arrays(model)
        if self.use_metric_thread and self.writer is not None and model.datacollector is None:
            if self._metric_thread is None:
                self._metric_thread = MetricThread()
                # a run that fails never closes its recorder: end the thread with it
                self._stop_thread = weakref.finalize(self, self._metric_thread.stop)
            self._metric_thread.submit(now, (
                window, pop.opinion.copy(), pop.group.copy(), pop.negativity * decay,
                pop.active.copy(), model.config.recording.metric_window))
            for t, values in self._metric_thread.results():
                self._take_metrics(t, values)
        else:
            values = compute_window_metrics(
                window, pop.opinion, pop.group, pop.negativity * decay, pop.active,
                model.config.recording.metric_window)
            self._take_metrics(now, values)
            if model.datacollector is not None:
                model.datacollector.collect(model)
        for name, count in sorted(self._blocked_since_tick.items()):
            self.log_intervention(now, name, "blocked", None, count, "acts blocked since last tick")
        self._blocked_since_tick.clear()

    def _take_metrics(self, t: float, values: dict[str, float]) -> None:
        from sim.engine.metrics import metric_rows

        self.latest_metrics = values
        rows = metric_rows(self.run_id, t, values)
        if self.keep_events:
            self.metric_rows.extend(rows)
        self._side("metrics", rows)

    def _finish_metrics(self) -> None:
        """Wait for the metrics thread and hand its last rows to the writer."""
        if self._metric_thread is not None:
            thread, self._metric_thread = self._metric_thread, None
            self._stop_thread.detach()
            for t, values in thread.finish():
                self._take_metrics(t, values)

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
        try:
            self._finish_metrics()
        finally:
            if self.writer is not None:
                self.writer.close()
