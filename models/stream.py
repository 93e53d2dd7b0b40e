"""Events streamed from the database in chunks, for runs too large to hold in memory.

A 10M-event run is read a chunk at a time with keyset pagination on the interactions'
primary key ``(run_id, t, seq)``: each query asks for the next ``chunk`` delivered rows
after the last ``(t, seq)`` seen, so every query is an index range scan and no query
re-reads earlier rows (``OFFSET`` is used once, to find where a window starts). Host
memory then holds one chunk of events (plus the node state), whatever the run's length.

* :func:`stream_info` -- the node id space, the event count and the chronological split,
  computed in SQL (the split is the one :func:`models.data.split_by_time` gives for the
  same run, float32 times included);
* :func:`iter_event_chunks` -- :class:`~models.data.SignedEvents` chunks of ``[start,
  end)`` in the order of :func:`models.data.load_events`;
* :func:`stream_batches` -- training batches over chunks, with a first batch of any size
  (random chunk scheduling), crossing chunk boundaries;
* :func:`load_window` -- a bounded window ``[start, end)`` as one in-memory stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from models.data import EventBatch, SignedEvents, TimeSplit
from sim.errors import SignsimError
from sim.store.database import Store

__all__ = [
    "DEFAULT_CHUNK",
    "StreamInfo",
    "iter_event_chunks",
    "load_window",
    "stream_batches",
    "stream_info",
]

DEFAULT_CHUNK = 100_000
"""Rows per database query when streaming."""

_WHERE = "run_id = :r AND delivered"
_COLS = "seq, t, src, dst, sign, weight"


@dataclass(frozen=True)
class StreamInfo:
    """What is known about a streamed run without loading its events.

    Attributes:
        run_id: The run.
        n_events: Delivered interactions.
        node_ids: Sorted stored ids of every node (index = node index), as in
            :func:`models.data.load_events`.
        split: The chronological split at the requested fractions.
    """

    run_id: int
    n_events: int
    node_ids: np.ndarray
    split: TimeSplit

    @property
    def num_nodes(self) -> int:
        """Size of the node id space."""
        return int(self.node_ids.shape[0])


def _rows(store: Store, sql: str, params: dict[str, Any]) -> np.ndarray:
    """A numeric SELECT as a float64 array ``[rows, columns]``, through the DBAPI cursor.

    Row tuples straight from the driver are several times faster to turn into arrays
    than result rows or a DataFrame (this is the hot path of streaming). ``:name``
    placeholders are rewritten for PostgreSQL's driver.
    """
    if store.engine.dialect.name != "sqlite":
        for key in params:
            sql = sql.replace(f":{key}", f"%({key})s")
    try:
        with store.engine.connect() as conn:
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.execute(sql, params)
                rows = cur.fetchall()
            finally:
                cur.close()
    except Exception as exc:  # the driver's own error types differ by backend
        raise SignsimError(f"Cannot read run {params.get('r')} from the database: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}."
                           ) from None
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def _scalar(store: Store, sql: str, params: dict[str, Any]) -> Any:
    df = store.frame(sql, params)
    return df.iloc[0, 0] if len(df) else None


def _time_at(store: Store, run_id: int, index: int) -> float:
    """Stored (float64) time of the ``index``-th delivered event in ``(t, seq)`` order."""
    return float(_scalar(store, f"SELECT t FROM interactions WHERE {_WHERE} "
                                "ORDER BY t, seq LIMIT 1 OFFSET :k",
                         {"r": run_id, "k": index}))


def _count_upto32(store: Store, run_id: int, t32: np.float32) -> int:
    """Events whose float32 time is ``<= t32`` (exactly as the in-memory split counts)."""
    lo = float(t32)
    hi = float(np.nextafter(t32, np.float32(np.inf)))
    below = int(_scalar(store, f"SELECT COUNT(*) FROM interactions WHERE {_WHERE} "
                               "AND t <= :t", {"r": run_id, "t": lo}))
    # Times above t32 as float64 that still round down to it in float32.
    near = store.frame(f"SELECT t FROM interactions WHERE {_WHERE} AND t > :a AND t < :b",
                       {"r": run_id, "a": lo, "b": hi})
    if near.empty:
        return below
    return below + int((near["t"].to_numpy(np.float64).astype(np.float32) <= t32).sum())


def stream_info(store: Store, run_id: int, train: float = 0.70, val: float = 0.15) -> StreamInfo:
    """Node ids, event count and the chronological split of a run, computed in SQL.

    Args:
        store: The open store.
        run_id: The run.
        train: Share of time for training.
        val: Share of time for validation.

    Raises:
        SignsimError: Unknown run, no delivered interactions, bad fractions or a run too
            short to split.
    """
    run = store.run(run_id)
    if not (0 < train < 1 and 0 < val < 1 and train + val < 1):
        raise SignsimError(f"Bad split fractions train={train}, val={val}.")
    n = int(_scalar(store, f"SELECT COUNT(*) FROM interactions WHERE {_WHERE}",
                    {"r": run_id}))
    if n == 0:
        raise SignsimError(f"Run {run_id} ({run['scenario']}, status {run['status']}) has no "
                           "delivered interactions to learn from.")
    ids = _rows(store, f"SELECT src AS node FROM interactions WHERE {_WHERE} UNION "
                       f"SELECT dst AS node FROM interactions WHERE {_WHERE} ORDER BY node",
                {"r": run_id})
    node_ids = ids[:, 0].astype(np.int64)
    # numpy's 'lower' quantile of the sorted float32 times is the float32 time at index
    # floor(q * (n - 1)); float32 rounding is monotone, so that is the stored time there.
    t_train = np.float32(_time_at(store, run_id, int(np.floor(train * (n - 1)))))
    t_val = np.float32(_time_at(store, run_id, int(np.floor((train + val) * (n - 1)))))
    train_end = _count_upto32(store, run_id, t_train)
    val_end = _count_upto32(store, run_id, t_val)
    if not (0 < train_end < val_end < n):
        raise SignsimError(
            f"Cannot split {n} events into non-empty train/val/test periods by time "
            "(too few events or too few distinct times)."
        )
    split = TimeSplit(train_end=train_end, val_end=val_end, n=n, train_time=float(t_train),
                      val_time=float(t_val))
    return StreamInfo(run_id=run_id, n_events=n, node_ids=node_ids, split=split)


def iter_event_chunks(
    store: Store, info: StreamInfo, start: int = 0, end: int | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Iterator[tuple[int, SignedEvents]]:
    """Chunks of events ``[start, end)`` in ``(t, seq)`` order, read by keyset pagination.

    Args:
        store: The open store.
        info: From :func:`stream_info` (node id space).
        start: First event index.
        end: End index (default: every event).
        chunk: Rows per query.

    Yields:
        ``(offset, events)``: the index of the chunk's first event and the chunk (node
        indices in ``info``'s id space, float32 times, as :func:`load_events`).
    """
    if chunk < 1:
        raise SignsimError(f"Chunk size must be at least 1, got {chunk}.")
    end = info.n_events if end is None else min(end, info.n_events)
    pos = start
    key: tuple[float, int] | None = None
    if start > 0 and start < end:
        df = store.frame(f"SELECT t, seq FROM interactions WHERE {_WHERE} ORDER BY t, seq "
                         "LIMIT 1 OFFSET :k", {"r": info.run_id, "k": start - 1})
        key = (float(df["t"].iloc[0]), int(df["seq"].iloc[0]))
    while pos < end:
        limit = min(chunk, end - pos)
        if key is None:
            a = _rows(store, f"SELECT {_COLS} FROM interactions WHERE {_WHERE} "
                             "ORDER BY t, seq LIMIT :n", {"r": info.run_id, "n": limit})
        else:
            a = _rows(store,
                      f"SELECT {_COLS} FROM interactions WHERE {_WHERE} AND t >= :t "
                      "AND (t > :t OR seq > :s) ORDER BY t, seq LIMIT :n",
                      {"r": info.run_id, "t": key[0], "s": key[1], "n": limit})
        if len(a) == 0:
            raise SignsimError(f"Run {info.run_id} has fewer events than when it was opened "
                               f"({pos} < {end}); was it changed while training?")
        # ids, seq and signs are integers well below 2**53: exact in float64
        seq, t = a[:, 0].astype(np.int64), a[:, 1]
        key = (float(t[-1]), int(seq[-1]))
        src = np.searchsorted(info.node_ids, a[:, 2].astype(np.int64))
        dst = np.searchsorted(info.node_ids, a[:, 3].astype(np.int64))
        events = SignedEvents(
            src=torch.from_numpy(src.astype(np.int64)),
            dst=torch.from_numpy(dst.astype(np.int64)),
            t=torch.from_numpy(t.astype(np.float32)),
            sign=torch.from_numpy(a[:, 4].astype(np.float32)),
            weight=torch.from_numpy(a[:, 5].astype(np.float32)),
            seq=seq, node_ids=info.node_ids, run_id=info.run_id,
        )
        yield pos, events
        pos += len(events)


def stream_batches(
    chunks: Iterable[tuple[int, SignedEvents]], batch_size: int, first: int | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[EventBatch]:
    """Consecutive training batches over streamed chunks (batches may span chunks).

    Args:
        chunks: ``(offset, events)`` pairs of consecutive chunks (:func:`iter_event_chunks`).
        batch_size: Events per batch.
        first: Size of the first batch (random chunk scheduling); default ``batch_size``.
        device: Where the batches go.
    """
    if batch_size < 1:
        raise SignsimError(f"Batch size must be at least 1, got {batch_size}.")
    want = batch_size if not first else first
    parts: list[EventBatch] = []
    have = 0
    for offset, ev in chunks:
        ev = ev.to(device)
        a, n = 0, len(ev)
        while a < n:
            take = min(want - have, n - a)
            parts.append(replace(ev.batch(a, a + take), start=offset + a))
            have += take
            a += take
            if have == want:
                yield _join(parts)
                parts, have, want = [], 0, batch_size
    if parts:
        yield _join(parts)


def _join(parts: list[EventBatch]) -> EventBatch:
    if len(parts) == 1:
        return parts[0]
    return EventBatch(start=parts[0].start, src=torch.cat([p.src for p in parts]),
                      dst=torch.cat([p.dst for p in parts]), t=torch.cat([p.t for p in parts]),
                      sign=torch.cat([p.sign for p in parts]),
                      weight=torch.cat([p.weight for p in parts]))


def load_window(
    store: Store, info: StreamInfo, start: int, end: int, chunk: int = DEFAULT_CHUNK
) -> SignedEvents:
    """Events ``[start, end)`` as one in-memory stream (index 0 = event ``start``)."""
    got = [ev for _, ev in iter_event_chunks(store, info, start, end, chunk)]
    if not got:
        raise SignsimError(f"Empty window [{start}, {end}) of run {info.run_id}.")
    return SignedEvents(
        src=torch.cat([e.src for e in got]), dst=torch.cat([e.dst for e in got]),
        t=torch.cat([e.t for e in got]), sign=torch.cat([e.sign for e in got]),
        weight=torch.cat([e.weight for e in got]), seq=np.concatenate([e.seq for e in got]),
        node_ids=info.node_ids, run_id=info.run_id,
    )
