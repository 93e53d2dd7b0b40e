"""The blend's two averaging rules on the same trained halves, validation and test; JSON.

Per seed: train the model (defaults, as ``bench_ablation.py``), fit gradient boosting on
every online feature (``gbdt_all+triads``), run both under the strict protocol once, and
blend their collected scores two ways (:func:`models.blend.blend_results`): existence
and sign averaged in ``log_odds`` (the default) or as probabilities (``probability``,
the rule before). The rule is chosen on the validation columns; the test columns are
what it then gives.

Usage:
  python benchmarks/bench_blend.py [--seeds 0 1 2] [--threads 1] [--network FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ablation import load_network  # noqa: E402
from bench_model import DATA, mean_over_seeds  # noqa: E402

from models.blend import SPACES, blend_results  # noqa: E402
from models.data import SignedEvents, split_by_time  # noqa: E402
from models.evaluate import build_methods  # noqa: E402
from models.protocol import make_negatives, metrics_from, run_protocol  # noqa: E402
from models.signed_tgn import ModelConfig  # noqa: E402
from models.train import NeuralMethod, TrainConfig, fit_model  # noqa: E402

SHOWN = ("sign_auc", "sign_macro_f1", "sign_f1_neg", "exist_mrr", "three_class_macro_f1")


def one_seed(events: SignedEvents, seed: int, epochs: int) -> dict[str, Any]:
    """Both halves once; every method's and both blends' metrics, validation and test."""
    train = TrainConfig(epochs=epochs, seed=seed)
    split = split_by_time(events, train.train_frac, train.val_frac)
    negatives = make_negatives(events, split, train.batch_size, train.n_neg, train.eval_seed)
    cfg = ModelConfig(num_nodes=events.num_nodes)
    torch.manual_seed(seed)
    fit = fit_model(events, split, cfg, train, name="model")
    methods = [NeuralMethod("model", fit.model, train)]
    methods += [m for m, _ in build_methods(events, split, train, cfg.to_dict(),
                                            baselines=False, blend=True)]
    parts = [(run_protocol(m, events, split, negatives, train.batch_size, adapt=train.adapt),
              isinstance(m, NeuralMethod)) for m in methods]
    metrics = {m.name: metrics_from(res) for m, (res, _) in zip(methods, parts, strict=True)}
    for space in SPACES:
        metrics[f"blend_{space}"] = metrics_from(blend_results(parts, space=space))
    return {period: {name: {k: m[period][k] for k in SHOWN} for name, m in metrics.items()}
            for period in ("val", "test")}


def main() -> None:
    """Run the comparison and print its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", type=Path, default=DATA)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--horizon", type=float, default=None,
                    help="horizon (days) of a simulated network")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        events, source = load_network(args.network, tmp, 0, args.horizon)
    per_seed = [one_seed(events, seed, args.epochs) for seed in args.seeds]
    out = {"task": "blend_rule", "network": source, "seeds": args.seeds,
           "mean_val": mean_over_seeds([s["val"] for s in per_seed]),
           "mean_test": mean_over_seeds([s["test"] for s in per_seed]),
           "per_seed": per_seed}
    val = out["mean_val"]
    out["chosen_on_validation"] = max(
        SPACES, key=lambda sp: (val[f"blend_{sp}"]["sign_auc"], val[f"blend_{sp}"]["exist_mrr"]))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
