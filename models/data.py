"""From the store to chronological event tensors, splits and batches.

A run's interactions become one :class:`SignedEvents` object: parallel tensors ``src``,
``dst``, ``t``, ``sign`` (+1/-1) and ``weight`` (the stored magnitude; the signed weight
is ``sign * weight``), sorted by time (``seq`` breaks ties). Sources and destinations
share one node id space ``0..num_nodes-1``; ``node_ids`` maps it back to the stored ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from sim.errors import SignsimError
from sim.store.database import Store

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EventBatch",
    "SignedEvents",
    "TimeSplit",
    "events_from_arrays",
    "first_batch_size",
    "iter_batches",
    "load_events",
    "resolve_run",
    "split_by_time",
]

DEFAULT_BATCH_SIZE = 200


@dataclass(frozen=True)
class EventBatch:
    """Consecutive events ``[start, start + len)`` of a stream.

    Attributes:
        start: Index of the first event in the stream.
        src: Source node indices.
        dst: Destination node indices.
        t: Event times.
        sign: +1 or -1 (float).
        weight: Non-negative magnitudes; signed weight is ``sign * weight``.
    """

    start: int
    src: Tensor
    dst: Tensor
    t: Tensor
    sign: Tensor
    weight: Tensor

    def __len__(self) -> int:
        return int(self.src.shape[0])

    @property
    def signed_weight(self) -> Tensor:
        """``sign * weight`` for each event."""
        return self.sign * self.weight


@dataclass(frozen=True)
class SignedEvents:
    """A chronological signed interaction stream.

    Attributes:
        src: Source node indices (long).
        dst: Destination node indices (long).
        t: Times (float, non-decreasing).
        sign: +1 / -1 (float).
        weight: Magnitudes (float).
        seq: The stored ``seq`` of each event (numpy, int64).
        node_ids: Stored node id of each node index (numpy, int64).
        run_id: The run the events came from (``-1`` when built from arrays).
    """

    src: Tensor
    dst: Tensor
    t: Tensor
    sign: Tensor
    weight: Tensor
    seq: np.ndarray
    node_ids: np.ndarray
    run_id: int = -1

    def __len__(self) -> int:
        return int(self.src.shape[0])

    @property
    def num_nodes(self) -> int:
        """Size of the node id space."""
        return int(self.node_ids.shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.src.device

    def to(self, device: torch.device | str) -> SignedEvents:
        """A copy with every tensor on ``device``."""
        return replace(
            self, src=self.src.to(device), dst=self.dst.to(device), t=self.t.to(device),
            sign=self.sign.to(device), weight=self.weight.to(device),
        )

    def batch(self, start: int, end: int) -> EventBatch:
        """Events ``[start, end)`` as a batch."""
        return EventBatch(
            start=start, src=self.src[start:end], dst=self.dst[start:end],
            t=self.t[start:end], sign=self.sign[start:end], weight=self.weight[start:end],
        )


@dataclass(frozen=True)
class TimeSplit:
    """A chronological split of a stream into train, validation and test periods.

    Train is ``[0, train_end)``, validation ``[train_end, val_end)``, test ``[val_end, n)``.

    Attributes:
        train_end: First index after the training period.
        val_end: First index after the validation period.
        n: Number of events.
        train_time: Last time that belongs to training.
        val_time: Last time that belongs to validation.
    """

    train_end: int
    val_end: int
    n: int
    train_time: float
    val_time: float

    def range(self, part: str) -> tuple[int, int]:
        """``(start, end)`` of ``train``, ``val`` or ``test``."""
        ranges = {
            "train": (0, self.train_end),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, self.n),
        }
        if part not in ranges:
            raise SignsimError(f"Unknown split part '{part}'; use train, val or test.")
        return ranges[part]


def events_from_arrays(
    src: np.ndarray | list[int],
    dst: np.ndarray | list[int],
    t: np.ndarray | list[float],
    sign: np.ndarray | list[int],
    weight: np.ndarray | list[float],
    *,
    seq: np.ndarray | None = None,
    run_id: int = -1,
) -> SignedEvents:
    """Build a stream from arrays of stored ids (remapped to ``0..num_nodes-1``).

    Events are sorted by ``(t, seq)``; ``seq`` defaults to the input order.

    Raises:
        SignsimError: Arrays of different lengths, or a sign that is not +1/-1.
    """
    s = np.asarray(src, dtype=np.int64)
    d = np.asarray(dst, dtype=np.int64)
    tt = np.asarray(t, dtype=np.float64)
    sg = np.asarray(sign, dtype=np.int64)
    w = np.asarray(weight, dtype=np.float64)
    sq = np.arange(len(s), dtype=np.int64) if seq is None else np.asarray(seq, dtype=np.int64)
    if not (len(s) == len(d) == len(tt) == len(sg) == len(w) == len(sq)):
        raise SignsimError("src, dst, t, sign, weight and seq must have the same length.")
    if len(sg) and not np.isin(sg, (-1, 1)).all():
        raise SignsimError("Every sign must be +1 or -1.")
    order = np.lexsort((sq, tt))
    s, d, tt, sg, w, sq = s[order], d[order], tt[order], sg[order], w[order], sq[order]
    node_ids, inverse = np.unique(np.concatenate([s, d]), return_inverse=True)
    n = len(s)
    return SignedEvents(
        src=torch.from_numpy(inverse[:n].astype(np.int64)),
        dst=torch.from_numpy(inverse[n:].astype(np.int64)),
        t=torch.from_numpy(tt.astype(np.float32)),
        sign=torch.from_numpy(sg.astype(np.float32)),
        weight=torch.from_numpy(w.astype(np.float32)),
        seq=sq,
        node_ids=node_ids.astype(np.int64),
        run_id=run_id,
    )


def resolve_run(store: Store, ref: str | int) -> int:
    """Turn a run reference into a run id (:meth:`sim.store.database.Store.resolve_run`).

    Args:
        store: The open store.
        ref: A run id; ``latest`` or ``-1`` for the newest run, ``-2`` for the one
            before, ...; or the scenario name of a run (an imported network is named after
            its file stem), which picks the newest complete run of that name.

    Raises:
        SignsimError: No such run.
    """
    return store.resolve_run(ref)


def load_events(store: Store, run_id: int, *, delivered_only: bool = True) -> SignedEvents:
    """Read a run's interactions as a chronological stream.

    Args:
        store: The open store.
        run_id: The run to read.
        delivered_only: Skip interactions that an intervention blocked.

    Raises:
        SignsimError: Unknown run, or a run without (delivered) interactions.
    """
    run = store.run(run_id)
    cols = store.interactions(run_id, delivered_only=delivered_only)
    if len(cols.get("seq", [])) == 0:
        raise SignsimError(
            f"Run {run_id} ({run['scenario']}, status {run['status']}) has no "
            f"{'delivered ' if delivered_only else ''}interactions to learn from."
        )
    return events_from_arrays(
        cols["src"], cols["dst"], cols["t"], cols["sign"], cols["weight"],
        seq=cols["seq"], run_id=run_id,
    )


def split_by_time(events: SignedEvents, train: float = 0.70, val: float = 0.15) -> TimeSplit:
    """Split chronologically at the ``train`` and ``train + val`` quantiles of time.

    Events that share a time stay in the same part, so the split never separates
    simultaneous events.

    Raises:
        SignsimError: Fractions outside (0, 1), or a stream too short to give three
            non-empty parts.
    """
    if not (0 < train < 1 and 0 < val < 1 and train + val < 1):
        raise SignsimError(f"Bad split fractions train={train}, val={val}.")
    t = events.t.double().cpu().numpy()
    n = len(t)
    t_train = float(np.quantile(t, train, method="lower"))
    t_val = float(np.quantile(t, train + val, method="lower"))
    train_end = int(np.searchsorted(t, t_train, side="right"))
    val_end = int(np.searchsorted(t, t_val, side="right"))
    if not (0 < train_end < val_end < n):
        raise SignsimError(
            f"Cannot split {n} events into non-empty train/val/test periods by time "
            "(too few events or too few distinct times)."
        )
    return TimeSplit(train_end=train_end, val_end=val_end, n=n, train_time=t_train,
                     val_time=t_val)


def iter_batches(
    events: SignedEvents, start: int, end: int, batch_size: int = DEFAULT_BATCH_SIZE,
    first: int | None = None,
) -> Iterator[EventBatch]:
    """Consecutive batches of at most ``batch_size`` events covering ``[start, end)``.

    Args:
        events: The stream.
        start: First event.
        end: End of the range.
        batch_size: Events per batch.
        first: Size of the first batch (random chunk scheduling); default ``batch_size``.
    """
    if batch_size < 1:
        raise SignsimError(f"Batch size must be at least 1, got {batch_size}.")
    a, size = start, first or batch_size
    while a < end:
        b = min(a + size, end)
        yield events.batch(a, b)
        a, size = b, batch_size


def first_batch_size(batch_size: int, chunk_size: int, generator: torch.Generator) -> int | None:
    """Random chunk scheduling: the size of an epoch's first batch, or None for a full one.

    The training batch of ``batch_size`` events is cut into chunks of ``chunk_size``; the
    epoch starts with a batch of ``r * chunk_size`` events, ``r`` uniform in ``0 ..
    batch_size // chunk_size - 1`` (``r = 0``: a full first batch). Nothing is drawn when
    the batch holds a single chunk, so small-batch training is unchanged.
    """
    k = batch_size // chunk_size if chunk_size > 0 else 1
    if k <= 1:
        return None
    r = int(torch.randint(0, k, (1,), generator=generator))
    return r * chunk_size or None
