"""The signed-triad index's updates beside a rebuild of it, in the same run; prints JSON.

The stream: a simulated run (the default scenario, seed 0, about ``--events`` events, one
agent per 100 events, as ``bench_model.py scale`` makes it) in a temporary SQLite file,
loaded into memory and observed in batches of ``--batch`` events.
Each variant observes the same batches in turn (interleaved every ``--every`` batches,
so that both share the machine's load) and the time of ``observe`` is summed per part of
the stream (the index grows with it):

* ``incremental``: :class:`models.triads.SignedTriads` (signs of entries already in the
  main table set in place, new entries merged into a small recent table, which is
  merged into the main one when it holds an eighth of it);
* ``rebuild``: the reference, the same table rebuilt from every directed pair seen at each
  batch (a stable sort of all of them and a ``unique``), the index before issue 10's
  second round.

Both end with the same table (checked). Then the query: the features of every batch's
true pairs and as many random pairs, timed the same way.

Usage:
  python benchmarks/bench_triads.py [--events 1000000] [--batch 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_scale import add_stream_arguments, simulated_batches  # noqa: E402

from models.triads import SignedTriads  # noqa: E402


class RebuiltTriads(SignedTriads):
    """The reference: every directed pair kept and the index rebuilt per batch."""

    def __init__(self, num_nodes: int) -> None:
        super().__init__(num_nodes)
        self.reset()

    def reset(self, device: torch.device | str | None = None) -> None:
        """Forget every edge."""
        super().reset(device)
        self.dkey = torch.zeros(0, dtype=torch.long)
        self.dsign = torch.zeros(0, dtype=torch.int8)

    @torch.no_grad()
    def observe(self, src: Tensor, dst: Tensor, sign: Tensor) -> None:
        """Append the batch's pairs, keep each pair's latest sign, rebuild the index."""
        n = self.num_nodes
        keep = src != dst
        key = torch.cat([self.dkey, (src * n + dst)[keep]])
        sgn = torch.cat([self.dsign, torch.where(sign[keep] > 0, 1, -1).to(torch.int8)])
        key, order = torch.sort(key, stable=True)
        sgn = sgn[order]
        last = torch.ones_like(key, dtype=torch.bool)
        last[:-1] = key[1:] != key[:-1]
        self.dkey, self.dsign = key[last], sgn[last]
        a, b = self.dkey // n, self.dkey % n
        zero = torch.zeros_like(self.dsign)
        nkey, inverse = torch.unique(torch.cat([a * n + b, b * n + a]), return_inverse=True)
        nout = torch.zeros(nkey.numel(), dtype=torch.int8).index_add_(
            0, inverse, torch.cat([self.dsign, zero]))
        nin = torch.zeros(nkey.numel(), dtype=torch.int8).index_add_(
            0, inverse, torch.cat([zero, self.dsign]))
        self.tables.main = (nkey, nout, nin)


def main() -> None:
    """Run the benchmark and print its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_stream_arguments(ap, 1_000_000)
    args = ap.parse_args()
    ev, batches = simulated_batches(args)
    impls = {"incremental": SignedTriads(ev.num_nodes), "rebuild": RebuiltTriads(ev.num_nodes)}
    parts = 4
    observe = {k: [0.0] * parts for k in impls}
    query = dict.fromkeys(impls, 0.0)
    gen = torch.Generator().manual_seed(0)
    for start in range(0, len(batches), args.every):
        turn = batches[start:start + args.every]
        part = start * parts // len(batches)
        randoms = [torch.randint(0, ev.num_nodes, (2, len(b)), generator=gen) for b in turn]
        for name, impl in impls.items():
            for b, r in zip(turn, randoms, strict=True):
                t0 = time.perf_counter()
                impl.query(torch.cat([b.src, r[0]]), torch.cat([b.dst, r[1]]))
                t1 = time.perf_counter()
                impl.observe(b.src, b.dst, b.sign)
                observe[name][part] += time.perf_counter() - t1
                query[name] += t1 - t0
    a, b = impls["incremental"], impls["rebuild"]
    same = all(torch.equal(x, y) for x, y in zip(a.table(), b.table(), strict=True))
    out: dict[str, Any] = {
        "task": "triad_index", "events": len(ev), "nodes": ev.num_nodes,
        "batch": args.batch, "batches": len(batches), "threads": args.threads,
        "directed_pairs": len(a), "index_entries": int(a.table()[0].numel()),
        "same_final_index": same,
        "observe_ms_per_batch_by_quarter": {
            k: [1e3 * s * parts / len(batches) for s in v] for k, v in observe.items()},
        "observe_total_s": {k: sum(v) for k, v in observe.items()},
        "query_ms_per_batch": {k: 1e3 * v / len(batches) for k, v in query.items()},
    }
    out["observe_speedup"] = out["observe_total_s"]["rebuild"] / out["observe_total_s"][
        "incremental"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
