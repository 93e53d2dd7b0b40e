"""Statistics for comparing scenario arms: per-run summaries, CIs, paired tests, Holm.

Input is a long metric frame with columns ``run_id, arm, seed, t, name, value`` (see
:func:`sim.sweep.report.load_metrics`). Each run's time series is reduced to two summaries per
metric: its final value (the value at the run's last ``t``) and its time average (the
trapezoid integral over ``t`` divided by the covered time span). Arms are compared with
the baseline arm by pairing runs on their seed (the experiment uses common random
numbers, so seed ``s`` of every arm shares its random streams).

Arm means get intervals that stay inside each metric's range (:mod:`sim.sweep.intervals`).
Paired differences get the paired t-interval, the one that matches the paired t-test
(it excludes 0 exactly when p < 0.05), clipped to the range a difference of two values of
the metric can take (``[a - b, b - a]`` for a metric in ``[a, b]``). The Holm family is
every comparison with a p-value, less those of a metric and statistic that take one and
the same value in every run of every arm (nothing can differ there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps

from sim.errors import SignsimError
from sim.sweep.intervals import UNBOUNDED, bounded_mean_ci, metric_bounds

__all__ = [
    "STATISTICS",
    "arm_summary",
    "compare_arms",
    "constant_statistics",
    "format_p",
    "holm_adjust",
    "mean_ci",
    "paired_test",
    "run_summaries",
    "verdict",
]

#: Per-run summaries, as columns of :func:`run_summaries` and ``stat`` values elsewhere.
STATISTICS: tuple[str, ...] = ("final", "time_avg")


def mean_ci(values: npt.ArrayLike, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t confidence interval of independent values.

    Args:
        values: The sample (NaNs are dropped).
        level: Confidence level.

    Returns:
        ``(mean, low, high)``; the bounds are NaN with fewer than two values.
    """
    return bounded_mean_ci(values, UNBOUNDED, level)  # no bounds: the plain t-interval


def paired_test(
    arm: npt.ArrayLike, baseline: npt.ArrayLike, level: float = 0.95
) -> tuple[float, float, float, float]:
    """Paired t comparison of ``arm - baseline`` (one pair per seed).

    Args:
        arm: Values of the arm, one per seed.
        baseline: Values of the baseline for the same seeds, in the same order.
        level: Confidence level of the interval.

    Returns:
        ``(mean difference, CI low, CI high, two-sided p-value)``. With fewer than two
        pairs the interval and p are NaN. When every difference is equal the interval
        collapses to that value and p is 1 (all zero) or 0 (all equal and non-zero).
    """
    d = np.asarray(arm, dtype=np.float64).ravel() - np.asarray(baseline, dtype=np.float64).ravel()
    d = d[~np.isnan(d)]
    mean, lo, hi = mean_ci(d, level)
    if d.size < 2:
        return mean, lo, hi, math.nan
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return mean, mean, mean, 1.0 if mean == 0.0 else 0.0
    t_stat = mean / (sd / math.sqrt(d.size))
    p = float(2.0 * sps.t.sf(abs(t_stat), d.size - 1))
    return mean, lo, hi, p


def holm_adjust(pvalues: npt.ArrayLike) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    With the ``m`` defined p-values sorted ascending ``p(1) <= ... <= p(m)``, the
    adjusted value of ``p(i)`` is ``max_{j <= i} min(1, (m - j + 1) p(j))``. Rejecting
    where the adjusted p is below ``alpha`` controls the family-wise error rate at
    ``alpha``. NaN entries stay NaN and do not count in ``m``.

    Args:
        pvalues: Raw p-values in any order.

    Returns:
        Adjusted p-values in the input order.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def run_summaries(frame: pd.DataFrame) -> pd.DataFrame:
    """Final value and time average of every run's metric series.

    Args:
        frame: Long metric frame with columns ``run_id, arm, seed, t, name, value``.

    Returns:
        One row per (run, metric): ``run_id, arm, seed, name, n_points, t_end, final,
        time_avg``. A series with one point has ``time_avg`` equal to that point.
    """
    cols = ["run_id", "arm", "seed", "name", "n_points", "t_end", "final", "time_avg"]
    df = frame.dropna(subset=["value"])
    rows: list[dict[str, object]] = []
    for (run_id, arm, seed, name), g in df.groupby(["run_id", "arm", "seed", "name"], sort=True):
        g = g.sort_values("t")
        t = g["t"].to_numpy(dtype=np.float64)
        v = g["value"].to_numpy(dtype=np.float64)
        span = float(t[-1] - t[0])
        avg = float(np.trapezoid(v, t) / span) if span > 0 else float(v.mean())
        rows.append({
            "run_id": run_id, "arm": arm, "seed": seed, "name": name, "n_points": int(t.size),
            "t_end": float(t[-1]), "final": float(v[-1]), "time_avg": avg,
        })
    return pd.DataFrame(rows, columns=cols)


#: A metric's ``(low, high)`` range from its name.
Bounds = Callable[[str], tuple[float, float]]


def arm_summary(summaries: pd.DataFrame, level: float = 0.95,
                bounds: Bounds = metric_bounds) -> pd.DataFrame:
    """Mean and CI over seeds of each arm's final and time-averaged values.

    The interval respects the metric's range
    (:func:`sim.sweep.intervals.bounded_mean_ci`).

    Args:
        summaries: Output of :func:`run_summaries`.
        level: Confidence level.
        bounds: The range of a metric from its name (unbounded metrics get the
            t-interval).

    Returns:
        One row per (arm, metric, statistic): ``arm, name, stat, n, mean, ci_low,
        ci_high``.
    """
    rows: list[dict[str, object]] = []
    for (arm, name), g in summaries.groupby(["arm", "name"], sort=True):
        for stat in STATISTICS:
            mean, lo, hi = bounded_mean_ci(g[stat].to_numpy(), bounds(str(name)), level)
            rows.append({"arm": arm, "name": name, "stat": stat, "n": int(g[stat].notna().sum()),
                         "mean": mean, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["arm", "name", "stat", "n", "mean", "ci_low", "ci_high"])


def verdict(
    diff: float, lo: float, hi: float, base_mean: float, p_holm: float, n_pairs: int,
    alpha: float = 0.05,
) -> str:
    """One-line reading of a paired comparison against the baseline.

    Args:
        diff: Mean paired difference (arm - baseline).
        lo: Lower bound of its confidence interval.
        hi: Upper bound of its confidence interval.
        base_mean: Baseline mean (for the relative change).
        p_holm: Holm-adjusted p-value.
        n_pairs: Number of seed pairs.
        alpha: Level at which the Holm-adjusted p is called significant.

    Returns:
        ``"no detectable difference"`` when the CI covers 0, ``"lower by 12.5% (Holm p =
        0.003)"`` or ``"higher by ..."`` otherwise; a note when there are too few seeds
        for an interval. A comparison outside the Holm family (``p_holm`` NaN with an
        interval) reads ``"higher by ... (not in the Holm family)"``.
    """
    if n_pairs == 0 or math.isnan(diff):
        return "not compared: no seed in common with the baseline"
    if n_pairs < 2 or math.isnan(lo):
        return (f"cannot assess: {n_pairs} paired seed, no confidence interval "
                f"(difference {_change(diff, base_mean)})")
    if lo <= 0.0 <= hi:
        return "no detectable difference"
    direction = "lower" if diff < 0 else "higher"
    if math.isnan(p_holm):
        return f"{direction} by {_change(abs(diff), base_mean)} (not in the Holm family)"
    text = f"{direction} by {_change(abs(diff), base_mean)} ({format_p(p_holm, 'Holm p')})"
    if not p_holm < alpha:
        text += ", not significant after Holm correction"
    return text


def _change(diff: float, base: float) -> str:
    if base != 0.0 and math.isfinite(base):
        return f"{100.0 * diff / abs(base):+.1f}%".lstrip("+")
    return f"{diff:+.4g} (absolute; baseline mean is 0)".lstrip("+")


def format_p(p: float, label: str = "p") -> str:
    """A p-value as it is written in prose.

    Args:
        p: The p-value.
        label: What to call it (``"p"``, ``"Holm p"``); empty for a bare table cell.

    Returns:
        ``"p < 0.0001"`` below 0.0001, ``"p = 0.0003"`` below 0.001, ``"p = 0.012"``
        otherwise (three decimals), ``"p = n/a"`` for NaN; without the label (``""``)
        just ``"< 0.0001"`` or ``"0.012"``.
    """
    if math.isnan(p):
        value, rel = "n/a", "="
    elif p < 1e-4:
        value, rel = "0.0001", "<"
    else:
        value, rel = (f"{p:.4f}" if p < 1e-3 else f"{p:.3f}"), "="
    if not label:
        return value if rel == "=" else f"{rel} {value}"
    return f"{label} {rel} {value}"


def compare_arms(
    summaries: pd.DataFrame,
    baseline: str = "baseline",
    stats: Sequence[str] = STATISTICS,
    level: float = 0.95,
    bounds: Bounds = metric_bounds,
) -> pd.DataFrame:
    """Paired comparison of every arm with the baseline, for every metric and statistic.

    Runs are paired by seed; seeds missing from either side are left out. The Holm
    correction is applied across the rows that form the family: every row with a
    p-value, except the rows of a (metric, statistic) whose value is the same in every
    run of every arm (``excluded`` says ``"constant"``; a row without a p-value, fewer
    than two pairs, says ``"fewer than 2 pairs"``). Excluded rows have a NaN ``p_holm``.

    Args:
        summaries: Output of :func:`run_summaries`.
        baseline: Name of the baseline arm.
        stats: Which per-run statistics to compare (subset of :data:`STATISTICS`).
        level: Confidence level of the intervals.
        bounds: The range of a metric from its name; the interval of a difference is
            clipped to ``[low - high, high - low]``.

    Returns:
        One row per (arm, metric, statistic): ``arm, name, stat, n_pairs,
        baseline_mean, arm_mean, diff, ci_low, ci_high, rel_change, p_value, p_holm,
        excluded, verdict``. ``rel_change`` is ``diff / |baseline_mean|`` (NaN when that
        is 0); ``excluded`` is ``""`` for the rows of the Holm family.

    Raises:
        SignsimError: When the baseline arm has no run.
    """
    cols = ["arm", "name", "stat", "n_pairs", "baseline_mean", "arm_mean", "diff", "ci_low",
            "ci_high", "rel_change", "p_value", "p_holm", "excluded", "verdict"]
    arms = sorted(set(summaries["arm"]))
    if baseline not in arms:
        raise SignsimError(
            f"Baseline arm '{baseline}' has no complete run; arms present: "
            f"{', '.join(arms) or 'none'}."
        )
    constant = constant_statistics(summaries, stats)
    base = summaries[summaries["arm"] == baseline]
    rows: list[dict[str, object]] = []
    for arm in arms:
        if arm == baseline:
            continue
        cur = summaries[summaries["arm"] == arm]
        for name in sorted(set(cur["name"]) | set(base["name"])):
            merged = pd.merge(
                cur[cur["name"] == name], base[base["name"] == name],
                on="seed", suffixes=("_arm", "_base"),
            )
            lo_b, hi_b = bounds(str(name))
            for stat in stats:
                a = merged[f"{stat}_arm"].to_numpy(dtype=np.float64)
                b = merged[f"{stat}_base"].to_numpy(dtype=np.float64)
                diff, lo, hi, p = paired_test(a, b, level)
                base_mean = float(b.mean()) if b.size else math.nan
                excluded = ("constant" if (name, stat) in constant
                            else "fewer than 2 pairs" if math.isnan(p) else "")
                rows.append({
                    "arm": arm, "name": name, "stat": stat, "n_pairs": int(a.size),
                    "baseline_mean": base_mean,
                    "arm_mean": float(a.mean()) if a.size else math.nan,
                    "diff": diff, "ci_low": max(lo, lo_b - hi_b),
                    "ci_high": min(hi, hi_b - lo_b),
                    "rel_change": diff / abs(base_mean) if base_mean else math.nan,
                    "p_value": p, "excluded": excluded,
                })
    out = pd.DataFrame(rows, columns=cols)
    if out.empty:
        return out
    family = (out["excluded"] == "").to_numpy()
    out["p_holm"] = holm_adjust(np.where(family, out["p_value"].to_numpy(), math.nan))
    out["verdict"] = [
        "the same value in every run: not tested" if r["excluded"] == "constant" else
        verdict(float(r["diff"]), float(r["ci_low"]), float(r["ci_high"]),
                float(r["baseline_mean"]), float(r["p_holm"]), int(r["n_pairs"]))
        for r in out.to_dict("records")
    ]
    return out


def constant_statistics(
    summaries: pd.DataFrame, stats: Sequence[str] = STATISTICS
) -> set[tuple[str, str]]:
    """The (metric, statistic) pairs whose value is the same in every run of every arm.

    Such a pair has nothing to compare (every paired difference is 0, p = 1); the report
    leaves it out of the Holm family and says so. A pair with no value at all is not
    listed (it has no comparison either).

    Args:
        summaries: Output of :func:`run_summaries`.
        stats: The statistics to check.

    Returns:
        The constant ``(name, stat)`` pairs.
    """
    out: set[tuple[str, str]] = set()
    for name, g in summaries.groupby("name", sort=True):
        for stat in stats:
            v = g[stat].dropna().to_numpy(dtype=np.float64)
            if v.size and float(v.min()) == float(v.max()):
                out.add((str(name), stat))
    return out
