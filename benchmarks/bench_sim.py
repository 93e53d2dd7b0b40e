"""Simulation throughput and scale benchmark; prints JSON.

Part 1 (throughput): a full run at 10k agents -- mechanistic rules and SQLite
persistence, then the same again with the metrics computed every simulated day -- each
side by side with the raw floor: the very same interaction rows inserted into the same
schema with plain ``sqlite3.executemany``.

Part 2 (scale), each step in a fresh child process (its own peak RSS):

* build (``--scale`` only): a model of ``--build-agents`` people (population, follow
  network, kernel state and Mesa's agent sets) beside the reference the model used to
  pay, the same number of Mesa agents made one by one (``mesa.Agent(model)``); writing
  their ``agents`` rows into SQLite is timed apart.
* runs: ``--scale-agents`` people and ``--scale-events`` events into each backend of
  ``--backends`` (PostgreSQL in a new database on the server of ``--pg-url``, dropped
  afterwards): the build, the wall time per event over each decade of events
  (``[1e5, 1e6]``, ``[1e6, 1e7]``, ... as far as the run goes; the writer keeps the
  database within three flushes of the simulation, see ``_run_child``), their spread
  (max / min - 1 over the whole decades from 1e5 events on), the final commit, the peak RSS.

Usage:
  python benchmarks/bench_sim.py [--events 1500000] [--skip-scale]
      part 1, then part 2's run into SQLite at 1M agents and 10M events
  python benchmarks/bench_sim.py --scale [--build-agents 1000000] [--scale-agents 10000000]
      [--scale-events 100000000] [--backends sqlite,postgresql] [--pg-url URL]
      part 2 only; --pg-url defaults to $SIGNSIM_TEST_PG_URL
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import scratch_pg_database  # noqa: E402


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


def _peak_rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def _build_child(n_agents: int, db: str) -> None:
    """Child: time a model's build, its agents rows, and Mesa agents made one by one."""
    import mesa

    warm0 = time.perf_counter()
    SocialModel(_config(60, 1.0, metrics=False), seed=0)  # load the compiled loops
    warm_s = time.perf_counter() - warm0
    t0 = time.perf_counter()
    model = SocialModel(_config(n_agents, 1.0, metrics=False), seed=3)
    build_s = time.perf_counter() - t0
    assert len(model.agents) == n_agents and model.agents[n_agents - 1].unique_id == n_agents
    store = open_store(db)
    run_id = store.create_run(scenario="build")
    t1 = time.perf_counter()
    write_agent_rows(store, run_id, model)
    rows_s = time.perf_counter() - t1
    store.dispose()
    rss = _peak_rss_gib()
    del model
    ref = mesa.Model(seed=3)
    t2 = time.perf_counter()
    for _ in range(n_agents):
        mesa.Agent(ref)
    ref_s = time.perf_counter() - t2
    print(json.dumps({
        "agents": n_agents, "build_seconds": round(build_s, 3),
        "agent_rows_sqlite_seconds": round(rows_s, 3), "warm_up_seconds": round(warm_s, 3),
        "peak_rss_gib_before_reference": rss,
        "reference_mesa_agents_one_by_one_seconds": round(ref_s, 3),
        "build_over_reference_time": round(build_s / ref_s, 4),
    }))


def _run_child(n_agents: int, n_events: int, db: str) -> None:
    """Child: build, simulate ``n_events`` events into ``db``, print marks as JSON.

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
    build_s = time.perf_counter() - t0
    write_agent_rows(store, run_id, model)
    rows_s = time.perf_counter() - t0 - build_s
    horizon = n_events / float(model.population.effective_rates().sum())
    model.run(until=horizon * 1e-5)  # compile and load the kernels before the clock starts
    assert recorder.writer is not None
    recorder.writer.sync()
    base = model.events
    pending = [10**k for k in range(5, 13) if 10**k < n_events] + [n_events]
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
    store.finish_run(run_id, "complete")
    stored = store.frame("SELECT n_interactions FROM runs WHERE id = :r", {"r": run_id})
    size_sql = ("SELECT pg_database_size(current_database()) AS b" if store.url.startswith(
        "postgresql") else "SELECT page_count * page_size AS b FROM pragma_page_count(), "
        "pragma_page_size()")
    db_bytes = int(store.frame(size_sql)["b"].iloc[0])
    store.dispose()
    seg = {}
    for (n0, t_0), (n1, t_1) in zip(marks, marks[1:], strict=False):
        seg[f"us_per_event_{n0:.0e}_{n1:.0e}"] = round((t_1 - t_0) / (n1 - n0) * 1e6, 3)
    print(json.dumps({
        "agents": n_agents, "events": model.events,
        "stored_interactions": int(stored["n_interactions"].iloc[0]),
        "build_seconds": round(build_s, 2), "agent_rows_seconds": round(rows_s, 2),
        "simulate_seconds": round(end - marks[0][1], 2),
        "events_per_s": round((model.events - base) / (end - marks[0][1])), **seg,
        "final_commit_seconds": round(end - handed, 3), "peak_rss_gib": _peak_rss_gib(),
        "db_bytes": db_bytes,
    }))


def _child(args: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _spread(result: dict[str, float]) -> None:
    """Add the spread of the per-event times over the whole decades from 1e5 events on."""
    decades = []
    for key, value in result.items():
        if key.startswith("us_per_event_"):
            lo, hi = (float(x) for x in key.rsplit("_", 2)[1:])
            if lo >= 1e5 and hi == 10 * lo:
                decades.append(value)
    if len(decades) >= 2:
        result["per_event_spread"] = round(max(decades) / min(decades) - 1.0, 3)


def scale_run(backend: str, n_agents: int, n_events: int, tmp: Path, pg_url: str | None
              ) -> dict[str, object]:
    """One scale run into SQLite (a file in ``tmp``) or PostgreSQL (a new database)."""
    if backend == "sqlite":
        result: dict[str, object] = {"backend": "sqlite",
                                     **_child(["--child-run", str(n_agents), str(n_events),
                                               str(tmp / "scale.db")])}
        for suffix in ("", "-wal", "-shm"):
            (tmp / ("scale.db" + suffix)).unlink(missing_ok=True)
    else:
        if not pg_url:
            return {"backend": "postgresql", "skipped": "no --pg-url / SIGNSIM_TEST_PG_URL"}
        with scratch_pg_database(pg_url, "signsim_scale") as url:
            result = {"backend": "postgresql",
                      **_child(["--child-run", str(n_agents), str(n_events), url])}
    _spread(result)  # type: ignore[arg-type]
    return result


def _machine() -> dict[str, object]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {"cpu_count": os.cpu_count(), "memory_gib": round(pages / 2**30, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    """Parse options and print the benchmark JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_500_000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--scale", action="store_true", help="the scale targets only")
    parser.add_argument("--build-agents", type=int, default=1_000_000)
    parser.add_argument("--scale-agents", type=int, default=None,
                        help="default 10M with --scale, else 1M")
    parser.add_argument("--scale-events", type=int, default=None,
                        help="default 100M with --scale, else 10M")
    parser.add_argument("--backends", default=None,
                        help="comma-separated; default sqlite,postgresql with --scale, else sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("SIGNSIM_TEST_PG_URL"))
    parser.add_argument("--child-run", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child-build", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_run:
        _run_child(int(args.child_run[0]), int(args.child_run[1]), args.child_run[2])
        return
    if args.child_build:
        _build_child(int(args.child_build[0]), args.child_build[1])
        return
    agents = args.scale_agents or (10_000_000 if args.scale else 1_000_000)
    events = args.scale_events or (100_000_000 if args.scale else 10_000_000)
    backends = (args.backends or ("sqlite,postgresql" if args.scale else "sqlite")).split(",")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        report: dict[str, object] = {"machine": _machine()}
        if args.scale:
            build = _child(["--child-build", str(args.build_agents), str(tmp / "build.db")])
            report["build"] = build
        else:
            report["throughput"] = throughput(args.events, tmp, metrics=False)
            report["throughput_with_metrics"] = throughput(args.events, tmp, metrics=True)
        runs = [] if args.skip_scale else [scale_run(b, agents, events, tmp, args.pg_url)
                                           for b in backends]
        report["scale"] = runs
        if args.scale:
            rss = [float(r["peak_rss_gib"]) for r in runs if "peak_rss_gib" in r]  # type: ignore[arg-type]
            spread = [float(r["per_event_spread"]) for r in runs  # type: ignore[arg-type]
                      if "per_event_spread" in r]
            report["targets"] = {
                "build_seconds_le_5_at_1M": (build["build_seconds"] <= 5.0
                                             if args.build_agents == 1_000_000 else None),
                "peak_rss_le_16_gib": bool(rss) and max(rss) <= 16.0,
                "per_event_spread_le_0.2": bool(spread) and max(spread) <= 0.2,
            }
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
