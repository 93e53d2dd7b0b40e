"""PNG plots of a scenario's metrics (matplotlib, Agg backend: no display needed).

Two figures per metric: its time series per arm (the mean across seeds with a 95%
t-confidence band) and the distribution of the runs' final values per arm (a box plot
with every run drawn as a point).
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
from scipy import stats as sps  # noqa: E402

from sim.atomic import atomic_path  # noqa: E402

__all__ = [
    "arm_order",
    "mean_band",
    "plot_final_distribution",
    "plot_timeseries",
    "slug",
]

_DPI = 100


def _save(fig: plt.Figure, path: Path) -> None:
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


def mean_band(series: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean and t-confidence band across seeds at each time of a common grid.

    Metrics are sampled on the same cadence in every run of a scenario, so times are
    aligned after rounding to 1e-9 days; a time present in only some runs uses those.

    Args:
        series: Rows of one metric and one arm with columns ``run_id, t, value``.
        level: Confidence level of the band.

    Returns:
        Indexed by ``t``: ``mean, low, high, n`` (the band is NaN where ``n < 2``).
    """
    df = series.assign(t=series["t"].astype(float).round(9))
    wide = df.pivot_table(index="t", columns="run_id", values="value", aggfunc="last")
    wide = wide.sort_index()
    n = wide.notna().sum(axis=1).to_numpy(dtype=np.float64)
    mean = wide.mean(axis=1).to_numpy(dtype=np.float64)
    sd = wide.std(axis=1, ddof=1).to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(n >= 2, sps.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)), np.nan)
        half = q * sd / np.sqrt(n)
    return pd.DataFrame(
        {"mean": mean, "low": mean - half, "high": mean + half, "n": n.astype(int)},
        index=wide.index,
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
        band = mean_band(sub, level)
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
    _save(fig, path)
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
    _save(fig, path)
    return path
