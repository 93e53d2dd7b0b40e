"""The pair table on sorted key tables beside the Python dict it replaced; prints JSON.

:class:`models.features.PairTable` keeps the count, last sign and last time of every
directed pair seen. The stream: a simulated run (the default scenario, seed 0, about
``--events`` events, as ``bench_model.py scale`` makes it) in batches of ``--batch``;
each batch is looked up (its true pairs and as many random pairs, as the online
features do before a batch) and then observed. Each variant runs in its own process on
the same stream, so that its host memory is its own:

* ``tables``: :class:`models.features.PairTable` (two sorted key tables, 24 bytes per
  pair in int64 key, int32 count, float32 sign and float64 time);
* ``dict``: the reference, a Python dict from key to ``(count, sign, time)``, the pair
  table before issue 10's third round.

Reported per variant: seconds in lookups and in observing; memory per pair, as the bytes
the table holds (the tensors' sizes; for the dict, ``sys.getsizeof`` of the dict, its
keys, tuples and their items) and as the process's resident memory added over the
stream (RSS after minus before; the allocator may reuse memory freed while loading, so
this can read low); and a digest of the final table, which must be the same.

Usage:
  python benchmarks/bench_pairs.py [--events 2000000] [--batch 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_scale import add_stream_arguments, simulated_batches  # noqa: E402

from models.features import PairTable  # noqa: E402


class DictPairs:
    """The reference: every pair in a Python dict (the table before the sorted tables)."""

    def __init__(self, num_nodes: int) -> None:
        self.num_nodes = num_nodes
        self.table: dict[int, tuple[int, float, float]] = {}

    def lookup(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(count, last_sign, last_time)`` of each pair (zeros if unseen)."""
        get = self.table.get
        rows = [get(k, (0, 0.0, 0.0)) for k in (u * self.num_nodes + v).tolist()]
        out = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), 3)
        return out[:, 0].float(), out[:, 1].float(), out[:, 2]

    def observe(self, u: Tensor, v: Tensor, sign: Tensor, t: Tensor) -> None:
        """Record true events in order."""
        table = self.table
        for k, s, tt in zip((u * self.num_nodes + v).tolist(), sign.tolist(), t.tolist(),
                            strict=True):
            old = table.get(k)
            table[k] = ((old[0] + 1) if old else 1, s, tt)

    def digest_rows(self) -> list[tuple[int, int, float, float]]:
        """Every pair as ``(key, count, sign, time)``, sorted by key."""
        return sorted((k, c, s, t) for k, (c, s, t) in self.table.items())


def _digest(rows: list[tuple[int, int, float, float]]) -> str:
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return hashlib.sha256(arr.tobytes()).hexdigest()


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """One variant over the whole stream, in this process."""
    ev, batches = simulated_batches(args)
    impl: PairTable | DictPairs = (PairTable(ev.num_nodes) if args.impl == "tables"
                                   else DictPairs(ev.num_nodes))
    gen = torch.Generator().manual_seed(0)
    rss0 = psutil.Process().memory_info().rss
    look = obs = 0.0
    for b in batches:
        r = torch.randint(0, ev.num_nodes, (2, len(b)), generator=gen)
        t0 = time.perf_counter()
        impl.lookup(torch.cat([b.src, r[0]]), torch.cat([b.dst, r[1]]))
        t1 = time.perf_counter()
        impl.observe(b.src, b.dst, b.sign, b.t)
        obs += time.perf_counter() - t1
        look += t1 - t0
    rss = psutil.Process().memory_info().rss - rss0
    if isinstance(impl, PairTable):
        held = impl.nbytes()
        keys, count, sign, t = impl.table()
        rows = list(zip(keys.tolist(), count.tolist(), sign.tolist(), t.tolist(), strict=True))
    else:
        held = sys.getsizeof(impl.table) + sum(
            sys.getsizeof(k) + sys.getsizeof(v) + sum(sys.getsizeof(x) for x in v)
            for k, v in impl.table.items())
        rows = impl.digest_rows()
    n = max(len(rows), 1)
    return {"impl": args.impl, "events": len(ev), "pairs": len(rows),
            "lookup_s": look, "observe_s": obs, "rss_added_mb": rss / 2**20,
            "rss_bytes_per_pair": rss / n, "held_bytes_per_pair": held / n,
            "table_digest": _digest(rows)}


def main() -> None:
    """Run both variants (each in a subprocess) and print the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_stream_arguments(ap, 2_000_000)
    ap.add_argument("--impl", choices=("tables", "dict"), default=None,
                    help="run one variant here (used by the benchmark itself)")
    args = ap.parse_args()
    if args.impl is not None:
        print(json.dumps(run_one(args)))
        return
    out: dict[str, Any] = {"task": "pair_table", "batch": args.batch, "threads": args.threads}
    for impl in ("tables", "dict"):
        cmd = [sys.executable, __file__, "--impl", impl, "--events", str(args.events),
               "--batch", str(args.batch), "--threads", str(args.threads)]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        out[impl] = json.loads(res.stdout.strip().splitlines()[-1])
    out["same_final_table"] = out["tables"]["table_digest"] == out["dict"]["table_digest"]
    out["held_memory_ratio_dict_over_tables"] = (out["dict"]["held_bytes_per_pair"]
                                                 / out["tables"]["held_bytes_per_pair"])
    out["time_ratio_dict_over_tables"] = (
        (out["dict"]["lookup_s"] + out["dict"]["observe_s"])
        / (out["tables"]["lookup_s"] + out["tables"]["observe_s"]))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
