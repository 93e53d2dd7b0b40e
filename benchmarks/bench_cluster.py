"""Sweep throughput per worker on a Dask cluster of separate processes, into PostgreSQL.

Starts ``dask scheduler`` and N ``dask worker`` processes (one thread each, preloading
``sim.engine.warmup`` as the recipe in docs/scale.md does) on this machine, runs the same
sweep on them with ``run_experiment(dask="tcp://...")`` for each N of ``--workers``, and,
as the reference in the same run, the same sweep in this process without Dask
(``run_experiment(workers=1)``). Every sweep writes into its own new database on the
PostgreSQL server of ``--pg`` (created and dropped here). Prints JSON: runs/s and
events/s of each sweep, per worker, and the scaling efficiency
``rate(N) / (N * rate(1 worker))``. Wall times include dispatch and the claims, not the
cluster's start (workers are started and warm before the clock starts).

``--settings`` chooses the workers' Dask settings: ``signsim`` (the environment variables
docs/scale.md recommends: no statistical profiler, no GIL monitor, a 500 ms event-loop
tick, as signsim's own ``LocalCluster`` uses) and/or ``dask`` (Dask's defaults).

Usage::

    python benchmarks/bench_cluster.py --pg postgresql://postgres@127.0.0.1:55432/signsim_test
    python benchmarks/bench_cluster.py --workers 1 2 --seeds 4 --agents 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_sweep import resize  # noqa: E402

from sim.scenario import Scenario, load_scenario  # noqa: E402
from sim.store.database import open_store  # noqa: E402
from sim.sweep.executors import DASK_WORKER_ENV  # noqa: E402
from sim.sweep.experiment import run_experiment  # noqa: E402
from tests.helpers import scratch_pg_database  # noqa: E402


def worker_env(settings: str) -> dict[str, str]:
    """Environment variables of the workers: Dask's defaults, or signsim's settings."""
    return {} if settings == "dask" else dict(DASK_WORKER_ENV)




@contextmanager
def database(server: str) -> Iterator[str]:
    """A new database on the server of ``server`` (a PostgreSQL URL); dropped afterwards."""
    with scratch_pg_database(server, "signsim_bench") as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cluster(workers: int, settings: str) -> Iterator[tuple[str, float]]:
    """A scheduler and ``workers`` single-threaded workers; yields the address and start-up s."""
    from distributed import Client

    beside = Path(sys.executable).parent / "dask"
    dask = str(beside) if beside.exists() else shutil.which("dask") or "dask"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), **worker_env(settings))
    started = time.perf_counter()

    def start(args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    procs = [start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                    "--no-dashboard"])]
    try:
        procs += [start([dask, "worker", address, "--nthreads", "1", "--no-dashboard",
                         "--host", "127.0.0.1", "--preload", "sim.engine.warmup"])
                  for _ in range(workers)]
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield address, time.perf_counter() - started
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def sweep(sc: Scenario, server: str, **kw: Any) -> dict[str, Any]:
    """One sweep into a new database; its runs/s and events/s."""
    with database(server) as db:
        res = run_experiment(sc, db, progress=False, **kw)
        store = open_store(db)
        events = int(store.frame("SELECT count(*) AS n FROM interactions")["n"][0])
        complete = int(store.frame("SELECT count(*) AS n FROM runs WHERE status = 'complete'")
                       ["n"][0])
        store.dispose()
    assert events == res.events and complete == len(res.runs), "rows lost"
    return {"executor": res.executor, "runs": len(res.runs), "events": events,
            "seconds": round(res.seconds, 3),
            "runs_per_s": round(len(res.runs) / res.seconds, 3),
            "events_per_s": round(events / res.seconds),
            "mean_run_seconds": round(sum(r.seconds for r in res.runs) / len(res.runs), 3)}


def claim_ms(db: str, n: int = 50) -> float:
    """Milliseconds to take and release one claim (what a run pays for exactly-once)."""
    from sim.store.claims import ClaimKey, acquire, ensure_claims_table

    store = open_store(db)
    ensure_claims_table(store)
    started = time.perf_counter()
    for i in range(n):
        got = acquire(store, ClaimKey.of("bench_claims", "", "arm", i), sweep="bench")
        assert got.claim is not None
        got.claim.close()
    seconds = time.perf_counter() - started
    store.dispose()
    return round(1000 * seconds / n, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=os.environ.get("SIGNSIM_TEST_PG_URL"),
                    help="PostgreSQL URL of a database on the server to use (default: "
                    "$SIGNSIM_TEST_PG_URL); the user must be allowed to CREATE DATABASE")
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "moderation.toml"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--settings", nargs="+", choices=["signsim", "dask"], default=["signsim"],
                    help="the workers' Dask settings (see the module doc)")
    ap.add_argument("--seeds", type=int, default=4, help="override the scenario's seeds")
    ap.add_argument("--agents", type=int, default=None, help="override population.n_agents")
    ap.add_argument("--horizon", type=float, default=None, help="override the horizon (days)")
    args = ap.parse_args()
    if not args.pg:
        ap.error("give --pg postgresql://... (or set SIGNSIM_TEST_PG_URL)")

    import sim.engine.warmup  # noqa: F401 - the reference runs warm, like the workers

    load_before = list(os.getloadavg())
    sc = load_scenario(args.scenario)
    resize(sc, args.seeds, args.agents, args.horizon)
    reference = sweep(sc, args.pg)
    with database(args.pg) as db, tempfile.TemporaryDirectory() as tmp:
        claims = {"postgresql": claim_ms(db), "sqlite": claim_ms(str(Path(tmp) / "c.db"))}
    clusters = []
    for n in args.workers:
        for settings in args.settings:
            with cluster(n, settings) as (address, startup):
                result = sweep(sc, args.pg, dask=address)
            result.update(workers=n, settings=settings, cluster_start_seconds=round(startup, 2),
                          runs_per_s_per_worker=round(result["runs_per_s"] / n, 3),
                          events_per_s_per_worker=round(result["events_per_s"] / n))
            clusters.append(result)
    for c in clusters:
        c["vs_in_process"] = round(c["runs_per_s_per_worker"] / reference["runs_per_s"], 3)
        one = next((o for o in clusters if o["workers"] == 1 and o["settings"] == c["settings"]),
                   None)
        if one is not None:
            c["scaling_efficiency"] = round(c["runs_per_s"] / (c["workers"] * one["runs_per_s"]), 3)
    print(json.dumps({
        "benchmark": "sweep_on_dask_cluster",
        "scenario": sc.name, "arms": len(sc.arms), "seeds": len(sc.seeds),
        "agents": sc.arms[0].config.population.n_agents, "horizon": sc.arms[0].config.horizon,
        "database": "postgresql (a new database per sweep)",
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
        "in_process_reference": reference,
        "claim_ms": claims,
        "cluster": clusters,
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
    }, indent=2))


if __name__ == "__main__":
    main()
