"""Import real signed networks into the store as ``observed`` runs.

One format is supported: ``snap-signed``, the SNAP weighted signed edge lists (Bitcoin
OTC, Bitcoin Alpha): one interaction per line, ``SOURCE,TARGET,RATING,TIME`` with an
integer rating in ``[-10, 10]`` (never 0) and a unix time in seconds.

An import is all or nothing: the whole file is read and validated before anything is
written, and if writing fails part way the run and its rows are deleted again. The
stored run has ``kind='observed'``, ``scenario`` = the file stem (or ``name``),
``arm='observed'``, ``seed=0``; each interaction gets ``sign`` from the rating, ``weight``
= ``|rating| / 10`` (so the signed weight ``sign * weight`` lies in ``[-1, 1]``), ``t`` in
days since the first event, ``delivered=True`` and ``cause='observed'``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import delete

from sim.contract import EventBatch
from sim.errors import SignsimError
from sim.store.database import Store, open_store
from sim.store.schema import AgentRow, Interaction, Run
from sim.store.writer import EventWriter

__all__ = [
    "FORMATS",
    "ImportSummary",
    "SignedEdgeList",
    "import_network",
    "read_snap_signed",
]

FORMATS = ("snap-signed",)
SECONDS_PER_DAY = 86_400.0
MAX_REPORTED_ERRORS = 5


@dataclass(frozen=True)
class SignedEdgeList:
    """A validated signed edge list, sorted by time.

    Attributes:
        src: Source node ids (the rater).
        dst: Target node ids (the ratee).
        rating: Raw ratings as read.
        time: Raw times (unix seconds) as read.
        line: 1-based line number in the file of each row.
    """

    src: np.ndarray
    dst: np.ndarray
    rating: np.ndarray
    time: np.ndarray
    line: np.ndarray

    def __len__(self) -> int:
        return int(self.src.shape[0])


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote.

    Attributes:
        run_id: The new observed run.
        scenario: Its scenario name (the file stem unless renamed).
        n_interactions: Rows written to ``interactions``.
        n_agents: Rows written to ``agents``.
        span_days: Time from the first to the last event, in days.
        negative_share: Share of interactions with sign -1.
    """

    run_id: int
    scenario: str
    n_interactions: int
    n_agents: int
    span_days: float
    negative_share: float


def read_snap_signed(path: str | Path) -> SignedEdgeList:
    """Read and validate a SNAP signed edge list.

    Blank lines and lines starting with ``#`` are skipped. Fields are separated by commas
    (or, failing that, by whitespace).

    Args:
        path: The file to read.

    Returns:
        The rows sorted by time (stable, so file order breaks ties).

    Raises:
        SignsimError: When the file is missing or unreadable, or any row is malformed; the
            message names the file, the line number and what is wrong with it.
    """
    p = Path(path)
    if not p.exists():
        raise SignsimError(f"Cannot import '{p}': the file does not exist.")
    if p.is_dir():
        raise SignsimError(f"Cannot import '{p}': it is a directory, not an edge-list file.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SignsimError(f"Cannot read '{p}': {exc}.") from None

    src: list[int] = []
    dst: list[int] = []
    rating: list[float] = []
    time: list[float] = []
    lines: list[int] = []
    errors: list[str] = []
    n_bad = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        row = raw.strip()
        if not row or row.startswith("#"):
            continue
        fields = [f.strip() for f in row.split(",")] if "," in row else row.split()
        problem = None
        if len(fields) != 4:
            problem = f"expected 4 fields SOURCE,TARGET,RATING,TIME, found {len(fields)}"
        else:
            try:
                s, d = int(fields[0]), int(fields[1])
            except ValueError:
                s = d = 0
                problem = "SOURCE and TARGET must be integers"
            if problem is None:
                try:
                    r = float(fields[2])
                    tm = float(fields[3])
                except ValueError:
                    r = tm = 0.0
                    problem = "RATING and TIME must be numbers"
            if problem is None:
                if not (math.isfinite(r) and math.isfinite(tm)):
                    problem = "RATING and TIME must be finite"
                elif r == 0:
                    problem = "RATING 0 has no sign (ratings are -10..-1 or 1..10)"
                elif abs(r) > 10:
                    problem = f"RATING {fields[2]} is outside -10..10"
        if problem is not None:
            n_bad += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(f"line {number}: {problem} (got {row[:80]!r})")
            continue
        src.append(s)
        dst.append(d)
        rating.append(r)
        time.append(tm)
        lines.append(number)
    if n_bad:
        more = f" ({n_bad - len(errors)} more bad rows not shown)" if n_bad > len(errors) else ""
        raise SignsimError(
            f"'{p}' is not a valid snap-signed edge list; nothing was imported. "
            + "; ".join(errors) + more + "."
        )
    if not src:
        raise SignsimError(f"'{p}' holds no interactions; nothing was imported.")
    t_arr = np.asarray(time, dtype=np.float64)
    order = np.argsort(t_arr, kind="stable")
    return SignedEdgeList(
        src=np.asarray(src, dtype=np.int64)[order],
        dst=np.asarray(dst, dtype=np.int64)[order],
        rating=np.asarray(rating, dtype=np.float64)[order],
        time=t_arr[order],
        line=np.asarray(lines, dtype=np.int64)[order],
    )


def _delete_run(store: Store, run_id: int) -> None:
    """Remove a run and every row that refers to it (one transaction)."""
    with store.begin() as conn:
        conn.execute(delete(Interaction).where(Interaction.run_id == run_id))
        conn.execute(delete(AgentRow).where(AgentRow.run_id == run_id))
        conn.execute(delete(Run).where(Run.id == run_id))


def import_network(
    db: str | Store, path: str | Path, fmt: str = "snap-signed", name: str | None = None
) -> ImportSummary:
    """Import a signed edge-list file as a complete ``observed`` run.

    Args:
        db: A database path/URL or an open :class:`~sim.store.database.Store`.
        path: The edge-list file.
        fmt: The file format; only ``snap-signed`` is known.
        name: The run's scenario name; defaults to the file stem.

    Returns:
        A summary of what was written.

    Raises:
        SignsimError: Unknown format, missing file, malformed rows (nothing written) or a
            database failure (the partial run is removed).
    """
    if fmt not in FORMATS:
        raise SignsimError(
            f"Unknown import format '{fmt}'. Known formats: {', '.join(FORMATS)}."
        )
    p = Path(path)
    edges = read_snap_signed(p)
    store = db if isinstance(db, Store) else open_store(db)

    t0 = float(edges.time[0])
    t_days = (edges.time - t0) / SECONDS_PER_DAY
    sign = np.where(edges.rating > 0, 1, -1).astype(np.int64)
    weight = np.abs(edges.rating) / 10.0
    span = float(t_days[-1])
    nodes, out_counts = np.unique(edges.src, return_counts=True)
    all_nodes = np.unique(np.concatenate([edges.src, edges.dst]))
    sent = dict(zip(nodes.tolist(), out_counts.tolist(), strict=True))
    rate_span = span if span > 0 else 1.0

    provenance = {
        "source_file": p.name,
        "format": fmt,
        "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
        "time_origin_unix": t0,
        "time_unit": "days",
        "weight": "abs(rating) / 10",
    }
    scenario = name or p.stem
    n = len(edges)
    codes = np.zeros(n, dtype=np.int64)  # cause "observed", delivered
    events = EventBatch(t=np.asarray(t_days, dtype=np.float64), src=np.asarray(edges.src),
                        dst=np.asarray(edges.dst), sign=np.asarray(sign),
                        weight=np.asarray(weight), blocked=codes, cause=codes)
    agent_ids = [int(a) for a in all_nodes]
    agent_rates = [sent.get(a, 0) / rate_span for a in agent_ids]

    run_id = store.create_run(
        scenario=scenario, arm="observed", seed=0, kind="observed",
        scenario_text=json.dumps(provenance, sort_keys=True), horizon=span,
    )
    try:
        writer = EventWriter(store, run_id, flush_rows=n + 1, cause_names=("observed",),
                             block_names=(None,))
        writer.add(events)
        writer.close()
        k = len(agent_ids)
        store.write_agents(run_id, agent_ids, ["observed"] * k, [0] * k, [0.0] * k, agent_rates)
        store.finish_run(run_id, "complete")
    except BaseException as exc:
        _delete_run(store, run_id)
        if isinstance(exc, SignsimError | KeyboardInterrupt):
            raise
        raise SignsimError(
            f"Importing '{p}' failed while writing to the database ({exc}); the partial "
            "run was removed."
        ) from None
    return ImportSummary(
        run_id=run_id,
        scenario=scenario,
        n_interactions=len(edges),
        n_agents=len(agent_ids),
        span_days=span,
        negative_share=float((sign < 0).mean()),
    )
