"""Calibrated mechanistic rules on Bitcoin OTC: the fit, and the held-out span it generates.

Reads ``data/soc-sign-bitcoinotc.csv`` (source, target, rating, unix time), sorts it by
time (t = days since the first rating, weight = |rating| / 10, sign of the rating),
renumbers nodes by first appearance, splits at 70% of the events, calibrates the rules on
the history (:func:`models.twin.calibrate.calibrate_rules`) and generates the held-out
span with ``--seeds`` seeds in memory. Prints one JSON document: ``fit`` (target vs fitted
per statistic of the calibration window, objective before and after, seconds) and
``held_out`` (real held-out statistics vs the generated mean, each with its scoreboard
distance), statistics computed with the whole history as history.

Usage: ``python benchmarks/bench_calibrate.py [--budget 60] [--seeds 3]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.twin.calibrate import calibrate_rules, simulate_window
from models.twin.observed import Stream
from models.twin.stats import SCOREBOARD, stream_statistics

ROOT = Path(__file__).resolve().parents[1]


def otc_stream(path: Path) -> Stream:
    """The ratings as a stream with nodes renumbered by first appearance."""
    raw = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    raw = raw[np.argsort(raw[:, 3], kind="stable")]
    both = raw[:, :2].astype(np.int64).ravel()  # src0, dst0, src1, dst1, ...
    uniq, first, inv = np.unique(both, return_index=True, return_inverse=True)
    rank = np.empty(uniq.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(uniq.shape[0])
    ids = rank[inv].reshape(-1, 2)
    t = (raw[:, 3] - raw[0, 3]) / 86400.0
    return Stream.from_columns(t, ids[:, 0], ids[:, 1], np.sign(raw[:, 2]),
                               np.abs(raw[:, 2]) / 10.0)


def main() -> None:
    """Calibrate on OTC's first 70% and print the fit and held-out comparison as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    s = otc_stream(ROOT / "data" / "soc-sign-bitcoinotc.csv")
    n = len(s)
    t_split = float(s.t[int(0.7 * n)])
    k = int(np.searchsorted(s.t, t_split, side="left"))
    history, future = s.slice(0, k), s.slice(k, n)
    n_nodes = int(max(history.src.max(), history.dst.max())) + 1
    t_end = float(s.t[-1])
    horizon = t_end - t_split
    with tempfile.TemporaryDirectory() as tmp:
        cal = calibrate_rules(history, n_nodes, horizon, Path(tmp), budget=args.budget,
                              progress=False)
        real = stream_statistics(future, history, t_split, t_end)
        gen, seconds, events = [], 0.0, 0
        for seed in range(args.seeds):
            started = time.perf_counter()
            stream = simulate_window(cal.config, seed, t_split)
            seconds += time.perf_counter() - started
            events += len(stream)
            gen.append(stream_statistics(stream, history, t_split, t_end))
    held: dict[str, Any] = {}
    for stat in SCOREBOARD:
        values = [stat.value(g) for g in gen]
        held[stat.key] = {"real": stat.value(real), "generated_mean": float(np.nanmean(values)),
                          "per_seed": values,
                          "distance": float(np.mean([stat.distance(g, real) for g in gen]))}
    for key in ("weight_pos", "weight_neg"):
        held[key] = {"real": float(real[key]),
                     "generated_mean": float(np.nanmean([g[key] for g in gen]))}
    print(json.dumps({
        "data": {"events": n, "t_split": t_split, "horizon_days": horizon,
                 "history_events": k, "held_out_events": n - k, "n_nodes": n_nodes},
        "params": cal.params, "fit": cal.fit, "held_out": held,
        "generation": {"seeds": args.seeds, "events": events, "seconds": seconds,
                       "events_per_s": events / seconds if seconds > 0 else None},
    }, indent=1, default=float))


if __name__ == "__main__":
    main()
