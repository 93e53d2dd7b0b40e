"""The event writer: a run's interactions go to the store in transactional batches.

Each flush inserts the buffered events (and any side rows: metrics, snapshots,
interventions) and updates ``runs.n_interactions`` in one transaction, so a run's counter
always matches its committed rows, whatever happens to the process.

Three paths write the same rows:

* SQLite files use :class:`sim.store.sqlite_native.NativeConnection` when it is available:
  numpy columns are bound from compiled code with the GIL released.
* PostgreSQL through psycopg 3 gets a binary ``COPY`` whose bytes are encoded from the
  numpy columns in compiled code with the GIL released (:mod:`sim.store.pg_copy`); the
  side rows and the run's counter follow in the same transaction.
* Anything else (SQLite where native writes are unavailable, another driver) builds Python
  rows and goes through SQLAlchemy (:meth:`sim.store.database.Store.insert_flat`).

Every path checks, in the batch's transaction, that the counter update found the run's
row, so no batch is committed for a run that does not exist (``interactions.run_id`` is
not a foreign key: a per-row check would cost more than the insert itself).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, update
from sqlalchemy.engine import make_url

from sim.contract import BLOCKS, CAUSES, EventBatch
from sim.errors import SignsimError
from sim.store import pg_copy, sqlite_native
from sim.store.connect import SQLITE_PRAGMAS
from sim.store.database import INTERACTION_COLUMNS, Store
from sim.store.schema import Run

__all__ = ["EVENT_FIELDS", "EventWriter", "event_rows"]

#: The columns of an event batch that the writer stores (``cause``/``blocked``: codes).
EVENT_FIELDS = ("t", "src", "dst", "sign", "weight", "cause", "blocked")

_Job = tuple[list[EventBatch], int, dict[str, list[dict[str, Any]]]]


def event_rows(run_id: int, seq0: int, events: dict[str, np.ndarray],
               cause_names: Sequence[str | None], block_names: Sequence[str | None]
               ) -> list[Any]:
    """Values of ``interactions`` rows, flat, in ``INTERACTION_COLUMNS`` order."""
    k = len(events["t"])
    table = np.empty((k, len(INTERACTION_COLUMNS)), dtype=object)
    table[:, 0] = run_id
    table[:, 1] = range(seq0, seq0 + k)
    for j, field in enumerate(("t", "src", "dst", "sign", "weight"), 2):
        table[:, j] = events[field].tolist()
    table[:, 7] = (events["blocked"] == 0).tolist()
    table[:, 8] = np.array(cause_names, dtype=object)[events["cause"]]
    table[:, 9] = np.array(block_names, dtype=object)[events["blocked"]]
    return table.ravel().tolist()  # type: ignore[no-any-return]


def _missing_run(run_id: int) -> SignsimError:
    return SignsimError(f"Run {run_id} is not in the database; this batch of its events "
                        "was not written.")


class EventWriter:
    """Buffers a run's events and writes them in transactional batches.

    With ``background=True`` the flushes run on a writer thread, so simulating and
    writing overlap; ``sync()`` waits for it and ``close()`` also stops it; both re-raise
    any error the thread met.

    Args:
        store: The open store.
        run_id: The run the events belong to; ``seq`` counts from 0 in the order added.
        flush_rows: Events buffered before a flush.
        background: Write on a background thread.
        cause_names: Text stored for each ``cause`` code.
        block_names: Text stored for each ``blocked`` code (None: delivered).
    """

    def __init__(self, store: Store, run_id: int, flush_rows: int = 50_000,
                 background: bool = False, cause_names: Sequence[str | None] = CAUSES,
                 block_names: Sequence[str | None] = BLOCKS) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_rows = flush_rows
        self.cause_names = tuple(cause_names)
        self.block_names = tuple(block_names)
        self.written = 0
        self.added = 0
        self._batches: list[EventBatch] = []
        self._buffered = 0
        self._side: dict[str, list[dict[str, Any]]] = {}
        self._native: sqlite_native.NativeConnection | None = None
        self._queue: queue.Queue[_Job | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if background:
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._work, name="signsim-writer", daemon=True)
            self._thread.start()

    @property
    def native(self) -> bool:
        """Whether this writer binds events natively (a SQLite file, library available)."""
        return self.store.is_sqlite and sqlite_native.available() and bool(self._path())

    @property
    def binary_copy(self) -> bool:
        """Whether this writer sends events as binary ``COPY`` (PostgreSQL via psycopg 3)."""
        url = make_url(self.store.url)
        return url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg"

    def _path(self) -> str:
        path = make_url(self.store.url).database or ""
        return "" if path == ":memory:" else path

    def add(self, events: EventBatch) -> None:
        """Buffer a batch of events (``seq`` continues from the events added before)."""
        if len(events) == 0:
            return
        self._batches.append(events)
        self._buffered += len(events)
        self.added += len(events)
        if self._buffered >= self.flush_rows:
            self.flush()

    def add_side(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        """Buffer rows of another table (metrics, opinions, interventions)."""
        self._side.setdefault(table, []).extend(rows)

    def flush(self) -> None:
        """Hand everything buffered to the writer (or write it now)."""
        if self._error is not None:
            raise self._error
        if not self._batches and not self._side:
            return
        job = (self._batches, self.added - self._buffered, self._side)
        self._batches, self._buffered, self._side = [], 0, {}
        if self._queue is not None:
            self._queue.put(job)
        else:
            self._write(*job)

    def sync(self) -> None:
        """Flush and wait until everything handed to the writer thread is committed."""
        self.flush()
        if self._queue is not None:
            self._queue.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Flush, wait for the writer thread, close the connection, re-raise any error."""
        try:
            self.flush()
        finally:
            if self._queue is not None and self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._queue = None
            if self._native is not None:
                self._native.close()
                self._native = None
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            if job is None:
                self._queue.task_done()
                return
            if self._error is None:
                try:
                    self._write(*job)
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc
            self._queue.task_done()

    def _write(self, batches: list[EventBatch], seq0: int,
               side: dict[str, list[dict[str, Any]]]) -> None:
        events = {f: np.concatenate([getattr(b, f) for b in batches]) if batches
                  else np.zeros(0, dtype=np.int64) for f in EVENT_FIELDS}
        n = len(events["t"])
        if self.native:
            self._write_native(events, seq0, side)
        elif self.binary_copy:
            self._write_copy(events, seq0, side)
        else:
            flat = event_rows(self.run_id, seq0, events, self.cause_names, self.block_names)
            with self.store.begin() as conn:
                self.store.insert_flat(conn, "interactions", INTERACTION_COLUMNS, flat)
                self._finish_batch(conn, side, n)
        self.written += n

    def _finish_batch(self, conn: Connection, side: dict[str, list[dict[str, Any]]],
                      n: int) -> None:
        """The run's counter and the side rows, in the batch's open transaction."""
        done = conn.execute(update(Run).where(Run.id == self.run_id)
                            .values(n_interactions=self.written + n))
        if done.rowcount != 1:
            raise _missing_run(self.run_id)
        for table, rows in side.items():
            self.store.bulk_insert(conn, table, rows)

    def _write_copy(self, events: dict[str, np.ndarray], seq0: int,
                    side: dict[str, list[dict[str, Any]]]) -> None:
        import psycopg

        n = len(events["t"])
        with self.store.begin() as conn:
            raw = conn.connection.driver_connection
            payload = pg_copy.encode_interactions(
                self.run_id, seq0, events, self.cause_names, self.block_names,
                raw.info.encoding)  # type: ignore[union-attr]
            try:
                pg_copy.copy_payload(raw, payload)
            except psycopg.Error as exc:
                raise self.store.write_error(exc) from None
            self._finish_batch(conn, side, n)

    def _write_native(self, events: dict[str, np.ndarray], seq0: int,
                      side: dict[str, list[dict[str, Any]]]) -> None:
        if self._native is None:
            self._native = sqlite_native.NativeConnection(self._path(), SQLITE_PRAGMAS)
        con = self._native
        n = len(events["t"])
        con.execute("BEGIN IMMEDIATE")
        try:
            con.insert_events(self.run_id, seq0, events, self.cause_names, self.block_names)
            for table, rows in side.items():
                con.insert_dicts(table, rows)
            con.execute_many("UPDATE runs SET n_interactions = ? WHERE id = ?",
                             [(self.written + n, self.run_id)])
            if con.changes() != 1:
                raise _missing_run(self.run_id)
            con.execute("COMMIT")
        except BaseException:
            con.rollback()
            raise
