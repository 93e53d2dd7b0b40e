"""Simulation throughput and scale benchmark; prints JSON.

Part 1 (throughput): a full run at 10k agents -- mechanistic rules and SQLite
persistence, then the same again with the metrics computed every simulated day -- each
side by side with the raw floor: the very same interaction rows inserted into the same
schema with plain ``sqlite3.executemany``.

Part 2 (scale): 1M agents and 10M events into SQLite in a child process; reports peak
RSS and the wall time per event over [0, 1e5], [1e5, 1e6] and [1e6, 1e7] events (the
writer keeps the database within three flushes of the simulation; see ``_scale_child``).

Usage: python benchmarks/bench_sim.py [--events 1500000] [--scale-agents 1000000]
       [--scale-events 10000000] [--skip-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim.config import SimConfig
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder
from sim.engine.simulate import run_into_store, write_agent_rows
from sim.store.database import INTERACTION_COLUMNS, open_store


def _config(n_agents: int, horizon: float, metrics: bool = True) -> SimConfig:
    cfg = SimConfig(horizon=horizon)
    cfg.population.n_agents = n_agents
    cfg.recording.metric_cadence = 1.0 if metrics else 0.0
    return cfg


def _events_per_day(n_agents: int) -> float:
    model = SocialModel(_config(n_agents, 1.0), seed=0)
    return float(model.population.effective_rates().sum())


def throughput(n_events: int, tmp: Path, metrics: bool) -> dict[str, float]:
    """End-to-end events/s against the plain sqlite3 executemany floor."""
    n_agents = 10_000
    for name in ("warm.db", "ours.db", "floor.db"):
        for suffix in ("", "-wal", "-shm"):
            (tmp / (name + suffix)).unlink(missing_ok=True)
    horizon = n_events / _events_per_day(n_agents)
    warm = open_store(str(tmp / "warm.db"))  # compile / load the kernel first
    run_into_store(warm, _config(n_agents, 1.0), seed=99)
    warm.dispose()

    store = open_store(str(tmp / "ours.db"))
    result = run_into_store(store, _config(n_agents, horizon, metrics), seed=1)
    rows = store.frame(
        "SELECT " + ", ".join(f'"{c}"' for c in INTERACTION_COLUMNS)
        + " FROM interactions WHERE run_id = :r ORDER BY t, seq", {"r": result.run_id})
    store.dispose()
    tuples = list(rows.itertuples(index=False, name=None))
    tuples = [(int(a), int(b), float(c), int(d), int(e), int(f), float(g), bool(h), i, j)
              for a, b, c, d, e, f, g, h, i, j in tuples]

    floor_store = open_store(str(tmp / "floor.db"))  # same schema, created by signsim
    floor_store.create_run(scenario="floor")
    floor_store.dispose()
    con = sqlite3.connect(str(tmp / "floor.db"))
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    sql = f"INSERT INTO interactions VALUES ({','.join('?' * len(INTERACTION_COLUMNS))})"
    start = time.perf_counter()
    for k in range(0, len(tuples), 100_000):
        con.executemany(sql, tuples[k:k + 100_000])
        con.commit()
    floor_s = time.perf_counter() - start
    con.close()
    return {
        "agents": n_agents,
        "metrics_every_day": metrics,
        "events": result.events,
        "signsim_seconds": round(result.seconds, 3),
        "signsim_events_per_s": round(result.events_per_s),
        "floor_executemany_seconds": round(floor_s, 3),
        "floor_events_per_s": round(len(tuples) / floor_s),
        "signsim_over_floor_time": round(result.seconds / floor_s, 3),
    }


def _scale_child(n_agents: int, n_events: int, db: str) -> None:
    """Run in a child process: build, simulate, print marks as JSON.

    A mark is the wall time at which the simulation had handed its first ``m`` events to
    the writer; the writer's queue holds at most two flushes, so the database is never
    more than three flushes (``recording.flush_rows`` each) behind, and the time to commit
    the rest at the end is reported too. The clock starts once a short warm-up
    (compiling the kernels) is committed.
    """
    t0 = time.perf_counter()
    store = open_store(db)
    cfg = _config(n_agents, 1e9, metrics=False)
    run_id = store.create_run(scenario="scale", horizon=0.0)
    recorder = Recorder(store, run_id)
    model = SocialModel(cfg, seed=3, recorder=recorder)
    write_agent_rows(store, run_id, model)
    build_s = time.perf_counter() - t0
    horizon = n_events / float(model.population.effective_rates().sum())
    model.run(until=horizon * 1e-5)  # compile and load the kernels before the clock starts
    assert recorder.writer is not None
    recorder.writer.sync()
    base = model.events
    pending = [m for m in (10**5, 10**6, 10**7) if m <= n_events]
    marks = [(0, time.perf_counter())]
    step = horizon * 25_000 / n_events  # about 25k events per call (marks use exact counts)
    while model.events - base < n_events:
        model.run(until=model.env.now + step)
        if pending and model.events - base >= pending[0]:
            marks.append((model.events - base, time.perf_counter()))
            while pending and model.events - base >= pending[0]:
                pending.pop(0)
    handed = time.perf_counter()
    recorder.close(model)
    end = time.perf_counter()
    seg = {}
    for (n0, t_0), (n1, t_1) in zip(marks, marks[1:], strict=False):
        seg[f"us_per_event_{n0:.0e}_{n1:.0e}"] = round((t_1 - t_0) / (n1 - n0) * 1e6, 3)
    print(json.dumps({
        "agents": n_agents, "events": model.events, "build_seconds": round(build_s, 2),
        "simulate_seconds": round(end - marks[0][1], 2), **seg,
        "final_commit_seconds": round(end - handed, 3),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }))


def scale(n_agents: int, n_events: int, tmp: Path) -> dict[str, float]:
    """Run the scale part in a fresh process (its own peak RSS)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n_agents), str(n_events), str(tmp / "scale.db")],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    us = [v for k, v in result.items() if k.startswith("us_per_event")]
    if us:
        result["per_event_spread"] = round(max(us) / min(us) - 1.0, 3)
    result["db_bytes"] = os.path.getsize(tmp / "scale.db")
    return result


def main() -> None:
    """Parse options and print the benchmark JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_500_000)
    parser.add_argument("--scale-agents", type=int, default=1_000_000)
    parser.add_argument("--scale-events", type=int, default=10_000_000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _scale_child(int(args.child[0]), int(args.child[1]), args.child[2])
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        report: dict[str, object] = {
            "throughput": throughput(args.events, tmp, metrics=False),
            "throughput_with_metrics": throughput(args.events, tmp, metrics=True),
        }
        if not args.skip_scale:
            report["scale"] = scale(args.scale_agents, args.scale_events, tmp)
        report["cpu_count"] = os.cpu_count()
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
