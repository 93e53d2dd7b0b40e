"""The fidelity report of a twin: real held-out events against each generator, statistic by statistic.

:func:`write_fidelity_report` writes ``fidelity.md`` and the PNGs it links into a folder:
a header (what was split, seeds, fit times, generation speed), the scoreboard table
(:func:`fidelity_markdown`, also used at the top of a twin scenario's report), the extras
table, and three figures: the negative share per time bin, the in- and out-degree CCDFs,
and the per-statistic distances. Every file is written atomically (:mod:`sim.atomic`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from models.twin.stats import PERCENTILE_MIN_SEEDS, SCOREBOARD, compare, interval, wins  # noqa: E402
from sim.atomic import atomic_path, write_text_atomic  # noqa: E402
from sim.errors import SignsimError  # noqa: E402

__all__ = ["FIGURES", "fidelity_markdown", "fmt_value", "write_fidelity_report"]

#: File names of the figures, in report order.
FIGURES = ("fidelity_negative_share.png", "fidelity_degree_ccdf.png", "fidelity_distances.png")

_Stats = Mapping[str, Any]
_REAL_COLOR = "black"


def fmt_value(x: float) -> str:
    """A number in 4 significant digits; ``n/a`` for NaN or None, ``inf`` for infinity."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return "inf" if math.isinf(x) else f"{x:.4g}"


def _rel(r: float) -> str:
    if math.isnan(r):
        return "n/a"
    return "inf" if math.isinf(r) else f"{100 * r:+.1f}%"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    cells = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells[1:]])


def _cell(row: pd.Series) -> str:
    """``mean [lo, hi] (rel.err; d distance)`` of one (statistic, method) row."""
    band = ("" if math.isnan(row["low"]) or math.isnan(row["high"])
            else f" [{fmt_value(row['low'])}, {fmt_value(row['high'])}]")
    return f"{fmt_value(row['mean'])}{band} ({_rel(row['rel_error'])}; d {fmt_value(row['distance'])})"


def _rows(table: pd.DataFrame, scoreboard: bool) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the scoreboard or extras table (one column per method)."""
    part = table[table["scoreboard"] == scoreboard]
    methods = list(dict.fromkeys(part["method"]))
    header = ["statistic", "real", *methods] + (["closest"] if scoreboard else [])
    rows = []
    for number, (_, group) in enumerate(part.groupby("statistic", sort=False), start=1):
        by_method = group.set_index("method")
        label = str(group["label"].iloc[0])
        row = [f"{number}. {label}" if scoreboard else label, fmt_value(group["real"].iloc[0])]
        row += [_cell(by_method.loc[m]) for m in methods]
        if scoreboard:
            d = group["distance"]
            best = group[d == d.min()]["method"].tolist() if d.notna().any() else []
            row.append(best[0] if len(best) == 1 else ("tie: " + ", ".join(best) if best else "n/a"))
        rows.append(row)
    return header, rows


def fidelity_markdown(table: pd.DataFrame) -> str:
    """The scoreboard section of a fidelity report (Markdown), from :func:`compare`'s table.

    Args:
        table: Output of :func:`models.twin.stats.compare`.

    Returns:
        A ``## Fidelity scoreboard`` section: how to read it, the table (statistic, real
        value, per method ``mean [lo, hi] (rel.err; d distance)``, closest method) and
        the wins per method.
    """
    header, rows = _rows(table, scoreboard=True)
    seeds = int(table["seeds"].max()) if not table.empty else 0
    kind = ("2.5-97.5 percentile range of the per-seed values" if seeds >= PERCENTILE_MIN_SEEDS
            else "t-interval mean +- t(n-1) sd / sqrt(n) over seeds")
    won = wins(table)
    n_stats = len(SCOREBOARD)
    lines = [
        "## Fidelity scoreboard",
        f"Each cell: mean over {seeds} generated continuations, 95% interval ({kind}), "
        "relative error of the mean against the real held-out value, and d, the mean over "
        "seeds of the statistic's distance to the real one (relative error; KS for the "
        "degree distributions; total variation for the triadic census). \"closest\" is the "
        "method with the smallest d.",
        _md_table(header, rows),
    ]
    if "twin" in won:
        lines.append(f"twin closest on {won['twin']} of {n_stats}")
    lines.append("Closest per method: " + ", ".join(f"{m} {k}" for m, k in won.items())
                 + f" (of {n_stats}; ties count for nobody).")
    return "\n\n".join(lines) + "\n"


# -- figures ----------------------------------------------------------------------------------
def _colors(methods: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _save(fig: Any, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


def _plot_negative_share(real: _Stats, runs: Mapping[str, Sequence[_Stats]], path: Path) -> Path:
    edges = np.asarray(real["series_edges"], dtype=np.float64)
    mid = (edges[:-1] + edges[1:]) / 2.0
    colors = _colors(list(runs))
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for method, seeds in runs.items():
        series = np.array([s["negative_share_series"] for s in seeds], dtype=np.float64)
        bands = np.array([interval(col)[:3] for col in series.T]).reshape(-1, 3)
        ax.plot(mid, bands[:, 0], color=colors[method], lw=1.6, label=f"{method} (n={len(seeds)})")
        ax.fill_between(mid, bands[:, 1], bands[:, 2], color=colors[method], alpha=0.2, lw=0)
    ax.plot(mid, real["negative_share_series"], color=_REAL_COLOR, lw=2.2, marker="o", ms=3,
            label="real")
    ax.set_xlabel("time (days)")
    ax.set_ylabel("negative share")
    ax.set_title("Negative share per time bin: real vs generated (mean, 95% band)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def _ccdf(degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct degrees and the share of nodes with at least that degree."""
    x = np.sort(np.asarray(degrees, dtype=np.float64))
    values = np.unique(x)
    share = 1.0 - np.searchsorted(x, values, side="left") / max(x.shape[0], 1)
    return values, share


def _plot_degrees(real: _Stats, runs: Mapping[str, Sequence[_Stats]], path: Path) -> Path:
    colors = _colors(list(runs))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8))
    for ax, key, name in zip(axes, ("in_degree", "out_degree"), ("in-degree", "out-degree"),
                             strict=True):
        for method, seeds in runs.items():
            pooled = np.concatenate([np.asarray(s[key]) for s in seeds] or [np.empty(0)])
            if pooled.shape[0]:
                ax.loglog(*_ccdf(pooled), color=colors[method], lw=1.4, label=method)
        if np.asarray(real[key]).shape[0]:
            ax.loglog(*_ccdf(real[key]), color=_REAL_COLOR, lw=2.2, label="real")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{name} (events)")
        ax.set_ylabel("share of nodes with at least x")
        ax.set_title(f"{name} CCDF (generated: pooled over seeds)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def _plot_distances(table: pd.DataFrame, path: Path) -> Path:
    board = table[table["scoreboard"]]
    keys = list(dict.fromkeys(board["statistic"]))
    methods = list(dict.fromkeys(board["method"]))
    colors = _colors(methods)
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(9.0, 4.2))
    pos = np.arange(len(keys), dtype=np.float64)
    for i, method in enumerate(methods):
        d = board[board["method"] == method].set_index("statistic")["distance"]
        values = np.array([d.get(k, np.nan) for k in keys], dtype=np.float64)
        shown = np.where(np.isfinite(values), values, np.nan)
        x = pos + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, shown, width=width, color=colors[method], label=method)
        for xi in x[np.isinf(values)]:
            ax.annotate("inf", (xi, 0), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(pos, [f"{n}. {k}" for n, k in enumerate(keys, start=1)], rotation=30, ha="right",
                  fontsize=8)
    ax.set_ylabel("distance to real (smaller is closer)")
    ax.set_title("Scoreboard distance per statistic and method (mean over seeds)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


# -- the report ---------------------------------------------------------------------------------
def _meta_lines(meta: Mapping[str, Any]) -> list[str]:
    """One bullet per meta entry; dicts become ``key value`` lists."""
    def value(v: Any) -> str:
        if isinstance(v, Mapping):
            return ", ".join(f"{k} {value(x)}" for k, x in v.items()) or "none"
        if isinstance(v, float):
            return fmt_value(v)
        if isinstance(v, list | tuple):
            return ", ".join(value(x) for x in v)
        return str(v)

    labels = {"seconds": "seconds (fit, calibration, generation)",
              "events_per_s": "events/s of generation per method"}
    return [f"- {labels.get(k, k)}: {value(v)}" for k, v in meta.items()]


def write_fidelity_report(out_dir: str | Path, title: str, real: _Stats,
                          runs: Mapping[str, Sequence[_Stats]], meta: Mapping[str, Any]) -> Path:
    """Write ``fidelity.md`` and its PNGs (:data:`FIGURES`) into ``out_dir``.

    Args:
        out_dir: Output folder (created if needed).
        title: The report's title.
        real: :func:`models.twin.stats.stream_statistics` of the real held-out window.
        runs: Per method, the statistics of each seed's generated window.
        meta: What was split and how long things took (e.g. ``run``, ``t_split``,
            ``seeds``, ``seconds``, ``events_per_s``); each entry becomes a header line.

    Returns:
        The path of ``fidelity.md``.

    Raises:
        SignsimError: No method or seed to compare, or a file cannot be written (no
            partial file is left; an earlier report's files stay as they were).
    """
    if not runs or any(len(seeds) == 0 for seeds in runs.values()):
        raise SignsimError("A fidelity report needs at least one generated run per method; "
                           f"got {({m: len(s) for m, s in runs.items()})}.")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _write(out, title, real, runs, meta)
    except OSError as exc:
        raise SignsimError(
            f"Cannot write the fidelity report to '{out}': {exc.strerror or exc} "
            f"({exc.filename or out}). No partial file was left behind; the generated runs "
            "are in the database. Free space or choose another folder, then run again."
        ) from None


def _write(out: Path, title: str, real: _Stats, runs: Mapping[str, Sequence[_Stats]],
           meta: Mapping[str, Any]) -> Path:
    table = compare(real, runs)
    figures = [_plot_negative_share(real, runs, out / FIGURES[0]),
               _plot_degrees(real, runs, out / FIGURES[1]),
               _plot_distances(table, out / FIGURES[2])]
    header, rows = _rows(table, scoreboard=False)
    edges = real["series_edges"]
    parts = [
        f"# {title}",
        f"The observed run's delivered events were split in time; every method learned only "
        f"from the events before the split and generated the held-out span "
        f"[{fmt_value(float(edges[0]))}, {fmt_value(float(edges[-1]))}] days "
        f"({int(real['event_count'])} real events) once per seed. Methods: "
        + ", ".join(f"{m} ({len(s)} seeds)" for m, s in runs.items()) + ".",
        "\n".join(_meta_lines(meta)),
        fidelity_markdown(table).rstrip("\n"),
        "## Further statistics",
        _md_table(header, rows),
        "## Figures",
        *(f"![{name}]({path.name})" for name, path in zip(
            ("negative share per time bin", "in- and out-degree CCDF", "distance per statistic"),
            figures, strict=True)),
    ]
    return write_text_atomic(out / "fidelity.md", "\n\n".join(parts) + "\n")
