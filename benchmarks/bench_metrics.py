"""What periodic metrics cost a stored run; prints JSON.

The same run (``--agents`` people, ``--horizon`` days, seed ``--seed``, mechanistic rules,
SQLite file) three ways, in the same process, each ``--repeats`` times in turn:

* ``off``: no metrics (``recording.metric_cadence = 0``);
* ``thread``: metrics every ``--cadence`` days, computed from snapshots on the metrics
  thread (what ``signsim simulate`` and sweeps do);
* ``inline``: the same metrics computed on the simulation thread at each tick (the
  placement before the metrics thread; same values).

For each: the best and median events/s (wall time from building the model to the last
commit), and the cost of metrics as ``1 - with / without`` on the medians. The metric
rows of ``thread`` and ``inline`` are compared exactly (``metric_rows_identical``).

Usage:
  python benchmarks/bench_metrics.py [--agents 10000] [--horizon 100] [--seed 1]
      [--repeats 3] [--cadence 1.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sim.config import SimConfig
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder
from sim.engine.simulate import write_agent_rows
from sim.store.database import open_store

MODES = ("off", "thread", "inline")


def _config(n_agents: int, horizon: float, cadence: float) -> SimConfig:
    cfg = SimConfig(horizon=horizon)
    cfg.population.n_agents = n_agents
    cfg.recording.metric_cadence = cadence
    return cfg


def one_run(db: Path, mode: str, n_agents: int, horizon: float, seed: int,
            cadence: float) -> tuple[int, float, list[tuple[float, str, float]]]:
    """Events, seconds and metric rows of one stored run (as ``run_into_store`` runs it)."""
    store = open_store(str(db))
    run_id = store.create_run(scenario="bench-metrics", arm=mode, seed=seed, horizon=horizon)
    start = time.perf_counter()
    recorder = Recorder(store, run_id, metric_thread=mode == "thread")
    model = SocialModel(_config(n_agents, horizon, 0.0 if mode == "off" else cadence), seed,
                        recorder=recorder)
    write_agent_rows(store, run_id, model)
    step = max(horizon / 100.0, 1e-9)  # the stops of run_into_store (progress updates)
    while model.env.now < model.horizon:
        model.run(until=min(model.env.now + step, model.horizon))
    seconds = time.perf_counter() - start
    store.finish_run(run_id, "complete")
    rows = store.frame("SELECT t, name, value FROM metrics WHERE run_id = :r ORDER BY t, name",
                       {"r": run_id})
    store.dispose()
    return model.events, seconds, list(rows.itertuples(index=False, name=None))


def main() -> None:
    """Run the comparison and print it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--horizon", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cadence", type=float, default=1.0)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {m: [] for m in MODES}
    events: dict[str, int] = {}
    rows: dict[str, list[tuple[float, str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:  # compile and load the kernels first
            one_run(Path(tmp) / f"warm-{mode}.db", mode, 300, 2.0, 0, args.cadence)
        for k in range(args.repeats):
            for mode in MODES:
                n, seconds, got = one_run(Path(tmp) / f"{mode}-{k}.db", mode, args.agents,
                                          args.horizon, args.seed, args.cadence)
                rates[mode].append(n / seconds)
                events[mode] = n
                rows[mode] = got
    median = {m: statistics.median(r) for m, r in rates.items()}
    print(json.dumps({
        "agents": args.agents, "horizon_days": args.horizon, "seed": args.seed,
        "metric_cadence_days": args.cadence, "repeats": args.repeats,
        "events": events,
        "events_per_s_median": {m: round(v) for m, v in median.items()},
        "events_per_s_best": {m: round(max(r)) for m, r in rates.items()},
        "metrics_cost_thread": round(1 - median["thread"] / median["off"], 3),
        "metrics_cost_inline": round(1 - median["inline"] / median["off"], 3),
        "target_cost_at_most": 0.15,
        "metric_rows": len(rows["thread"]),
        "metric_rows_identical": rows["thread"] == rows["inline"],
    }, indent=1))


if __name__ == "__main__":
    main()
