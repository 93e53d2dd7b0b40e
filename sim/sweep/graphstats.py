"""Temporal signed-graph statistics of one run (``signsim stats``).

Static figures over the whole stream (nodes, events, distinct pairs, positive share,
reciprocity, sign agreement of reciprocated pairs, balanced triangles) and per-window
series in the style of TGX (Shamsi et al., 2024): events, negative share, and the novelty
index -- the share of a window's distinct pairs never seen in any earlier window. The
surprise index is the share of test-period pairs (last 15% of time) absent from the
first 85%.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim.engine.metrics import balanced_triangle_share
from sim.store.database import Store

__all__ = ["graph_stats", "plot_stats", "stream_stats", "window_series"]


def _pair_keys(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    return src.astype(np.int64) * n + dst.astype(np.int64)


def window_series(t: np.ndarray, src: np.ndarray, dst: np.ndarray, sign: np.ndarray,
                  windows: int = 20) -> dict[str, np.ndarray]:
    """Per-window events, negative share and novelty index (``windows`` equal spans)."""
    n = int(max(src.max(initial=0), dst.max(initial=0))) + 1
    edges = np.linspace(t.min(initial=0.0), t.max(initial=1.0), windows + 1)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, windows - 1)
    keys = _pair_keys(src, dst, n)
    seen: set[int] = set()
    out = {"start": edges[:-1], "end": edges[1:], "events": np.zeros(windows),
           "negative_share": np.full(windows, np.nan), "novelty": np.full(windows, np.nan)}
    for w in range(windows):
        sel = which == w
        out["events"][w] = np.count_nonzero(sel)
        if not sel.any():
            continue
        out["negative_share"][w] = float(np.mean(sign[sel] < 0))
        pairs = np.unique(keys[sel])
        new = [k for k in pairs.tolist() if k not in seen]
        out["novelty"][w] = len(new) / pairs.shape[0]
        seen.update(new)
    return out


def stream_stats(t: np.ndarray, src: np.ndarray, dst: np.ndarray, sign: np.ndarray
                 ) -> dict[str, float]:
    """Whole-stream statistics of a signed event stream (events in time order)."""
    if t.shape[0] == 0:
        return {"events": 0.0}
    n = int(max(src.max(), dst.max())) + 1
    keys = _pair_keys(src, dst, n)
    pairs, last = np.unique(keys[::-1], return_index=True)
    last_sign = sign[::-1][last]
    pair_set = set(pairs.tolist())
    rev = (pairs % n) * n + pairs // n
    has_rev = np.fromiter((k in pair_set for k in rev.tolist()), bool, pairs.shape[0])
    sign_of = dict(zip(pairs.tolist(), last_sign.tolist(), strict=True))
    agree = [sign_of[k] == sign_of[r] for k, r in zip(pairs[has_rev].tolist(), rev[has_rev].tolist(),
                                                        strict=True)]
    cut = t.min() + 0.85 * (t.max() - t.min())
    train_pairs = set(keys[t <= cut].tolist())
    test_keys = np.unique(keys[t > cut])
    surprise = (np.mean([k not in train_pairs for k in test_keys.tolist()])
                if test_keys.size else float("nan"))
    nodes = np.unique(np.concatenate((src, dst))).shape[0]
    return {
        "nodes": float(nodes),
        "events": float(t.shape[0]),
        "distinct_pairs": float(pairs.shape[0]),
        "positive_share": float(np.mean(sign > 0)),
        "reciprocity": float(np.mean(has_rev)),
        "reciprocated_sign_agreement": float(np.mean(agree)) if agree else float("nan"),
        "balanced_triangles": balanced_triangle_share(src, dst, sign),
        "surprise_index": float(surprise),
        "days": float(t.max() - t.min()),
        "events_per_day": float(t.shape[0] / max(t.max() - t.min(), 1e-12)),
        "mean_degree": float(2.0 * pairs.shape[0] / max(nodes, 1)),
    }


def graph_stats(store: Store, run_id: int, windows: int = 20) -> dict[str, Any]:
    """Statistics of one run's delivered interactions: ``{"run": ..., "stats": ..., "series": ...}``."""
    run = store.run(run_id)
    ev = store.interactions(run_id, delivered_only=True)
    t, src, dst = ev["t"].astype(float), ev["src"].astype(np.int64), ev["dst"].astype(np.int64)
    sign = ev["sign"].astype(np.int64)
    series = window_series(t, src, dst, sign, windows) if t.size else {}
    return {"run": {k: run[k] for k in ("id", "scenario", "arm", "seed", "kind", "status")},
            "stats": stream_stats(t, src, dst, sign), "series": series}


def plot_stats(result: dict[str, Any], path: str | Path) -> Path:
    """Plot the per-window series (events, negative share, novelty) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["series"]
    mid = (s["start"] + s["end"]) / 2
    fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    for ax, key, label in zip(axes, ("events", "negative_share", "novelty"),
                              ("events per window", "negative share", "novelty index"), strict=True):
        ax.plot(mid, s[key], marker="o", ms=3)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (days)")
    run = result["run"]
    fig.suptitle(f"run {run['id']}: {run['scenario']} / {run['arm']} / seed {run['seed']}")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
