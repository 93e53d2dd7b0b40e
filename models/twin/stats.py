"""Statistics of a span of signed events, and the scoreboard that compares generators.

:func:`stream_statistics` describes the events of a window (the real held-out span, or
one generated continuation of it) given the history before it. :data:`SCOREBOARD` lists
the ten headline statistics with one distance to the truth each (smaller is better);
:func:`compare` tabulates real against generated values per method over seeds, and
:func:`wins` counts, per method, the headline statistics on which it is strictly closest.
Nothing here imports torch: every statistic is vectorised numpy over the event arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from models.twin.observed import Stream
from sim.engine.metrics import balanced_triangle_share, signed_triangle_census

__all__ = [
    "EXTRAS",
    "PERCENTILE_MIN_SEEDS",
    "SCOREBOARD",
    "Statistic",
    "compare",
    "gini",
    "interval",
    "ks_distance",
    "relative_error",
    "stream_statistics",
    "top_share",
    "total_variation",
    "wins",
]

#: With at least this many seeds the 95% interval is the 2.5-97.5 percentile range of
#: the per-seed values; with fewer it is a t-interval around their mean.
PERCENTILE_MIN_SEEDS = 5

_Stats = Mapping[str, Any]


# -- the statistics of a window -----------------------------------------------------------
def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal; towards 1: concentrated).

    ``G = sum_i (2i - n - 1) x_(i) / (n sum x)`` over the ascending values ``x_(i)``,
    ``i = 1..n``.

    Args:
        values: Non-negative values (e.g. degrees).

    Returns:
        The coefficient; NaN when there is no value or they sum to 0.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.shape[0]
    total = float(x.sum())
    if n == 0 or total == 0.0:
        return math.nan
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(np.sum((2.0 * i - n - 1.0) * x) / (n * total))


def top_share(values: np.ndarray, fraction: float = 0.01) -> float:
    """Share of the total held by the top ``fraction`` of entries (at least one entry).

    The number of top entries is ``max(1, floor(fraction * n))``.

    Args:
        values: Non-negative values (e.g. degrees).
        fraction: Share of entries counted as the top.

    Returns:
        The share in [0, 1]; NaN when there is no value or they sum to 0.
    """
    x = np.asarray(values, dtype=np.float64)
    total = float(x.sum())
    if x.shape[0] == 0 or total == 0.0:
        return math.nan
    k = max(1, int(math.floor(fraction * x.shape[0])))
    return float(np.sort(x)[-k:].sum() / total)


def _degree_block(prefix: str, nodes: np.ndarray) -> dict[str, Any]:
    """Degree array (events per node with at least one) and its summaries."""
    _, counts = np.unique(nodes, return_counts=True)
    counts = counts.astype(np.int64)
    return {
        f"{prefix}_degree": counts,
        f"{prefix}_gini": gini(counts),
        f"{prefix}_top1": top_share(counts),
        f"{prefix}_max": int(counts.max(initial=0)),
    }


def _series(t: np.ndarray, negative: np.ndarray, t0: float, t1: float, windows: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Negative share per equal-time bin of ``[t0, t1]`` (NaN where empty) and the edges."""
    edges = np.linspace(t0, t1, windows + 1)
    span = t1 - t0
    if span > 0:
        which = np.floor((t - t0) / span * windows).astype(np.int64)
    else:
        which = np.zeros(t.shape[0], dtype=np.int64)
    which = np.clip(which, 0, windows - 1)
    events = np.bincount(which, minlength=windows).astype(np.float64)
    negatives = np.bincount(which, weights=negative.astype(np.float64), minlength=windows)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(events > 0, negatives / events, np.nan)
    return share, edges


def _mean_or_nan(x: np.ndarray) -> float:
    return float(x.mean()) if x.shape[0] else math.nan


def _pair_statistics(window: Stream, history: Stream) -> dict[str, float]:
    """Reciprocity, sign agreement and new-pair share (directed pairs, compact ids)."""
    n_w = len(window)
    if n_w == 0:
        return {"reciprocity": math.nan, "sign_agreement": math.nan, "new_pair_share": math.nan}
    src = np.concatenate([history.src, window.src])
    dst = np.concatenate([history.dst, window.dst])
    sign = np.concatenate([history.sign, window.sign])
    nodes, inv = np.unique(np.concatenate([src, dst]), return_inverse=True)
    n = np.int64(nodes.shape[0])
    m = src.shape[0]
    key = inv[:m].astype(np.int64) * n + inv[m:].astype(np.int64)
    # Each directed pair of history + window with its last sign (first in reversed order).
    pairs, first_rev = np.unique(key[::-1], return_index=True)
    last_sign = sign[::-1][first_rev]
    win_pairs = np.unique(key[len(history):])
    hist_pairs = np.unique(key[: len(history)])
    new_pairs = win_pairs.shape[0] - int(np.count_nonzero(np.isin(win_pairs, hist_pairs,
                                                                   assume_unique=True)))
    proper = win_pairs[win_pairs // n != win_pairs % n]  # a self-pair is its own reverse
    reverse = (proper % n) * n + proper // n
    pos = np.minimum(np.searchsorted(pairs, reverse), pairs.shape[0] - 1)
    has_rev = pairs[pos] == reverse
    own = np.searchsorted(pairs, proper[has_rev])
    agree = last_sign[own] == last_sign[pos[has_rev]]
    return {
        "reciprocity": _mean_or_nan(has_rev),
        "sign_agreement": _mean_or_nan(agree),
        "new_pair_share": new_pairs / n_w,
    }


def stream_statistics(window: Stream, history: Stream, t0: float, t1: float,
                      windows: int = 10) -> dict[str, Any]:
    """Statistics of a window of events given the history before it.

    Args:
        window: The events of ``[t0, t1]`` in time order (real or generated).
        history: The events before ``t0`` in time order.
        t0: Start of the window (the split time).
        t1: End of the window.
        windows: Number of equal-time bins of the negative-share series.

    Returns:
        ``event_count``; ``negative_share`` and ``negative_share_series`` (per bin, NaN
        when empty) with the bins' ``series_edges``; ``reciprocity`` (share of the
        window's distinct directed pairs ``(u, v)``, ``u != v``, whose reverse occurs in
        history or window); ``sign_agreement`` (among those, the share whose last sign
        equals the reverse pair's last sign); ``balanced_share``; ``new_pair_share``
        (window events whose directed pair had no earlier event); ``newcomer_share``
        (window events with an endpoint absent from history); ``in_degree`` and
        ``out_degree`` (events received / sent per node with at least one, by node id)
        with ``*_gini``, ``*_top1`` (share of the window's events of the top 1% nodes,
        at least one node) and ``*_max``; ``weight_pos`` and ``weight_neg`` (mean weight
        per sign); ``triad_census`` (shares of the window's signed triangles with 0..3
        negative edges). Shares are NaN when undefined.
    """
    n = len(window)
    negative = window.sign < 0
    series, edges = _series(window.t, negative, t0, t1, windows)
    census = signed_triangle_census(window.src, window.dst, window.sign).astype(np.float64)
    known = np.unique(np.concatenate([history.src, history.dst]))
    newcomer = ~(np.isin(window.src, known) & np.isin(window.dst, known))
    out: dict[str, Any] = {
        "event_count": n,
        "negative_share": _mean_or_nan(negative),
        "negative_share_series": series,
        "series_edges": edges,
        **_pair_statistics(window, history),
        "balanced_share": balanced_triangle_share(window.src, window.dst, window.sign),
        "newcomer_share": _mean_or_nan(newcomer),
        **_degree_block("in", window.dst),
        **_degree_block("out", window.src),
        "weight_pos": _mean_or_nan(window.weight[~negative]),
        "weight_neg": _mean_or_nan(window.weight[negative]),
        "triad_census": census / census.sum() if census.sum() > 0 else np.full(4, np.nan),
    }
    return out


# -- distances ------------------------------------------------------------------------------
def relative_error(value: float, truth: float) -> float:
    """``|value - truth| / |truth|``.

    Returns:
        0 when both are 0, ``inf`` when only the truth is 0 or the value is undefined
        while the truth is defined, NaN when the truth is undefined.
    """
    if not math.isfinite(truth):
        return math.nan
    if not math.isfinite(value):
        return math.inf
    if truth == 0:
        return 0.0 if value == 0 else math.inf
    return abs(value - truth) / abs(truth)


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance ``sup_x |F_a(x) - F_b(x)|``.

    Returns:
        The distance in [0, 1]; 1 when exactly one sample is empty, NaN when both are.
    """
    x = np.sort(np.asarray(a, dtype=np.float64))
    y = np.sort(np.asarray(b, dtype=np.float64))
    if x.shape[0] == 0 or y.shape[0] == 0:
        return math.nan if x.shape[0] == y.shape[0] else 1.0
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / x.shape[0]
    fy = np.searchsorted(y, grid, side="right") / y.shape[0]
    return float(np.max(np.abs(fx - fy)))


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance ``sum |p - q| / 2`` between two share vectors.

    Returns:
        The distance in [0, 1]; 1 when exactly one vector is undefined (NaN), NaN when
        both are.
    """
    p_ok = bool(np.all(np.isfinite(p)))
    q_ok = bool(np.all(np.isfinite(q)))
    if not (p_ok and q_ok):
        return math.nan if p_ok == q_ok else 1.0
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def _mean_degree(s: _Stats) -> float:
    sizes = s["in_degree"].shape[0] + s["out_degree"].shape[0]
    return 2.0 * s["event_count"] / sizes if sizes else math.nan


@dataclass(frozen=True)
class Statistic:
    """One row of the comparison: a scalar shown per run and a distance to the truth.

    Attributes:
        key: Short name (the ``stream_statistics`` key it reads, where there is one).
        label: Human description, naming the scalar shown in tables.
        value: The scalar of a statistics dict shown in tables.
        distance: Distance of a generated statistics dict to the real one (smaller is
            closer).
    """

    key: str
    label: str
    value: Callable[[_Stats], float]
    distance: Callable[[_Stats, _Stats], float]


def _scalar(key: str, label: str) -> Statistic:
    """A scalar statistic compared by relative error."""
    return Statistic(key, label, lambda s: float(s[key]),
                     lambda g, r: relative_error(float(g[key]), float(r[key])))


#: The ten headline statistics, in report order; every method is scored with the same
#: distance functions.
SCOREBOARD: tuple[Statistic, ...] = (
    _scalar("event_count", "event count"),
    _scalar("negative_share", "negative share"),
    _scalar("reciprocity", "reciprocity"),
    _scalar("sign_agreement", "sign agreement of reciprocated pairs"),
    _scalar("balanced_share", "balanced-triangle share"),
    _scalar("new_pair_share", "new-pair share"),
    _scalar("newcomer_share", "newcomer share"),
    Statistic(
        "degree", "in/out-degree distributions (shown: mean events per active node; "
        "distance: mean KS)", _mean_degree,
        lambda g, r: 0.5 * (ks_distance(g["in_degree"], r["in_degree"])
                            + ks_distance(g["out_degree"], r["out_degree"]))),
    Statistic(
        "weight", "mean weight per sign (shown: mean of the two; distance: mean rel. error)",
        lambda s: 0.5 * (float(s["weight_pos"]) + float(s["weight_neg"])),
        lambda g, r: 0.5 * (relative_error(float(g["weight_pos"]), float(r["weight_pos"]))
                            + relative_error(float(g["weight_neg"]), float(r["weight_neg"])))),
    Statistic(
        "triad_census", "signed triadic census (shown: share of +++ triangles; distance: TV)",
        lambda s: float(s["triad_census"][0]),
        lambda g, r: total_variation(g["triad_census"], r["triad_census"])),
)


def _census_share(k: int) -> Statistic:
    label = f"triangles with {k} negative edge{'s' if k != 1 else ''} (share)"
    return Statistic(f"triad_{k}", label, lambda s: float(s["triad_census"][k]),
                     lambda g, r: relative_error(float(g["triad_census"][k]),
                                                 float(r["triad_census"][k])))


#: Further statistics shown beside the scoreboard (compared by relative error, no wins).
EXTRAS: tuple[Statistic, ...] = (
    _scalar("in_gini", "in-degree Gini"),
    _scalar("out_gini", "out-degree Gini"),
    _scalar("in_top1", "in-degree top-1% share of events"),
    _scalar("out_top1", "out-degree top-1% share of events"),
    _scalar("in_max", "largest in-degree"),
    _scalar("out_max", "largest out-degree"),
    _scalar("weight_pos", "mean weight of positive events"),
    _scalar("weight_neg", "mean weight of negative events"),
    *(_census_share(k) for k in range(4)),
)


# -- comparison over seeds ----------------------------------------------------------------
def interval(values: Sequence[float] | np.ndarray, level: float = 0.95
             ) -> tuple[float, float, float, str]:
    """Mean and interval of per-seed values (non-finite values are left out).

    With at least :data:`PERCENTILE_MIN_SEEDS` values the interval is the percentile
    range (2.5-97.5 for 95%); with fewer, ``mean +- t_{n-1} sd / sqrt(n)``.

    Args:
        values: One value per seed.
        level: Coverage of the interval.

    Returns:
        ``(mean, low, high, kind)`` with ``kind`` ``"percentile"`` or ``"t"``; the bounds
        are NaN with fewer than two finite values.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = x.shape[0]
    if n == 0:
        return math.nan, math.nan, math.nan, "t"
    mean = float(x.mean())
    if n >= PERCENTILE_MIN_SEEDS:
        tail = 50.0 * (1.0 - level)
        lo, hi = np.percentile(x, [tail, 100.0 - tail])
        return mean, float(lo), float(hi), "percentile"
    if n < 2:
        return mean, math.nan, math.nan, "t"
    half = float(sps.t.ppf(0.5 + level / 2.0, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, "t"


def _mean_distance(values: list[float]) -> float:
    """Mean of per-seed distances; undefined seeds are left out, ``inf`` propagates."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.shape[0] else math.nan


def compare(real: _Stats, runs: Mapping[str, Sequence[_Stats]]) -> pd.DataFrame:
    """Real against generated statistics, one row per (statistic, method).

    Args:
        real: :func:`stream_statistics` of the real held-out window.
        runs: Per method, the statistics of each seed's generated window.

    Returns:
        Columns ``statistic`` (key), ``label``, ``scoreboard`` (True for the ten
        headline rows), ``method``, ``seeds``, ``real``, ``mean``, ``low``, ``high``
        (95% interval over seeds), ``interval`` (``percentile`` or ``t``),
        ``rel_error`` (signed relative error of the mean) and ``distance`` (mean over
        seeds of the per-seed distance to the real statistics).
    """
    rows: list[dict[str, Any]] = []
    for headline, table in ((True, SCOREBOARD), (False, EXTRAS)):
        for stat in table:
            truth = stat.value(real)
            for method, seeds in runs.items():
                mean, lo, hi, kind = interval([stat.value(s) for s in seeds])
                rel = relative_error(mean, truth)
                signed = rel if not math.isfinite(rel) or mean >= truth else -rel
                rows.append({
                    "statistic": stat.key, "label": stat.label, "scoreboard": headline,
                    "method": method, "seeds": len(seeds), "real": truth, "mean": mean,
                    "low": lo, "high": hi, "interval": kind, "rel_error": signed,
                    "distance": _mean_distance([stat.distance(s, real) for s in seeds]),
                })
    return pd.DataFrame(rows)


def wins(table: pd.DataFrame) -> dict[str, int]:
    """Per method, the number of scoreboard statistics on which it is strictly closest.

    A statistic counts for nobody when the smallest distance is shared or undefined.

    Args:
        table: Output of :func:`compare`.

    Returns:
        ``{method: count}`` for every method of the table.
    """
    out = {str(m): 0 for m in table["method"].unique()}
    board = table[table["scoreboard"] & table["distance"].notna()]
    for _, group in board.groupby("statistic", sort=False):
        best = group["distance"].min()
        closest = group[group["distance"] == best]
        if len(closest) == 1:
            out[str(closest["method"].iloc[0])] += 1
    return out
