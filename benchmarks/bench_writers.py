"""PostgreSQL writer beside its floors, in the same run; prints JSON.

The rows: a simulated run's events (``--agents`` people, mechanistic rules, seed 1, about
``--events`` events), made once in memory. Then, in a new database on the server of
``--pg-url`` (dropped afterwards), each ``--repeats`` times in turn, every variant into a
run of its own, in batches of ``recording.flush_rows`` rows, one transaction per batch:

* ``signsim``: :class:`sim.store.writer.EventWriter` on its background thread (binary COPY
  encoded from the numpy columns, the run's counter updated in each batch's transaction),
  timed from the first batch handed to it to the last commit;
* ``floor_write_row``: a plain psycopg binary COPY of the same rows built beforehand as
  Python tuples (``copy.write_row`` with the column types set);
* ``floor_bytes``: the same rows already encoded, only sent (``copy.write``) and committed:
  the database's own speed on this table;
* ``floor_bytes_with_run_foreign_key``: ``floor_bytes`` into a second database whose
  ``interactions.run_id`` references ``runs.id`` (the schema before issue 11), to show
  what the per-row foreign-key check costs.

Then two writers at once (two processes, a run each, same rows): the aggregate events/s
of ``signsim`` and of ``floor_bytes``. Last, end to end, ``signsim simulate --agents 10000
--horizon 100 --seed 1`` into the PostgreSQL database and into a SQLite file, each
``--e2e-repeats`` times: the events/s the command prints (a fresh process: it includes
loading the compiled kernels), and the same run in this process once they are loaded.

Usage:
  python benchmarks/bench_writers.py [--pg-url URL] [--events 1000000] [--repeats 3]
      [--e2e-repeats 3] [--skip-e2e]
  --pg-url defaults to $SIGNSIM_TEST_PG_URL; the role must be allowed to create databases.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from sim.config import SimConfig
from sim.contract import BLOCKS, CAUSES, EventBatch
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder
from sim.engine.simulate import simulate
from sim.store import pg_copy
from sim.store.database import open_store
from sim.store.writer import EVENT_FIELDS, EventWriter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import scratch_pg_database  # noqa: E402

TYPES = ["int4", "int4", "float8", "int4", "int4", "int2", "float8", "bool", "varchar",
         "varchar"]


def make_batches(n_agents: int, n_events: int) -> list[EventBatch]:
    """The engine's event batches of a run of about ``n_events`` events (in memory)."""
    cfg = SimConfig(horizon=1.0)
    cfg.population.n_agents = n_agents
    cfg.recording.metric_cadence = 0.0
    probe = SocialModel(cfg, seed=1)
    cfg.horizon = n_events / float(probe.population.effective_rates().sum())
    recorder = Recorder(None, keep_events=True)
    SocialModel(cfg, seed=1, recorder=recorder).run()
    return recorder.batches


def flushes(batches: list[EventBatch], flush_rows: int) -> list[dict[str, np.ndarray]]:
    """The batches grouped as the writer groups them (a flush once ``flush_rows`` are in)."""
    out, group, size = [], [], 0
    for b in batches:
        group.append(b)
        size += len(b)
        if size >= flush_rows:
            out.append({f: np.concatenate([getattr(x, f) for x in group]) for f in EVENT_FIELDS})
            group, size = [], 0
    if group:
        out.append({f: np.concatenate([getattr(x, f) for x in group]) for f in EVENT_FIELDS})
    return out


@contextmanager
def new_database(pg_url: str) -> Iterator[str]:
    """A new database on the server of ``pg_url``, with signsim's schema; dropped after."""
    with scratch_pg_database(pg_url, "signsim_bench") as url:
        open_store(url).dispose()
        yield url


def _new_run(url: str, label: str) -> int:
    store = open_store(url)
    run_id = store.create_run(scenario="bench-writers", arm=label)
    store.dispose()
    return run_id


def run_signsim(url: str, batches: list[EventBatch], flush_rows: int,
                barrier: Any = None) -> tuple[int, float, float]:
    """Rows, start and end (``time.monotonic``) through the event writer on its thread."""
    store = open_store(url)
    run_id = store.create_run(scenario="bench-writers", arm="signsim")
    writer = EventWriter(store, run_id, flush_rows=flush_rows, background=True)
    assert writer.binary_copy
    if barrier is not None:
        barrier.wait()
    start = time.monotonic()
    for b in batches:
        writer.add(b)
    writer.close()
    end = time.monotonic()
    assert store.run(run_id)["n_interactions"] == writer.written
    store.dispose()
    return writer.written, start, end


def run_write_row(url: str, groups: list[dict[str, np.ndarray]]) -> tuple[int, float, float]:
    """Rows, start and end of a plain psycopg binary COPY of pre-built Python rows."""
    run_id = _new_run(url, "floor_write_row")
    cause = np.array(CAUSES, dtype=object)
    block = np.array(BLOCKS, dtype=object)
    rows, seq = [], 0
    for g in groups:
        n = len(g["t"])
        rows.append(list(zip([run_id] * n, range(seq, seq + n), g["t"].tolist(),
                             g["src"].tolist(), g["dst"].tolist(), g["sign"].tolist(),
                             g["weight"].tolist(), (g["blocked"] == 0).tolist(),
                             cause[g["cause"]].tolist(), block[g["blocked"]].tolist(),
                             strict=True)))
        seq += n
    with psycopg.connect(url) as con:
        start = time.monotonic()
        for batch in rows:
            with con.cursor() as cur, cur.copy(pg_copy.INTERACTIONS_COPY_SQL) as copy:
                copy.set_types(TYPES)
                for row in batch:
                    copy.write_row(row)
            con.commit()
        end = time.monotonic()
    return seq, start, end


def encoded(run_id: int, groups: list[dict[str, np.ndarray]]) -> list[bytes]:
    """The binary COPY streams of the groups, rows numbered from 0."""
    out, seq = [], 0
    for g in groups:
        out.append(pg_copy.encode_interactions(run_id, seq, g, CAUSES, BLOCKS).tobytes())
        seq += len(g["t"])
    return out


def run_bytes(url: str, groups: list[dict[str, np.ndarray]],
              barrier: Any = None) -> tuple[int, float, float]:
    """Rows, start and end of sending and committing the already encoded streams."""
    run_id = _new_run(url, "floor_bytes")
    payloads = encoded(run_id, groups)
    with psycopg.connect(url) as con:
        if barrier is not None:
            barrier.wait()
        start = time.monotonic()
        for p in payloads:
            with con.cursor() as cur, cur.copy(pg_copy.INTERACTIONS_COPY_SQL) as copy:
                copy.write(p)
            con.commit()
        end = time.monotonic()
    return sum(len(g["t"]) for g in groups), start, end


def _child(kind: str, url: str, batches: list[EventBatch], flush_rows: int,
           barrier: Any, results: Any) -> None:
    """One of the concurrent writers: warm up, wait for the others, write, report."""
    pg_copy.encode_interactions(0, 0, {f: getattr(batches[0], f) for f in EVENT_FIELDS},
                                CAUSES, BLOCKS)  # load the compiled encoder first
    if kind == "signsim":
        results.put(run_signsim(url, batches, flush_rows, barrier))
    else:
        results.put(run_bytes(url, flushes(batches, flush_rows), barrier))


def concurrent(kind: str, url: str, batches: list[EventBatch], flush_rows: int,
               writers: int = 2) -> float:
    """Aggregate events/s of ``writers`` processes writing a run each at once."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(kind, url, batches, flush_rows, barrier, results))
             for _ in range(writers)]
    for p in procs:
        p.start()
    got = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    return sum(n for n, _, _ in got) / (max(e for *_, e in got) - min(s for _, s, _ in got))


def simulate_in_process(db: str) -> float:
    """Events/s of the same run through ``sim.engine.simulate.simulate`` in this process."""
    return simulate(db, n_agents=10_000, horizon=100.0, seed=1).events_per_s


def simulate_cli(db: str) -> float:
    """The events/s ``signsim simulate --agents 10000 --horizon 100 --seed 1`` prints."""
    out = subprocess.run(
        [sys.executable, "-c", "from cli import app; app()", "simulate", "--agents", "10000",
         "--horizon", "100", "--seed", "1", "--db", db, "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    found = re.search(r"\(([\d,]+) events/s\)", out)
    assert found is not None, out
    return float(found.group(1).replace(",", ""))


def main() -> None:
    """Run every measurement and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("SIGNSIM_TEST_PG_URL"))
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--e2e-repeats", type=int, default=3)
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    if not args.pg_url:
        parser.error("--pg-url (or SIGNSIM_TEST_PG_URL) is required")
    flush_rows = SimConfig().recording.flush_rows
    batches = make_batches(args.agents, args.events)
    groups = flushes(batches, flush_rows)
    n_events = sum(len(b) for b in batches)
    rates: dict[str, list[float]] = {k: [] for k in (
        "signsim", "floor_write_row", "floor_bytes", "floor_bytes_with_run_foreign_key")}
    with new_database(args.pg_url) as url, new_database(args.pg_url) as fk_url:
        with psycopg.connect(fk_url, autocommit=True) as con:
            con.execute("ALTER TABLE interactions ADD CONSTRAINT interactions_run_id_fkey "
                        "FOREIGN KEY (run_id) REFERENCES runs (id)")
        run_signsim(url, batches[:20], flush_rows)  # compile and load the encoder
        for k in range(args.repeats):
            order = [("signsim", lambda: run_signsim(url, batches, flush_rows)),
                     ("floor_write_row", lambda: run_write_row(url, groups)),
                     ("floor_bytes", lambda: run_bytes(url, groups)),
                     ("floor_bytes_with_run_foreign_key", lambda: run_bytes(fk_url, groups))]
            for name, fn in order[k % 4:] + order[:k % 4]:
                n, start, end = fn()
                rates[name].append(n / (end - start))
        two = {"signsim": concurrent("signsim", url, batches, flush_rows),
               "floor_bytes": concurrent("bytes", url, batches, flush_rows)}
        e2e: dict[str, list[float]] = {"postgresql": [], "sqlite": []}
        warm: dict[str, list[float]] = {"postgresql": [], "sqlite": []}
        if not args.skip_e2e:
            with tempfile.TemporaryDirectory() as tmp:
                simulate(str(Path(tmp) / "warm.db"), n_agents=300, horizon=2.0, seed=0)
                for k in range(args.e2e_repeats):
                    e2e["postgresql"].append(simulate_cli(url))
                    e2e["sqlite"].append(simulate_cli(str(Path(tmp) / f"e2e{k}.db")))
                    warm["postgresql"].append(simulate_in_process(url))
                    warm["sqlite"].append(simulate_in_process(str(Path(tmp) / f"warm{k}.db")))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({
        "events": n_events, "flush_rows": flush_rows, "repeats": args.repeats,
        "events_per_s_median": {k: round(v) for k, v in med.items()},
        "events_per_s_all": {k: [round(x) for x in v] for k, v in rates.items()},
        "signsim_over_floor_write_row": round(med["signsim"] / med["floor_write_row"], 3),
        "signsim_over_floor_bytes": round(med["signsim"] / med["floor_bytes"], 3),
        "foreign_key_floor_over_floor_bytes": round(
            med["floor_bytes_with_run_foreign_key"] / med["floor_bytes"], 3),
        "targets": {"over_floor_at_least": 0.8, "single_writer_events_per_s_at_least": 400_000},
        "two_writers_aggregate_events_per_s": {k: round(v) for k, v in two.items()},
        "simulate_cli_10k_agents_100_days_events_per_s": {
            k: {"median": round(statistics.median(v)), "all": [round(x) for x in v]}
            for k, v in e2e.items() if v},
        "simulate_in_process_warm_events_per_s": {
            k: {"median": round(statistics.median(v)), "all": [round(x) for x in v]}
            for k, v in warm.items() if v},
        "cpu_count": os.cpu_count(),
    }, indent=1))


if __name__ == "__main__":
    main()
