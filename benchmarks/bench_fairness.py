"""Fairness/goodness refreshed after every batch beside refreshes on growth; prints JSON.

Fairness and goodness (Kumar et al., "Edge weight prediction in weighted signed
networks", ICDM 2016) are online features of :class:`models.features.OnlineFeatures`:
each refresh is one warm-started iteration over every past event, so refreshing after
every batch costs O(history) per batch and O(events^2 / batch) over a stream.
``fg_growth = g`` refreshes only once the history has grown by the fraction ``g``.

The stream: a simulated run (the default scenario, seed 0, about ``--events`` events, as
``bench_model.py scale`` makes it), observed in batches of ``--batch`` events by three
feature sets (triads and activity off, so that the fairness/goodness part shows):

* ``every_batch``: ``fg_growth=0``, the default (the reference);
* ``growth``: ``fg_growth=--growth``;
* ``off``: ``fg_iters=0`` (no fairness/goodness), the floor.

They observe the same batches in turn (interleaved every ``--every`` batches, so that
they share the machine's load); ``observe`` is timed per quarter of the stream. After
every turn, the fairness and goodness of ``growth`` are compared with the reference
over the nodes seen so far (mean and largest absolute difference): what the staleness
between refreshes costs in the features' values.

Usage:
  python benchmarks/bench_fairness.py [--events 2000000] [--batch 2000] [--growth 0.05]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_scale import add_stream_arguments, simulated_batches  # noqa: E402

from models.features import OnlineFeatures  # noqa: E402


def main() -> None:
    """Run the benchmark and print its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_stream_arguments(ap, 2_000_000)
    ap.add_argument("--growth", type=float, default=0.05)
    args = ap.parse_args()
    ev, batches = simulated_batches(args)
    n = ev.num_nodes
    feats = {"every_batch": OnlineFeatures(n, fg_iters=1),
             "growth": OnlineFeatures(n, fg_iters=1, fg_growth=args.growth),
             "off": OnlineFeatures(n, fg_iters=0)}
    parts = 4
    observe = {k: [0.0] * parts for k in feats}
    seen = torch.zeros(n, dtype=torch.bool)
    diffs: dict[str, list[float]] = {"fairness": [], "goodness": []}
    largest = dict.fromkeys(diffs, 0.0)
    for start in range(0, len(batches), args.every):
        turn = batches[start:start + args.every]
        part = start * parts // len(batches)
        for name, f in feats.items():
            for b in turn:
                t0 = time.perf_counter()
                f.observe(b.src, b.dst, b.t, b.sign, b.weight)
                observe[name][part] += time.perf_counter() - t0
        for b in turn:
            seen[b.src] = True
            seen[b.dst] = True
        for key in diffs:
            d = (getattr(feats["growth"], key) - getattr(feats["every_batch"], key))[seen].abs()
            diffs[key].append(float(d.mean()))
            largest[key] = max(largest[key], float(d.max()))
    total = {k: sum(v) for k, v in observe.items()}
    out: dict[str, Any] = {
        "task": "fairness_goodness_refresh", "events": len(ev), "nodes": n,
        "batch": args.batch, "batches": len(batches), "growth": args.growth,
        "threads": args.threads,
        "observe_ms_per_batch_by_quarter": {
            k: [1e3 * s * parts / len(batches) for s in v] for k, v in observe.items()},
        "observe_total_s": total,
        "fairness_goodness_s": {k: total[k] - total["off"] for k in ("every_batch", "growth")},
        "mean_abs_difference_growth_vs_every_batch": {
            k: sum(v) / len(v) for k, v in diffs.items()},
        "largest_abs_difference_growth_vs_every_batch": largest,
    }
    fg = out["fairness_goodness_s"]
    # Below the timing noise (a short stream) the differences to ``off`` can be <= 0.
    out["fairness_goodness_speedup"] = (fg["every_batch"] / fg["growth"]
                                        if min(fg.values()) > 0 else None)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
