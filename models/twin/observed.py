"""The observed run a twin learns from: its events, its nodes, and the split in time.

Node ids are renumbered by first appearance (as source or target), so the nodes seen
before the split are ``0 .. n_known - 1`` and nodes that first appear after it come next.
Generated runs use the same ids as agent ids, which lets every statistic compare real
and generated events node for node. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.contract import KIND_CODES
from sim.errors import SignsimError
from sim.store.database import Store

__all__ = ["Observed", "Stream", "TwinSplit", "load_observed", "split_observed"]


@dataclass
class Stream:
    """Delivered signed events in time order (``t`` in days, ascending).

    Attributes:
        t: Event times.
        src: Acting node.
        dst: Target node.
        sign: +1 or -1.
        weight: Magnitude in [0, 1].
    """

    t: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    sign: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def slice(self, start: int, end: int) -> Stream:
        """Events ``[start:end]``."""
        return Stream(self.t[start:end], self.src[start:end], self.dst[start:end],
                      self.sign[start:end], self.weight[start:end])

    @classmethod
    def from_columns(cls, t: np.ndarray, src: np.ndarray, dst: np.ndarray, sign: np.ndarray,
                     weight: np.ndarray) -> Stream:
        """Typed copies of the columns, stably sorted by time."""
        order = np.argsort(np.asarray(t, dtype=np.float64), kind="stable")
        return cls(
            t=np.asarray(t, dtype=np.float64)[order],
            src=np.asarray(src, dtype=np.int64)[order],
            dst=np.asarray(dst, dtype=np.int64)[order],
            sign=np.where(np.asarray(sign)[order] > 0, 1, -1).astype(np.int8),
            weight=np.abs(np.asarray(weight, dtype=np.float64)[order]),
        )


@dataclass
class Observed:
    """A run's delivered events with renumbered nodes and their attributes.

    Attributes:
        run_id: The run in the database.
        name: Its scenario name.
        stream: All delivered events.
        node_ids: Original agent id of each renumbered node.
        kind: Kind code per node (``sim.contract.KIND_CODES``; imported nodes are citizens).
        group: Group per node.
        opinion: Initial opinion per node.
        span: Run length in days (the run's horizon, or the last event's time).
        snapshots: Stored opinion snapshots as ``(t, node, opinion, negativity)`` arrays
            sorted by time (empty for imported networks and runs without snapshots).
    """

    run_id: int
    name: str
    stream: Stream
    node_ids: np.ndarray
    kind: np.ndarray
    group: np.ndarray
    opinion: np.ndarray
    span: float
    snapshots: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = (
        np.empty(0), np.empty(0, dtype=np.int64), np.empty(0), np.empty(0))

    def attributes_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Opinion and negativity of every node as last recorded at or before ``t``."""
        opinion = self.opinion.copy()
        negativity = np.zeros(self.n_nodes)
        ts, node, op, neg = self.snapshots
        k = int(np.searchsorted(ts, t, side="right"))
        opinion[node[:k]] = op[:k]  # later rows overwrite earlier ones
        negativity[node[:k]] = neg[:k]
        return opinion, negativity

    @property
    def n_nodes(self) -> int:
        """Number of nodes that appear in the stream."""
        return int(self.node_ids.shape[0])


@dataclass
class TwinSplit:
    """An observed run cut at ``t_split``: what a twin may learn from, and what it must match.

    Attributes:
        observed: The whole observed run.
        history: Events before the split (everything a twin may use).
        future: Held-out events (only their span's length reaches a twin).
        t_split: Split time.
        t_end: End of the span to generate.
        n_known: Nodes seen before the split (ids ``0 .. n_known - 1``).
    """

    observed: Observed
    history: Stream
    future: Stream
    t_split: float
    t_end: float
    n_known: int

    @property
    def horizon(self) -> float:
        """Length of the held-out span in days."""
        return self.t_end - self.t_split


def _renumber(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids by first appearance: returns (new src, new dst, original id of each new id)."""
    both = np.empty(2 * src.shape[0], dtype=np.int64)
    both[0::2], both[1::2] = src, dst
    uniq, first = np.unique(both, return_index=True)
    order = np.argsort(first, kind="stable")
    originals = uniq[order]
    new_of = np.empty(uniq.shape[0], dtype=np.int64)
    new_of[order] = np.arange(uniq.shape[0])
    pos = np.searchsorted(uniq, both)
    mapped = new_of[pos]
    return mapped[0::2], mapped[1::2], originals


def load_observed(store: Store, run_id: int) -> Observed:
    """Read a run's delivered events and its agents' attributes.

    Raises:
        SignsimError: Unknown run, or fewer than 10 delivered events.
    """
    run = store.run(run_id)
    cols = store.interactions(run_id, delivered_only=True)
    if len(cols.get("t", [])) < 10:
        raise SignsimError(
            f"Run {run_id} ({run['scenario']}) has {len(cols.get('t', []))} delivered "
            "interactions; a twin needs at least 10 to learn from."
        )
    stream = Stream.from_columns(cols["t"], cols["src"], cols["dst"], cols["sign"],
                                 cols["weight"])
    src, dst, originals = _renumber(stream.src, stream.dst)
    stream = Stream(stream.t, src, dst, stream.sign, stream.weight)
    agents = store.frame(
        'SELECT agent_id, kind, "group", initial_opinion FROM agents WHERE run_id = :r',
        {"r": run_id},
    )
    n = originals.shape[0]
    kind = np.zeros(n, dtype=np.int8)
    group = np.zeros(n, dtype=np.int32)
    opinion = np.zeros(n, dtype=np.float64)
    if not agents.empty:
        lookup = {int(a): i for i, a in enumerate(agents["agent_id"].to_numpy())}
        rows = np.array([lookup.get(int(a), -1) for a in originals])
        has = rows >= 0
        codes = {k: c for c, k in enumerate(KIND_CODES)}
        kinds = np.array([codes.get(str(k), 0) for k in agents["kind"]], dtype=np.int8)
        kind[has] = kinds[rows[has]]
        group[has] = agents["group"].to_numpy()[rows[has]]
        opinion[has] = agents["initial_opinion"].to_numpy(dtype=np.float64)[rows[has]]
    horizon = run.get("horizon")
    span = float(horizon) if horizon else float(stream.t[-1])
    snaps = store.frame("SELECT t, agent_id, opinion, negativity FROM opinions WHERE run_id = :r "
                        "ORDER BY t, agent_id", {"r": run_id})
    ids = snaps["agent_id"].to_numpy(dtype=np.int64)
    order = np.argsort(originals)
    pos = np.minimum(np.searchsorted(originals[order], ids), n - 1)
    known = originals[order][pos] == ids
    snapshots = (snaps["t"].to_numpy(dtype=np.float64)[known], order[pos][known].astype(np.int64),
                 snaps["opinion"].to_numpy(dtype=np.float64)[known],
                 snaps["negativity"].to_numpy(dtype=np.float64)[known])
    return Observed(run_id=run_id, name=str(run["scenario"]), stream=stream,
                    node_ids=originals, kind=kind, group=group, opinion=opinion,
                    span=max(span, float(stream.t[-1])), snapshots=snapshots)


def split_observed(observed: Observed, split: float = 0.7) -> TwinSplit:
    """Cut at the ``split`` quantile of events; simultaneous events stay together.

    Raises:
        SignsimError: A fraction outside (0, 1) or a split that leaves a side empty.
    """
    if not 0.0 < split < 1.0:
        raise SignsimError(f"--split must lie strictly between 0 and 1, got {split}.")
    s = observed.stream
    n = len(s)
    t_split = float(s.t[min(int(split * n), n - 1)])
    k = int(np.searchsorted(s.t, t_split, side="left"))
    if k < 5 or k >= n:
        raise SignsimError(
            f"Splitting run {observed.run_id} at {split:g} leaves {k} events to learn from "
            f"and {n - k} to hold out; both sides need events."
        )
    history = s.slice(0, k)
    n_known = int(max(history.src.max(), history.dst.max())) + 1
    return TwinSplit(observed=observed, history=history, future=s.slice(k, n),
                     t_split=t_split, t_end=observed.span, n_known=n_known)
