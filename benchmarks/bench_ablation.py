"""Ablation of the temporal signed-graph model on one network; prints JSON (not a test).

For each seed, under the strict online protocol (batch 200, 70/15/15 by time, 100
negatives per event, prequential adaptation unless ``--frozen``), trains the model
(``semba`` + online features with activity counts + signed-triad features) and runs it
beside

* the model's ablations: ``no_balance``, one memory (``unsigned`` with features), the
  triad features switched off (or on, with ``--no-triads``), the activity counts off;
* features only: gradient boosting on every online feature, without and with triads;
* every baseline of ``signsim evaluate`` (EdgeBank x2, reputation, logistic regression
  and gradient boosting on count features with the model's triad setting, unsigned TGN);

and reports, per method, the test metrics with fixed (validation) thresholds and with
prequential thresholds (``*_preq``): means over seeds, per-seed values and spread, and
the targets of the issue checked against the mean and the spread.

The network: ``--network FILE``, a snap-signed edge list (imported; default Bitcoin OTC)
or a scenario file (``.toml``: its baseline arm is simulated with ``--sim-seed`` and
``--horizon``, and the delivered interactions are the stream).

Usage::

    python benchmarks/bench_ablation.py --seeds 0 1 2 --threads 1
    python benchmarks/bench_ablation.py --network scenarios/trolls.toml --horizon 15
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_model import DATA, mean_over_seeds  # noqa: E402

from models.data import SignedEvents, load_events, split_by_time  # noqa: E402
from models.evaluate import blend_partner, build_methods, run_methods  # noqa: E402
from models.protocol import OnlineMethod, make_negatives  # noqa: E402
from models.signed_tgn import ModelConfig  # noqa: E402
from models.train import NeuralMethod, TrainConfig, fit_model  # noqa: E402
from sim.store.database import open_store  # noqa: E402

HEAD_OPTIONS = ("sign_attention", "split_trunk", "sign_weight")
TARGETS = {"sign_auc": 0.88, "sign_macro_f1": 0.77, "exist_mrr": 0.58}
COMPARED = ("sign_auc", "sign_macro_f1", "sign_f1_neg", "exist_mrr", "sign_macro_f1_preq",
            "sign_f1_neg_preq")

def load_network(path: Path, tmp: str, sim_seed: int, horizon: float | None) -> tuple[
        SignedEvents, dict[str, Any]]:
    """The stream of a snap-signed file or of a scenario's simulated baseline arm."""
    db = os.path.join(tmp, "ablation.db")
    if path.suffix == ".toml":
        from sim.engine.simulate import simulate

        res = simulate(db, scenario_path=str(path), seed=sim_seed, horizon=horizon)
        run, source = res.run_id, {"simulated": str(path), "sim_seed": sim_seed,
                                   "horizon": horizon, "sim_seconds": res.seconds}
    else:
        from sim.store.importers import import_network

        run, source = import_network(db, path).run_id, {"imported": str(path)}
    store = open_store(db)
    try:
        events = load_events(store, run)
    finally:
        store.dispose()
    source.update(events=len(events), nodes=events.num_nodes,
                  negative_share=float((events.sign < 0).float().mean()))
    return events, source


def one_seed(events: SignedEvents, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train the model, build every other method, run them all; test metrics per method."""
    t0 = time.perf_counter()
    train = TrainConfig(epochs=args.epochs, seed=seed, adapt=not args.frozen)
    split = split_by_time(events, train.train_frac, train.val_frac)
    negatives = make_negatives(events, split, train.batch_size, train.n_neg, train.eval_seed)
    cfg = ModelConfig(num_nodes=events.num_nodes, triads=args.triads)
    torch.manual_seed(seed)
    fit = fit_model(events, split, cfg, train, name="model")
    methods: list[tuple[OnlineMethod, float]] = [
        (NeuralMethod("model", fit.model, train), time.perf_counter() - t0)]
    if args.heads:
        # The head and attention options, one at a time, beside the default model.
        for option in HEAD_OPTIONS:
            t1 = time.perf_counter()
            torch.manual_seed(seed)
            opt_cfg = ModelConfig(num_nodes=events.num_nodes, triads=args.triads,
                                  **{option: True})
            opt_fit = fit_model(events, split, opt_cfg, train, name=f"option_{option}")
            methods.append((NeuralMethod(f"option_{option}", opt_fit.model, train),
                            time.perf_counter() - t1))
    if args.heads or args.blend_only:
        methods += build_methods(events, split, train, cfg.to_dict(), baselines=False,
                                 blend=True)
    else:
        methods += build_methods(events, split, train, cfg.to_dict(), baselines=True,
                                 ablations=True)
    blend = ("model", blend_partner(cfg.to_dict()))
    metrics, seconds = run_methods(methods, events, split, negatives, train, blend=blend)
    return {"seed": seed, "seconds": time.perf_counter() - t0, "best_epoch": fit.best_epoch,
            "method_seconds": seconds,
            "val": {m: v["val"] for m, v in metrics.items()},
            "test": {m: v["test"] for m, v in metrics.items()}}


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Means, per-seed spread (max - min) and the target checks."""
    tests = [s["test"] for s in per_seed]
    mean = mean_over_seeds(tests)
    spread = {m: {k: max(t[m][k] for t in tests) - min(t[m][k] for t in tests)
                  for k in COMPARED} for m in mean}
    # Every method but the model's own neural variants (and the blend) is a baseline here.
    others = [m for m in mean
              if m not in ("model", "blend") and not m.startswith(("ablation_", "option_"))]
    checks: dict[str, Any] = {}
    for candidate in ("model", "blend"):
        if candidate not in mean:
            continue
        own = mean[candidate]
        checks[candidate] = {f"{k}>={v}": own[k] >= v for k, v in TARGETS.items()}
        for key in COMPARED:
            behind = []
            for m in others:
                gap = own[key] - mean[m][key]
                needed = max(spread[candidate][key], spread[m][key])
                if not gap > needed:
                    behind.append({"method": m, "gap": gap, "spread": needed})
            checks[candidate][f"ahead_beyond_spread:{key}"] = {"ok": not behind,
                                                               "not_beyond": behind}
    return {"mean_test": mean, "mean_val": mean_over_seeds([s["val"] for s in per_seed]),
            "spread_test": spread, "checks": checks}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", type=Path, default=DATA,
                        help="snap-signed file or scenario (.toml); default Bitcoin OTC")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frozen", action="store_true", help="no prequential adaptation")
    parser.add_argument("--triads", action=argparse.BooleanOptionalAction, default=True,
                        help="the model's triad features (the ablation flips them)")
    parser.add_argument("--sim-seed", type=int, default=0, help="seed of a simulated network")
    parser.add_argument("--horizon", type=float, default=None,
                        help="horizon (days) of a simulated network")
    parser.add_argument("--heads", action="store_true",
                        help="instead of the baselines and ablations: the model with each "
                             "head/attention option on (sign_attention, split_trunk, "
                             "sign_weight), to choose on validation; and the blend")
    parser.add_argument("--blend-only", action="store_true",
                        help="only the model, gradient boosting on every feature and their "
                             "blend")
    parser.add_argument("--partial", type=Path, default=None,
                        help="write the finished seeds' results here after each seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        events, source = load_network(args.network, tmp, args.sim_seed, args.horizon)
    per_seed = []
    for seed in args.seeds:
        per_seed.append(one_seed(events, seed, args))
        print(json.dumps({"seed": seed, "done_s": round(per_seed[-1]["seconds"], 1)}),
              file=sys.stderr, flush=True)
        if args.partial is not None:  # keep finished seeds if a later one fails
            args.partial.write_text(json.dumps(per_seed, default=str))
    out = {"task": "ablation", "network": source,
           "protocol": "strict online, batch 200, 70/15/15 by time, 100 negatives/event, "
                       + ("frozen weights" if args.frozen else "prequential adaptation"),
           "seeds": args.seeds, "epochs": args.epochs, "threads": args.threads,
           "model_triads": args.triads, **summarise(per_seed), "per_seed": per_seed}

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    print(json.dumps(clean(out), indent=2))


if __name__ == "__main__":
    main()
