"""PNG plots of a scenario's metrics (matplotlib, Agg backend: no display needed).

Two figures per metric: its time series per arm (the mean across seeds with a 95%
confidence band that stays inside the metric's range, :mod:`sim.sweep.intervals`) and
the distribution of the runs' final values per arm (a box plot with every run drawn as a
point). One forest plot of every paired effect against the baseline
(:func:`plot_forest`) opens the report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sim.atomic import atomic_path  # noqa: E402
from sim.sweep.intervals import UNBOUNDED, bounded_ci_arrays, metric_bounds  # noqa: E402

__all__ = [
    "arm_order",
    "mean_band",
    "plot_final_distribution",
    "plot_forest",
    "plot_timeseries",
    "save_png",
    "slug",
]

_DPI = 100


def save_png(fig: plt.Figure, path: Path) -> None:
    """Write a figure as PNG atomically (no truncated file on a full disk) and close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


_SIZE = (7.0, 3.8)


def slug(name: str) -> str:
    """A file-name-safe version of a metric or arm name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "metric"


def arm_order(arms: Sequence[str], baseline: str = "baseline") -> list[str]:
    """The baseline first, then the other arms sorted by name."""
    unique = sorted(set(arms))
    return ([baseline] if baseline in unique else []) + [a for a in unique if a != baseline]


def mean_band(series: pd.DataFrame, level: float = 0.95,
              bounds: tuple[float, float] = UNBOUNDED) -> pd.DataFrame:
    """Mean and confidence band across seeds at each time of a common grid.

    Metrics are sampled on the same cadence in every run of a scenario, so times are
    aligned after rounding to 1e-9 days; a time present in only some runs uses those.
    The band at each time is the interval of :func:`sim.sweep.intervals.bounded_mean_ci`
    (the t-interval for an unbounded metric), so it never leaves ``bounds``.

    Args:
        series: Rows of one metric and one arm with columns ``run_id, t, value``.
        level: Confidence level of the band.
        bounds: The metric's ``(low, high)`` range.

    Returns:
        Indexed by ``t``: ``mean, low, high, n`` (the band is NaN where ``n < 2``).
    """
    df = series.assign(t=series["t"].astype(float).round(9))
    wide = df.pivot_table(index="t", columns="run_id", values="value", aggfunc="last")
    wide = wide.sort_index()
    n = wide.notna().sum(axis=1).to_numpy(dtype=np.float64)
    mean = wide.mean(axis=1).to_numpy(dtype=np.float64)
    sd = wide.std(axis=1, ddof=1).to_numpy(dtype=np.float64)
    low, high = bounded_ci_arrays(mean, sd, n, bounds, level,
                                  wide.min(axis=1).to_numpy(dtype=np.float64),
                                  wide.max(axis=1).to_numpy(dtype=np.float64))
    return pd.DataFrame(
        {"mean": mean, "low": low, "high": high, "n": n.astype(int)}, index=wide.index,
    )


def _colors(arms: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    cmap = plt.get_cmap("tab10")
    return {a: cmap(i % 10) for i, a in enumerate(arms)}


def plot_timeseries(
    frame: pd.DataFrame,
    name: str,
    path: Path,
    baseline: str = "baseline",
    level: float = 0.95,
) -> Path:
    """Plot one metric over time: per arm, the mean across seeds and its CI band.

    The band respects the metric's range (:func:`sim.sweep.intervals.metric_bounds`).

    Args:
        frame: Long metric frame (``run_id, arm, seed, t, name, value``).
        name: The metric to plot.
        path: Where to write the PNG.
        baseline: The baseline arm (drawn first).
        level: Confidence level of the band.

    Returns:
        ``path``.
    """
    df = frame[(frame["name"] == name) & frame["value"].notna()]
    arms = arm_order(list(df["arm"].unique()), baseline)
    colors = _colors(arms)
    fig, ax = plt.subplots(figsize=_SIZE, dpi=_DPI)
    for arm in arms:
        sub = df[df["arm"] == arm]
        band = mean_band(sub, level, metric_bounds(name))
        n_seeds = sub["run_id"].nunique()
        t = band.index.to_numpy(dtype=np.float64)
        ax.plot(t, band["mean"], color=colors[arm], lw=1.8, label=f"{arm} (n={n_seeds})")
        ax.fill_between(t, band["low"].to_numpy(dtype=np.float64),
                        band["high"].to_numpy(dtype=np.float64),
                        color=colors[arm], alpha=0.2, lw=0)
    ax.set_xlabel("time (days)")
    ax.set_ylabel(name)
    ax.set_title(f"{name}: mean across seeds, {round(level * 100)}% CI band")
    ax.grid(alpha=0.3)
    if arms:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_png(fig, path)
    return path


def plot_final_distribution(
    summaries: pd.DataFrame,
    name: str,
    path: Path,
    baseline: str = "baseline",
    stat: str = "final",
) -> Path:
    """Plot the distribution across seeds of one metric's final values, per arm.

    Args:
        summaries: Output of :func:`sim.sweep.stats.run_summaries`.
        name: The metric to plot.
        path: Where to write the PNG.
        baseline: The baseline arm (drawn first).
        stat: Which per-run summary to plot (``final`` or ``time_avg``).

    Returns:
        ``path``.
    """
    df = summaries[summaries["name"] == name]
    arms = arm_order(list(df["arm"].unique()), baseline)
    colors = _colors(arms)
    data = [df.loc[df["arm"] == a, stat].dropna().to_numpy(dtype=np.float64) for a in arms]
    fig, ax = plt.subplots(figsize=_SIZE, dpi=_DPI)
    if arms:
        ax.boxplot(data, positions=np.arange(len(arms)), widths=0.5, showfliers=False,
                   medianprops={"color": "black"})
        jitter = np.random.default_rng(0)
        for i, (arm, vals) in enumerate(zip(arms, data, strict=True)):
            x = i + jitter.uniform(-0.12, 0.12, vals.size)
            ax.scatter(x, vals, s=18, color=colors[arm], alpha=0.8, zorder=3)
        ax.set_xticks(np.arange(len(arms)), arms, rotation=20 if len(arms) > 4 else 0)
    label = "final value" if stat == "final" else "time-averaged value"
    ax.set_ylabel(f"{name} ({label})")
    ax.set_title(f"{name}: {label} per run")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_png(fig, path)
    return path


_STAT_TEXT = {"final": "final", "time_avg": "time-avg"}


def plot_forest(
    comparisons: pd.DataFrame,
    names: Sequence[str],
    arms: Sequence[str],
    path: Path,
    baseline: str = "baseline",
    alpha: float = 0.05,
) -> Path:
    """Forest plot of every paired effect (arm - baseline) with its confidence interval.

    One panel per metric, each on its own scale (metrics differ by orders of
    magnitude); in a panel one row per (arm, statistic): the mean paired difference as
    a marker (circle: final value, square: time average) and its interval as a line,
    coloured by arm. A filled marker is significant after Holm (``p_holm < alpha``), a
    hollow one is not; a grey cross on 0 marks a comparison left out of the Holm
    family because the metric is constant.

    Args:
        comparisons: Output of :func:`sim.sweep.stats.compare_arms`.
        names: Metrics in panel order (those absent from ``comparisons`` are skipped).
        arms: Arms in row order (the baseline, if listed, is skipped).
        path: Where to write the PNG.
        baseline: The baseline arm (named in the title).
        alpha: Level of the Holm-adjusted p below which a marker is filled.

    Returns:
        ``path``.
    """
    panels = [n for n in names if n in set(comparisons["name"])]
    rows = [(a, st) for a in arms if a != baseline
            for st in _STAT_TEXT if ((comparisons["arm"] == a) & (comparisons["stat"] == st)).any()]
    colors = _colors([a for a in arm_order(list(arms), baseline)])
    ncols = 2 if len(panels) > 3 else 1
    nrows = max(1, -(-len(panels) // ncols))
    height = 0.9 + nrows * (0.55 + 0.24 * max(1, len(rows)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(10.0 if ncols == 2 else 7.0, height),
                             dpi=_DPI, squeeze=False)
    ys = np.arange(len(rows))[::-1]
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.set_axis_off()
            continue
        name = panels[k]
        sub = comparisons[comparisons["name"] == name]
        for y, (arm, stat) in zip(ys, rows, strict=True):
            hit = sub[(sub["arm"] == arm) & (sub["stat"] == stat)]
            if hit.empty:
                continue
            r = hit.iloc[0]
            if r["excluded"] == "constant":
                ax.plot([0.0], [y], marker="x", color="0.55", ms=6, ls="none")
                continue
            color = colors[arm]
            if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
                ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=color, lw=1.6)
            filled = bool(r["p_holm"] < alpha)
            ax.plot([r["diff"]], [y], marker="o" if stat == "final" else "s", ms=5.5,
                    ls="none", color=color, mfc=color if filled else "white", mew=1.4)
        ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
        ax.set_yticks(ys, [f"{a} · {_STAT_TEXT[st]}" for a, st in rows], fontsize=7.5)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(name, fontsize=9.5, loc="left")
        ax.tick_params(axis="x", labelsize=7.5)
        ax.grid(alpha=0.3, axis="x")
    for ax in axes[-1]:
        if ax.axison:
            ax.set_xlabel(f"arm - {baseline}", fontsize=8)
    constant = ", x: constant, not tested" if (comparisons["excluded"] == "constant").any() else ""
    fig.suptitle(f"Paired effects against {baseline} (mean difference over seeds, 95% CI); "
                 f"filled: significant after Holm{constant}", fontsize=9.5)
    fig.tight_layout()
    save_png(fig, path)
    return path
