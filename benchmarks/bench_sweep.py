"""Sweep throughput: local process pool vs a Dask LocalCluster of the same size.

Runs the same sweep (a scenario's arms x seeds, SQLite in a temporary directory) with
``run_experiment(workers=N)`` and with ``run_experiment(workers=N, dask="local")`` and
prints JSON with runs per minute for each and the Dask overhead
``1 - rate_dask / rate_pool`` (target: <= 0.10). Wall times include starting and
stopping the executor (process pool or LocalCluster), as a user of ``signsim run`` pays
them. With ``--repeat R`` the executors alternate R times; rates and the overhead use
each executor's best (shortest) sweep, the least disturbed by other load on the machine,
and are also given for the median sweep. The load average before and after is printed
so that a disturbed measurement can be recognised.

Usage::

    python benchmarks/bench_sweep.py                       # scenarios/moderation.toml, 2 workers
    python benchmarks/bench_sweep.py --seeds 4 --agents 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.scenario import Scenario, load_scenario
from sim.store.database import open_store
from sim.sweep.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]


def resize(sc: Scenario, seeds: int | None, agents: int | None, horizon: float | None) -> None:
    """Change the sweep's size in place (seeds, agents, horizon); bench_cluster.py reuses it."""
    if seeds is not None:
        sc.seeds = list(range(seeds))
    for arm in sc.arms:
        if agents is not None:
            arm.config.population.n_agents = agents
        if horizon is not None:
            for spec in arm.interventions:
                spec.start = min(spec.start, horizon)
            arm.config.horizon = horizon


def one(sc: Scenario, tmp: str, label: str, **kw: object) -> dict[str, float]:
    db = os.path.join(tmp, f"{label}-{time.time_ns()}.db")
    res = run_experiment(sc, db, progress=False, **kw)  # type: ignore[arg-type]
    store = open_store(db)
    events = int(store.frame("SELECT COUNT(*) AS n FROM interactions")["n"][0])
    store.dispose()
    assert events == res.events, "rows lost"
    return {"seconds": res.seconds, "runs": len(res.runs), "events": events,
            "run_seconds_sum": sum(r.seconds for r in res.runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "moderation.toml"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=None, help="override the scenario's seeds")
    ap.add_argument("--agents", type=int, default=None, help="override population.n_agents")
    ap.add_argument("--horizon", type=float, default=None, help="override the horizon (days)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    load_before = list(os.getloadavg())
    sc = load_scenario(args.scenario)
    resize(sc, args.seeds, args.agents, args.horizon)
    # Warm-up (not timed): compile or load the numba kernel, start the fork server both
    # executors' workers fork from, and touch Dask once, so that neither executor pays a
    # one-off cost of the process for the other.
    warm = load_scenario(args.scenario)
    resize(warm, 1, 100, 1.0)
    warm.arms = warm.arms[:1]
    with tempfile.TemporaryDirectory() as tmp:
        run_experiment(warm, os.path.join(tmp, "warm.db"), progress=False)
        one(warm, tmp, "warm-pool", workers=args.workers)
        one(warm, tmp, "warm-dask", workers=args.workers, dask="local")
        pool, dask = [], []
        for i in range(args.repeat):  # alternate the order: drifting machine load cancels
            order = [("pool", pool, {}), ("dask", dask, {"dask": "local"})]
            for label, out, extra in order if i % 2 == 0 else order[::-1]:
                out.append(one(sc, tmp, label, workers=args.workers, **extra))

    def summary(samples: list[dict[str, float]]) -> dict[str, Any]:
        best = min(s["seconds"] for s in samples)
        median = statistics.median(s["seconds"] for s in samples)
        runs = samples[0]["runs"]
        return {"runs": runs, "events": samples[0]["events"],
                "seconds_best": round(best, 3), "seconds_median": round(median, 3),
                "all_seconds": [round(s["seconds"], 3) for s in samples],
                "runs_per_minute": round(60.0 * runs / best, 3),
                "runs_per_minute_median": round(60.0 * runs / median, 3),
                "mean_run_seconds": round(statistics.mean(
                    s["run_seconds_sum"] / s["runs"] for s in samples), 3)}

    p, d = summary(pool), summary(dask)
    assert p["events"] == d["events"], "executors produced different interaction counts"
    overhead = 1.0 - d["runs_per_minute"] / p["runs_per_minute"]
    overhead_median = 1.0 - d["runs_per_minute_median"] / p["runs_per_minute_median"]
    print(json.dumps({
        "benchmark": "sweep_pool_vs_dask",
        "scenario": sc.name,
        "arms": len(sc.arms), "seeds": len(sc.seeds),
        "agents": sc.arms[0].config.population.n_agents, "horizon": sc.arms[0].config.horizon,
        "workers": args.workers, "repeat": args.repeat,
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "database": "sqlite (WAL, temp dir)",
        "pool": p, "dask_local": d,
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
        "dask_overhead": round(overhead, 4), "dask_overhead_median": round(overhead_median, 4),
        "target_overhead": 0.10,
        "meets_target": overhead <= 0.10,
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
