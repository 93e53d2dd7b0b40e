"""Benchmarks of the temporal signed-graph model; prints JSON (not a timed test).

Two tasks:

* ``accuracy``: Bitcoin OTC (``data/soc-sign-bitcoinotc.csv``) imported into a temporary
  database; for each seed, train the SEMBA-style model and run ``evaluate`` (strict online
  protocol, model beside every baseline), then average over seeds and check the targets.
* ``speed``: training events/s of our model and of a reference built on PyG's
  ``TGNMemory`` (same memory/time/embedding sizes, same neighbours and batch size, the
  training loop of PyG's ``examples/tgn.py``), interleaved chunk by chunk in one process
  so that both see the same machine load; plus state bytes per node. On CUDA when
  available (``--device auto``), otherwise CPU.

Usage::

    python benchmarks/bench_model.py speed [--device auto] [--events 20000]
    python benchmarks/bench_model.py accuracy [--seeds 0 1 2] [--epochs 10]
    python benchmarks/bench_model.py scale [--events 10000000] [--large-batch 5000]

``scale`` (in ``bench_scale.py``): a simulated run streamed from the database, trained at
batch 200 and at the large batch; events/s, peak host/device memory, test sign AUC, and
the PyG reference's events/s in the same run.

``speed`` needs the ``bench`` extra (``pip install torch_geometric``).
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

from models.data import SignedEvents, iter_batches, load_events  # noqa: E402
from models.memory import state_nbytes  # noqa: E402
from models.sampling import TrainingNegatives  # noqa: E402
from models.signed_tgn import ModelConfig, build_model  # noqa: E402
from models.train import TrainConfig, resolve_device, train_step  # noqa: E402
from sim.store.database import open_store  # noqa: E402
from sim.store.importers import import_network  # noqa: E402

DATA = ROOT / "data" / "soc-sign-bitcoinotc.csv"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Ours:
    def __init__(self, events: SignedEvents, cfg: ModelConfig, device: torch.device) -> None:
        torch.manual_seed(0)
        self.model = build_model(cfg).to(device)
        self.sampler = TrainingNegatives(cfg.num_nodes).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=True)
        self.gen = torch.Generator().manual_seed(0)
        self.model.train()

    def step(self, batch: Any) -> None:
        train_step(self.model, batch, self.sampler, self.opt, self.gen)
        self.model.observe(batch)
        self.sampler.observe(batch.src, batch.dst)

    def bytes_per_node(self) -> float:
        return self.model.state_bytes_per_node()


class _PyGReference:
    """PyG's TGN example (TGNMemory + LastNeighborLoader + TransformerConv + link head)."""

    def __init__(self, events: SignedEvents, cfg: ModelConfig, device: torch.device) -> None:
        from torch_geometric.nn import TGNMemory, TransformerConv
        from torch_geometric.nn.models.tgn import (
            IdentityMessage,
            LastAggregator,
            LastNeighborLoader,
        )

        torch.manual_seed(0)
        n = cfg.num_nodes
        self.device = device
        # TGNMemory keeps integer timestamps: seconds.
        self.t = (events.t.double() * 86_400).long().to(device)
        self.msg = torch.stack(
            [events.sign, events.weight, torch.zeros_like(events.sign)], dim=1
        ).to(device)
        self.memory = TGNMemory(n, 3, cfg.memory_dim, cfg.time_dim,
                                message_module=IdentityMessage(3, cfg.memory_dim, cfg.time_dim),
                                aggregator_module=LastAggregator()).to(device)
        time_enc = self.memory.time_enc

        class Embed(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = TransformerConv(cfg.memory_dim, cfg.embed_dim // cfg.heads,
                                            heads=cfg.heads, dropout=0.1,
                                            edge_dim=3 + time_enc.out_channels)

            def forward(self, x: Any, last_update: Any, edge_index: Any, t: Any, msg: Any) -> Any:
                rel_t = last_update[edge_index[0]] - t
                rel = time_enc(rel_t.to(x.dtype))
                return self.conv(x, edge_index, torch.cat([rel, msg], dim=-1))

        class Link(torch.nn.Module):
            def __init__(self, c: int) -> None:
                super().__init__()
                self.src = torch.nn.Linear(c, c)
                self.dst = torch.nn.Linear(c, c)
                self.out = torch.nn.Linear(c, 1)

            def forward(self, a: Any, b: Any) -> Any:
                return self.out((self.src(a) + self.dst(b)).relu())

        self.gnn = Embed().to(device)
        self.link = Link(cfg.embed_dim).to(device)
        self.loader = LastNeighborLoader(n, size=cfg.neighbors, device=device)
        params = set(self.memory.parameters()) | set(self.gnn.parameters()) | set(
            self.link.parameters())
        self.opt = torch.optim.Adam(params, lr=1e-3)
        self.assoc = torch.empty(n, dtype=torch.long, device=device)
        self.n = n
        self.memory.train()
        self.gnn.train()
        self.link.train()
        self.memory.reset_state()
        self.loader.reset_state()
        self.gen = torch.Generator().manual_seed(0)

    def step(self, batch: Any) -> None:
        crit = torch.nn.functional.binary_cross_entropy_with_logits
        self.opt.zero_grad()
        sl = slice(batch.start, batch.start + len(batch))
        src, dst, t, msg = batch.src, batch.dst, self.t[sl], self.msg[sl]
        neg = torch.randint(0, self.n, (len(batch),), generator=self.gen).to(self.device)
        n_id = torch.cat([src, dst, neg]).unique()
        n_id, edge_index, e_id = self.loader(n_id)
        self.assoc[n_id] = torch.arange(n_id.size(0), device=self.device)
        z, last_update = self.memory(n_id)
        z = self.gnn(z, last_update, edge_index, self.t[e_id], self.msg[e_id])
        pos = self.link(z[self.assoc[src]], z[self.assoc[dst]])
        negs = self.link(z[self.assoc[src]], z[self.assoc[neg]])
        loss = crit(pos, torch.ones_like(pos)) + crit(negs, torch.zeros_like(negs))
        self.memory.update_state(src, dst, t, msg)
        self.loader.insert(src, dst)
        loss.backward()
        self.opt.step()
        self.memory.detach()

    def bytes_per_node(self) -> float:
        tensors = sum(b.numel() * b.element_size() for b in self.memory.buffers())
        loader = (self.loader.neighbors.numel() + self.loader.e_id.numel()
                  + self.loader._assoc.numel()) * 8
        return (tensors + loader) / self.n

    def message_store_bytes_per_node(self) -> float:
        """Rough size of TGNMemory's two dict message stores (Python objects + data)."""
        total = 0
        for store in (self.memory.msg_s_store, self.memory.msg_d_store):
            total += sys.getsizeof(store)
            for key, entry in store.items():
                total += sys.getsizeof(key) + sys.getsizeof(entry)
                for t in entry:
                    total += sys.getsizeof(t) + t.numel() * t.element_size()
        return total / self.n


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved training throughput of ours and the PyG reference."""
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        run = import_network(db, DATA).run_id
        events = load_events(open_store(db), run).to(device)
    cfg = ModelConfig(num_nodes=events.num_nodes, memory_dim=args.memory_dim,
                      time_dim=args.time_dim, embed_dim=args.embed_dim,
                      neighbors=args.neighbors)
    ours, ref = _Ours(events, cfg, device), _PyGReference(events, cfg, device)
    end = min(args.events, len(events))
    batches = list(iter_batches(events, 0, end, args.batch_size))
    timed = {"ours": 0.0, "pyg": 0.0}
    counted = 0
    chunk = args.chunk
    for c0 in range(0, len(batches), chunk):
        part = batches[c0:c0 + chunk]
        for name, impl in (("ours", ours), ("pyg", ref)):
            _sync(device)
            t0 = time.perf_counter()
            for b in part:
                impl.step(b)  # type: ignore[attr-defined]
            _sync(device)
            if c0 >= args.warmup_batches:
                timed[name] += time.perf_counter() - t0
        if c0 >= args.warmup_batches:
            counted += sum(len(b) for b in part)
    eps = {k: counted / v if v else math.nan for k, v in timed.items()}
    out: dict[str, Any] = {
        "task": "speed",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "events_timed": counted,
        "batch_size": args.batch_size,
        "sizes": {"memory_dim": cfg.memory_dim, "time_dim": cfg.time_dim,
                  "embed_dim": cfg.embed_dim, "neighbors": cfg.neighbors},
        "ours_events_per_s": eps["ours"],
        "pyg_tgn_events_per_s": eps["pyg"],
        "ratio_ours_over_pyg": eps["ours"] / eps["pyg"],
        "ours_state_bytes_per_node": ours.bytes_per_node(),
        "ours_memory_bytes_per_node": state_nbytes(ours.model.memory) / cfg.num_nodes,
        "pyg_state_bytes_per_node_tensors": ref.bytes_per_node(),
        "pyg_message_store_bytes_per_node_approx": ref.message_store_bytes_per_node(),
        "note": "ours = two memories + online features + 4 heads, all state in tensors "
                "(plus the pair table of the features); PyG = one memory + link head, "
                "message stores in Python dicts (sizes approximate: sys.getsizeof).",
    }
    if device.type == "cuda":
        out["cuda_max_memory_allocated"] = torch.cuda.max_memory_allocated(device)
    return out


def mean_over_seeds(
    per_seed: list[dict[str, dict[str, float | None]]],
) -> dict[str, dict[str, float]]:
    """``{method: {metric: mean}}`` over seeds of ``{method: {metric: value}}`` (None = NaN)."""
    methods = list(per_seed[0])
    metrics = list(per_seed[0][methods[0]])

    def value(v: float | None) -> float:
        return math.nan if v is None else float(v)

    return {m: {k: sum(value(s[m][k]) for s in per_seed) / len(per_seed) for k in metrics}
            for m in methods}


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Train + evaluate on Bitcoin OTC for each seed; averages and target checks."""
    from models.evaluate import evaluate_model
    from models.train_job import train_run

    torch.set_num_threads(args.threads)
    per_seed = []
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        run = import_network(db, DATA).run_id
        for seed in args.seeds:
            t0 = time.perf_counter()
            tr = train_run(db, run, train=TrainConfig(epochs=args.epochs, seed=seed,
                                                      adapt=not args.frozen),
                           out_dir=tmp, device=args.device, progress=False)
            rep = evaluate_model(db, tr.model_id, device=args.device, progress=False,
                                 adapt=not args.frozen, ablations=args.ablations)
            per_seed.append({"seed": seed, "seconds": time.perf_counter() - t0,
                             "train_seconds": tr.seconds, "best_epoch": tr.best_epoch,
                             "test": rep.to_dict()["test"]})
            print(json.dumps({"seed": seed, "done_s": round(time.perf_counter() - t0, 1)}),
                  file=sys.stderr)
    mean = mean_over_seeds([s["test"] for s in per_seed])
    methods = list(mean)
    model = mean["model"]
    baselines = [m for m in methods if m != "model" and not m.startswith("ablation")]
    checks = {
        "sign_auc>=0.85": model["sign_auc"] >= 0.85,
        "sign_macro_f1>=0.73": model["sign_macro_f1"] >= 0.73,
        "beats_all_baselines_sign_macro_f1": all(
            model["sign_macro_f1"] > mean[b]["sign_macro_f1"] for b in baselines),
        "beats_all_baselines_exist_mrr": all(
            model["exist_mrr"] > mean[b]["exist_mrr"] for b in baselines),
    }
    return {"task": "accuracy", "dataset": "bitcoin-otc", "protocol":
            "strict online, batch 200, 70/15/15 by time, "
            + ("frozen weights" if args.frozen else "prequential adaptation"),
            "seeds": args.seeds, "epochs": args.epochs, "mean_test": mean,
            "checks": checks, "per_seed": per_seed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="task", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--device", default="auto")
    sp.add_argument("--events", type=int, default=20_000)
    sp.add_argument("--batch-size", type=int, default=200)
    sp.add_argument("--chunk", type=int, default=2, help="batches per interleaved chunk")
    sp.add_argument("--warmup-batches", type=int, default=10)
    sp.add_argument("--threads", type=int, default=2)
    sp.add_argument("--memory-dim", type=int, default=64)
    sp.add_argument("--time-dim", type=int, default=32)
    sp.add_argument("--embed-dim", type=int, default=64)
    sp.add_argument("--neighbors", type=int, default=10)
    ac = sub.add_parser("accuracy")
    ac.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ac.add_argument("--epochs", type=int, default=6)
    ac.add_argument("--device", default="auto")
    ac.add_argument("--threads", type=int, default=2)
    ac.add_argument("--frozen", action="store_true", help="no prequential adaptation")
    ac.add_argument("--ablations", action="store_true", help="also train the ablations")
    sc = sub.add_parser("scale", help="large-batch training streamed from a 10M-event run")
    from bench_scale import add_arguments, scale

    add_arguments(sc)
    args = parser.parse_args(argv)
    if args.task == "scale":
        result = scale(args)
    else:
        result = speed(args) if args.task == "speed" else accuracy(args)
    print(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
