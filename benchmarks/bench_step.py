"""Where a training step's time goes, at two or more training batch sizes; prints JSON.

The stream: a simulated run (the default scenario, seed 0, about ``--events`` events, as
``bench_model.py scale`` makes it). One model per batch size in ``--sizes`` (same seed,
every model setting at its default unless ``--set``; ``fg_growth`` 0.05 unless set)
trains on the first ``--limit`` events with the per-batch loop of
:func:`models.train.fit_stream` (one :func:`models.step.train_step`, then the state
updates), the sizes taking turns window by window (``--window`` events each, so that
they share the machine's load). Timed per batch: the training step, and the updates of
the memory, the recent neighbours, the online features and the negative sampler.

Output per size: training events/s over the whole range, and milliseconds per batch of
each part over the whole range and over its last quarter (where the nodes' neighbour
lists are full).

Usage:
  python benchmarks/bench_step.py [--events 2000000] [--limit 600000]
      [--sizes 2000 10000] [--threads 2] [--set triads=false]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_scale import model_overrides, simulated_stream  # noqa: E402

from models.data import EventBatch, iter_batches  # noqa: E402
from models.sampling import TrainingNegatives  # noqa: E402
from models.signed_tgn import ModelConfig, SignedTGN, build_model  # noqa: E402
from models.step import train_step  # noqa: E402
from models.train import TrainConfig  # noqa: E402

PARTS = ("step", "memory", "neighbors", "features", "sampler")


class _Arm:
    """One model, its optimiser and sampler, and the time of each part."""

    def __init__(self, cfg: ModelConfig, batch: int) -> None:
        torch.manual_seed(0)
        self.model: SignedTGN = build_model(cfg)
        self.model.train()
        lr = TrainConfig(train_batch_size=batch).train_lr
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, fused=True)
        self.sampler = TrainingNegatives(cfg.num_nodes)
        self.gen = torch.Generator().manual_seed(1)
        self.batch = batch
        self.seconds: list[dict[str, float]] = []

    def run(self, batch: EventBatch) -> None:
        """Train on one batch and write it into the state, timing each part."""
        m = self.model
        args = (batch.src, batch.dst, batch.t, batch.sign, batch.weight)
        marks = [time.perf_counter()]
        train_step(m, batch, self.sampler, self.opt, self.gen)
        marks.append(time.perf_counter())
        with torch.no_grad():
            for part in (m.memory, m.neighbors, m.features):
                if part is not None:
                    part.observe(*args)
                marks.append(time.perf_counter())
        self.sampler.observe(batch.src, batch.dst)
        marks.append(time.perf_counter())
        self.seconds.append({k: b - a for k, a, b in zip(PARTS, marks[:-1], marks[1:], strict=True)})

    def summary(self, events: int) -> dict[str, Any]:
        """Events/s and ms per batch of each part (all batches, last quarter)."""
        def per_batch(rows: list[dict[str, float]]) -> dict[str, float]:
            return {k: 1000 * sum(r[k] for r in rows) / len(rows) for k in PARTS}

        total = sum(sum(r.values()) for r in self.seconds)
        last = self.seconds[-max(1, len(self.seconds) // 4):]
        return {"batch": self.batch, "lr": self.opt.param_groups[0]["lr"],
                "batches": len(self.seconds), "events_per_s": events / total,
                "ms_per_batch": per_batch(self.seconds),
                "ms_per_batch_last_quarter": per_batch(last)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000, help="events to simulate")
    ap.add_argument("--limit", type=int, default=600_000, help="events trained on")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000])
    ap.add_argument("--window", type=int, default=0,
                    help="events per turn (0: ten of the largest batch)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="model settings, e.g. triads=false")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    over: dict[str, Any] = {"fg_growth": 0.05, **model_overrides(args)}
    ev = simulated_stream(args.events, seed=0)
    end = min(args.limit, len(ev))
    cfg = ModelConfig(num_nodes=ev.num_nodes, **over)
    arms = [_Arm(cfg, b) for b in args.sizes]
    window = args.window or 10 * max(args.sizes)
    if any(window % b for b in args.sizes):
        window = math.lcm(*args.sizes) * max(1, window // math.lcm(*args.sizes))
    for w0 in range(0, end, window):
        w1 = min(w0 + window, end)
        for arm in arms:
            for batch in iter_batches(ev, w0, w1, arm.batch):
                arm.run(batch)
    print(json.dumps({"task": "step", "events": len(ev), "nodes": ev.num_nodes,
                      "trained_events": end, "threads": torch.get_num_threads(),
                      "window": window, "model_overrides": over,
                      "arms": [a.summary(end) for a in arms]}, indent=2))


if __name__ == "__main__":
    main()
