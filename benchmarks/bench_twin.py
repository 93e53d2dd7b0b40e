"""Twin fidelity and speed: Bitcoin OTC's held-out 30% and an emulation check with known truth.

Prints one JSON document:

* ``otc``: ``signsim twin`` on Bitcoin OTC (split 0.7, ``--seeds`` spans per method): the
  fidelity table (real vs twin vs calibrated rules vs null), the issue's targets for the
  twin (met or not, with the measured figure), statistics won per method, events/s of
  generation per method (``calibrated`` is the mechanistic engine on the same nodes and
  span, so the speeds compare side by side) and the wall time of the whole twin.
* ``emulation``: the baseline arm of ``scenarios/moderation.toml`` (seed 0) simulated, then
  twinned at 0.7: negative share overall, within and between groups, and of trolls, real
  held-out vs generated (mean over seeds), each with its relative error.

Usage: ``python benchmarks/bench_twin.py [--seeds 5] [--budget 60] [--network FILE]
[--skip-emulation] [--skip-otc]``
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.twin.run import twin_run
from models.twin.stats import ks_distance, relative_error
from sim.contract import KIND_CODES
from sim.engine.simulate import run_into_store
from sim.scenario import load_scenario
from sim.store.database import open_store
from sim.store.importers import import_network

ROOT = Path(__file__).resolve().parents[1]
TARGET_REL = ("negative_share", "reciprocity", "balanced_share", "new_pair_share",
              "weight_pos", "weight_neg")


def _targets(real: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in TARGET_REL:
        mean = float(np.nanmean([r[key] for r in runs]))
        err = relative_error(mean, float(real[key]))
        out[key] = {"real": float(real[key]), "twin": mean, "rel_error": err, "met": err <= 0.15}
    for side in ("in", "out"):
        ks = float(np.mean([ks_distance(r[f"{side}_degree"], real[f"{side}_degree"]) for r in runs]))
        out[f"{side}_degree_ks"] = {"twin": ks, "met": ks <= 0.10}
    mean = float(np.mean([r["event_count"] for r in runs]))
    err = relative_error(mean, float(real["event_count"]))
    out["event_count"] = {"real": int(real["event_count"]), "twin": mean, "rel_error": err,
                          "met": err <= 0.10}
    return out


def otc(db: str, out: Path, seeds: int, budget: int, network: Path) -> dict[str, Any]:
    summary = import_network(db, network)
    started = time.perf_counter()
    r = twin_run(db, str(summary.run_id), split=0.7, seeds=seeds, out=out, budget=budget,
                 progress=False)
    wall = time.perf_counter() - started
    board = r.table[r.table["scoreboard"]]
    table = {f"{row.statistic}/{row.method}": {"real": row.real, "mean": row.mean,
                                              "low": row.low, "high": row.high,
                                              "distance": row.distance}
             for row in board.itertuples()}
    return {"targets": _targets(r.real, r.stats["twin"]), "wins": r.wins,
            "twin_closer_than_both": sum(
                1 for _, g in board.groupby("statistic")
                if g.set_index("method")["distance"].idxmin() == "twin"
                and (g["distance"] == g["distance"].min()).sum() == 1),
            "events_per_s": r.events_per_s, "seconds": r.seconds, "wall_s": wall,
            "report": str(r.report), "table": table}


def _neg_shares(src: np.ndarray, dst: np.ndarray, sign: np.ndarray, group: np.ndarray,
                kind: np.ndarray) -> dict[str, float]:
    neg = sign < 0
    same = group[src] == group[dst]
    troll = kind[src] == KIND_CODES.index("troll")
    return {"negative_share": float(neg.mean()), "in_group": float(neg[same].mean()),
            "out_group": float(neg[~same].mean()), "troll": float(neg[troll].mean())}


def emulation(db: str, out: Path, seeds: int) -> dict[str, Any]:
    scenario = load_scenario(ROOT / "scenarios" / "moderation.toml")
    arm = next(a for a in scenario.arms if a.name == "baseline")
    cfg = copy.deepcopy(arm.config)
    cfg.recording.snapshot_cadence = 1.0  # the twin reads opinions and negativity from these
    cfg.recording.snapshot_sample = 0
    store = open_store(db)
    try:
        res = run_into_store(store, cfg, seed=0, scenario="emulation", arm="baseline")
        agents = store.frame("SELECT agent_id, kind, \"group\" FROM agents WHERE run_id = :r "
                             "ORDER BY agent_id", {"r": res.run_id})
    finally:
        store.dispose()
    r = twin_run(db, str(res.run_id), split=0.7, seeds=seeds, out=out, methods=("twin", "null"),
                 progress=False)
    store = open_store(db)
    try:
        from models.twin.observed import load_observed, split_observed

        cut = split_observed(load_observed(store, res.run_id), 0.7)
        obs = cut.observed
        real = _neg_shares(cut.future.src, cut.future.dst, cut.future.sign, obs.group, obs.kind)
        out_rows: dict[str, Any] = {"real": real}
        for method, ids in r.runs.items():
            vals = []
            for i in ids:
                cols = store.interactions(i, delivered_only=True)
                n = len(obs.group)
                keep = (cols["src"] < n) & (cols["dst"] < n)
                vals.append(_neg_shares(cols["src"][keep], cols["dst"][keep],
                                        cols["sign"][keep], obs.group, obs.kind))
            mean = {k: float(np.nanmean([v[k] for v in vals])) for k in real}
            out_rows[method] = {k: {"generated": mean[k],
                                    "rel_error": relative_error(mean[k], real[k]),
                                    "met": relative_error(mean[k], real[k]) <= 0.15}
                                for k in real}
    finally:
        store.dispose()
    out_rows["agents"] = int(len(agents))
    out_rows["wins"] = r.wins
    out_rows["events_per_s"] = r.events_per_s
    out_rows["seconds"] = r.seconds
    return out_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--skip-emulation", action="store_true")
    ap.add_argument("--skip-otc", action="store_true")
    ap.add_argument("--network", type=Path, default=ROOT / "data" / "soc-sign-bitcoinotc.csv",
                    help="a snap-signed edge list to twin instead of Bitcoin OTC")
    ap.add_argument("--out", type=Path, default=None, help="keep reports here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        result: dict[str, Any] = {}
        if not args.skip_otc:
            result["otc"] = otc(str(Path(tmp) / "otc.db"), base / "twin-otc", args.seeds,
                                args.budget, args.network)
        if not args.skip_emulation:
            result["emulation"] = emulation(str(Path(tmp) / "emu.db"), base / "twin-emulation",
                                            args.seeds)
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
