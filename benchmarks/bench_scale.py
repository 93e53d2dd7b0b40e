"""``bench_model.py scale``: large-batch training streamed from a 10M-event run.

Steps, all in one process except the simulation and the in-memory load (subprocesses,
so that their memory does not count in this process's peak):

1. simulate a run of about ``--events`` events into a temporary SQLite file (or take
   ``--db``/``--run``);
2. read every delivered event from the database in chunks (keyset pagination) and
   record the reader's peak host memory, beside the peak of ``load_events`` (in-memory);
3. for the small (``--small-batch``, default 200) and the large (``--large-batch``)
   training batch: train ``--epochs`` epochs streamed from the database with
   :func:`models.train.fit_stream` (random chunk scheduling and the square-root learning
   rate for the large batch), then observe the validation period in protocol batches of
   200 (continuing from the end-of-training state, or after replaying training at batch
   200 with ``--replay`` or more than one epoch) and score the first ``--eval-events``
   test events under the strict protocol (batch 200, frozen weights): test sign AUC;
   training events/s, peak host RSS, peak device memory; ``--network FILE`` takes a
   snap-signed file (Bitcoin OTC) instead of a simulated run;
4. the PyG TGN reference (``TGNMemory`` etc., as in ``bench_model.py speed``) and ours,
   interleaved on the first ``--pyg-events`` events at both batch sizes: events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data import EventBatch, SignedEvents, iter_batches, load_events  # noqa: E402
from models.signed_tgn import ModelConfig  # noqa: E402
from models.step import resolve_device  # noqa: E402
from models.stream import iter_event_chunks, load_window, stream_batches, stream_info  # noqa: E402
from models.train import TrainConfig, fit_stream  # noqa: E402
from sim.store.database import open_store  # noqa: E402

__all__ = ["add_arguments", "add_stream_arguments", "model_overrides", "scale",
           "simulate_events", "simulated_batches", "simulated_stream"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _device_peak_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def simulate_events(db: str, events: int, seed: int) -> tuple[int, float, int]:
    """Simulate about ``events`` delivered events in a subprocess; (run id, seconds, n)."""
    agents = max(1_000, events // 100)
    code = (
        "import json, sys\nfrom sim.engine.simulate import simulate\n"
        f"p = simulate({db!r}, seed={seed}, n_agents={agents}, horizon=1.0)\n"
        "print(json.dumps([p.events]))\n"
    )
    pilot_db = db + ".pilot"
    code_pilot = code.replace(repr(db), repr(pilot_db))
    out = subprocess.run([sys.executable, "-c", code_pilot], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    per_day = max(json.loads(out.strip().splitlines()[-1])[0], 1)
    horizon = events / per_day
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code.replace("horizon=1.0", f"horizon={horizon:.6f}")
         .replace("[p.events]", "[p.run_id, p.events]")],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    run_id, n = json.loads(out.strip().splitlines()[-1])
    return int(run_id), time.perf_counter() - t0, int(n)


def simulated_stream(events: int, seed: int = 0) -> SignedEvents:
    """About ``events`` simulated events (:func:`simulate_events`), loaded into memory."""
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "stream.db")
        run, _, _ = simulate_events(db, events, seed=seed)
        store = open_store(db, create=False)
        try:
            return load_events(store, run)
        finally:
            store.dispose()


def add_stream_arguments(ap: argparse.ArgumentParser, events: int) -> None:
    """The options of a benchmark that interleaves variants over a simulated stream."""
    ap.add_argument("--events", type=int, default=events)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--every", type=int, default=10, help="batches per interleaved turn")
    ap.add_argument("--threads", type=int, default=2)


def simulated_batches(args: argparse.Namespace) -> tuple[SignedEvents, list[EventBatch]]:
    """Set the threads, simulate ``args.events`` events and cut them in ``args.batch``."""
    torch.set_num_threads(args.threads)
    ev = simulated_stream(args.events, seed=0)
    return ev, list(iter_batches(ev, 0, len(ev), args.batch))


def _in_memory_load_peak_mb(db: str, run: int) -> float:
    code = ("import resource\nfrom models.data import load_events\n"
            "from sim.store.database import open_store\n"
            f"ev = load_events(open_store({db!r}, create=False), {run})\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    base = ("import resource, torch, numpy, pandas, sqlalchemy\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    full = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    empty = subprocess.run([sys.executable, "-c", base], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout
    return float(full.split()[-1]) - float(empty.split()[-1])


@torch.no_grad()
def _test_sign_auc(model: Any, store: Any, info: Any, eval_events: int, chunk: int,
                   device: torch.device, replay: bool) -> tuple[float, int]:
    """Observe validation in batches of 200, then score test (batch 200, strict).

    With ``replay`` the state is rebuilt from the start at batch 200 (what ``evaluate``
    does); otherwise it continues from the state the training epoch left (the last
    epoch's, so use it with one epoch), which is much cheaper on a 10M-event run.
    """
    from sklearn.metrics import roc_auc_score

    split = info.split
    model.eval()
    start = split.train_end  # continue from the state training left (at train_end)
    if replay:  # or replay everything before validation at batch 200, as `evaluate` does
        model.reset_state()
        start = 0
    chunks = iter_event_chunks(store, info, start, split.val_end, chunk)
    for batch in stream_batches(chunks, 200, None, device):
        model.observe(batch)
    end = min(split.n, split.val_end + eval_events) if eval_events > 0 else split.n
    window = load_window(store, info, split.val_end, end, chunk).to(device)
    scores, labels = [], []
    for batch in iter_batches(window, 0, len(window), 200):
        out = model(batch.src, batch.dst, float(batch.t[0]))
        scores.append(out.sign.double().cpu().numpy())
        labels.append((batch.sign > 0).cpu().numpy())
        model.observe(batch)
    y, s = np.concatenate(labels), np.concatenate(scores)
    return float(roc_auc_score(y, s)), len(y)


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--set key=value`` model settings (JSON values: ``triads=false``, ``fg_iters=0``)."""
    out = {}
    for item in args.set:
        key, _, value = item.partition("=")
        out[key] = json.loads(value)
    return out


def _arm(store: Any, info: Any, args: argparse.Namespace, batch: int, epochs: int,
         seed: int, device: torch.device) -> dict[str, Any]:
    cfg = TrainConfig(epochs=epochs, batch_size=200, train_batch_size=batch,
                      stream_chunk=args.stream_chunk, val_window=args.val_window,
                      n_neg=20, select_neg=20, patience=args.patience or epochs, seed=seed,
                      adapt=False)
    mcfg = ModelConfig(num_nodes=info.num_nodes, **model_overrides(args))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    fit = fit_stream(store, info, mcfg, cfg, device, progress=args.progress,
                     name=f"batch{batch}")
    _sync(device)
    train_s = time.perf_counter() - t0
    peak_train = _peak_rss_mb()
    auc, n_eval = _test_sign_auc(fit.model, store, info, args.eval_events, args.stream_chunk,
                                 device, args.replay or epochs > 1)
    return {
        "seed": seed, "train_batch": batch, "lr": cfg.train_lr, "epochs": epochs,
        "best_epoch": fit.best_epoch,
        "events_per_s": fit.train_events_per_s,
        "train_wall_s_incl_validation": train_s,
        "val_sign_auc": fit.val_metrics.get("sign_auc"),
        "test_sign_auc": auc, "test_events_scored": n_eval,
        "rss_before_mb": rss0, "peak_rss_mb_after_training": peak_train,
        "node_state_mb": fit.model.state_bytes_per_node() * info.num_nodes / 2**20,
        "peak_device_mb": _device_peak_mb(device),
    }


def _reference(store: Any, info: Any, args: argparse.Namespace,
               device: torch.device) -> dict[str, Any]:
    """Ours and PyG's TGN interleaved on the first events, at both batch sizes."""
    from bench_model import _Ours, _PyGReference

    end = min(args.pyg_events, info.split.train_end)
    window = load_window(store, info, 0, end, args.stream_chunk).to(device)
    cfg = ModelConfig(num_nodes=info.num_nodes, **model_overrides(args))
    out: dict[str, Any] = {"events": end}
    for b in [x for x in (args.small_batch, args.large_batch) if x > 0]:
        impls = {"ours": _Ours(window, cfg, device), "pyg": _PyGReference(window, cfg, device)}
        batches = list(iter_batches(window, 0, end, b))
        timed = dict.fromkeys(impls, 0.0)
        counted = 0
        for c0 in range(0, len(batches), 2):
            part = batches[c0:c0 + 2]
            for name, impl in impls.items():
                _sync(device)
                t0 = time.perf_counter()
                for batch in part:
                    impl.step(batch)
                _sync(device)
                if c0 >= 2:
                    timed[name] += time.perf_counter() - t0
            if c0 >= 2:
                counted += sum(len(x) for x in part)
        eps = {k: counted / v if v else float("nan") for k, v in timed.items()}
        out[f"batch{b}"] = {"ours_events_per_s": eps["ours"], "pyg_events_per_s": eps["pyg"],
                            "ratio": eps["ours"] / eps["pyg"], "events_timed": counted}
    return out


def scale(args: argparse.Namespace) -> dict[str, Any]:
    """Run the scale benchmark; returns the JSON-safe result."""
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"task": "scale", "device": str(device),
                              "model_overrides": model_overrides(args),
                              "threads": torch.get_num_threads(),
                              "rss_after_imports_mb": _rss_mb()}
    with tempfile.TemporaryDirectory() as tmp:
        if args.db:
            db, run = args.db, int(args.run)
        elif args.network:
            from sim.store.importers import import_network

            db = os.path.join(tmp, "network.db")
            run = import_network(db, args.network).run_id
            result["network"] = Path(args.network).name
        else:
            db = os.path.join(tmp, "scale.db")
            run, sim_s, n = simulate_events(db, args.events, args.seed)
            result["simulation"] = {"events": n, "seconds": sim_s}
        store = open_store(db, create=False)
        info = stream_info(store, run)
        s = info.split
        result["run"] = {"events": info.n_events, "nodes": info.num_nodes,
                         "train_events": s.train_end, "val_events": s.val_end - s.train_end,
                         "test_events": s.n - s.val_end}
        rss0, t0, total = _rss_mb(), time.perf_counter(), 0.0
        for _, ev in iter_event_chunks(store, info, chunk=args.stream_chunk):
            total += float(ev.sign.sum())
        result["stream_read"] = {
            "events_per_s": info.n_events / (time.perf_counter() - t0),
            "chunk": args.stream_chunk, "rss_before_mb": rss0,
            "peak_rss_mb": _peak_rss_mb(),
            "in_memory_load_extra_peak_mb": _in_memory_load_peak_mb(db, run),
        }
        arms: dict[str, Any] = {}
        sizes = [(args.large_batch, args.large_epochs or args.epochs)]
        if args.small_batch > 0:  # 0: the large batch only (events/s and memory)
            sizes.append((args.small_batch, args.epochs))
        for b, epochs in sizes:
            runs = []
            for seed in args.seeds:
                runs.append(_arm(store, info, args, b, epochs, seed, device))
                print(json.dumps({"done": f"batch{b}", **runs[-1]}, default=float),
                      file=sys.stderr)
            aucs = [r["test_sign_auc"] for r in runs]
            arms[f"batch{b}"] = {
                "test_sign_auc_mean": float(np.mean(aucs)),
                "test_sign_auc_spread": float(np.max(aucs) - np.min(aucs)),
                "events_per_s_mean": float(np.mean([r["events_per_s"] for r in runs])),
                "per_seed": runs}
        result["arms"] = arms
        if args.small_batch > 0:
            large, small = arms[f"batch{args.large_batch}"], arms[f"batch{args.small_batch}"]
            result["large_vs_small"] = {
                "speedup": large["events_per_s_mean"] / small["events_per_s_mean"],
                "test_sign_auc_loss": small["test_sign_auc_mean"]
                - large["test_sign_auc_mean"],
            }
        if args.pyg_events > 0:
            result["reference"] = _reference(store, info, args, device)
        store.dispose()
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def add_arguments(sp: argparse.ArgumentParser) -> None:
    """Options of the ``scale`` subcommand."""
    sp.add_argument("--events", type=int, default=10_000_000, help="events to simulate")
    sp.add_argument("--db", default=None, help="use this database instead of simulating")
    sp.add_argument("--run", default=None, help="run id in --db")
    sp.add_argument("--large-batch", type=int, default=5_000)
    sp.add_argument("--small-batch", type=int, default=200)
    sp.add_argument("--network", default=None, help="a snap-signed file instead of simulating")
    sp.add_argument("--epochs", type=int, default=1, help="epochs at the small batch")
    sp.add_argument("--large-epochs", type=int, default=0, help="0: --epochs")
    sp.add_argument("--patience", type=int, default=0, help="0: no early stop")
    sp.add_argument("--seeds", type=int, nargs="+", default=[0])
    sp.add_argument("--replay", action="store_true",
                    help="evaluate after replaying the training period at batch 200 "
                         "(always with more than one epoch)")
    sp.add_argument("--stream-chunk", type=int, default=100_000)
    sp.add_argument("--val-window", type=int, default=20_000)
    sp.add_argument("--eval-events", type=int, default=50_000)
    sp.add_argument("--pyg-events", type=int, default=100_000)
    sp.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="model settings, e.g. triads=false")
    sp.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    sp.add_argument("--device", default="auto")
    sp.add_argument("--threads", type=int, default=2)
    sp.add_argument("--progress", action="store_true")
