"""The comparison report of a scenario: metrics per arm, paired by seed, CIs, plots.

:func:`write_report` re-renders everything from the database alone: it reads the
``metrics`` of the scenario's complete runs (:func:`load_metrics`), summarises and
compares them (:mod:`sim.sweep.stats`), draws the PNGs (:mod:`sim.sweep.plots`) and writes
``report.md`` (Markdown tables, verdicts, image links) and ``report.html`` (standalone,
the PNGs embedded as base64 data URIs) into the output folder.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sim.atomic import write_text_atomic
from sim.engine.metrics import METRIC_DESCRIPTIONS, METRIC_NAMES
from sim.errors import SignsimError
from sim.scenario import check_name
from sim.store.database import Store
from sim.sweep.plots import arm_order, plot_final_distribution, plot_timeseries, slug
from sim.sweep.stats import arm_summary, compare_arms, run_summaries

__all__ = ["load_metrics", "selected_runs", "write_report"]

_SELECTED = (
    "SELECT MAX(id) FROM runs WHERE scenario = :s AND status = 'complete' GROUP BY arm, seed"
)
_STAT_LABEL = {"final": "final", "time_avg": "time-avg"}


def selected_runs(store: Store, scenario: str) -> pd.DataFrame:
    """The runs a report uses: per (arm, seed), the newest complete run of the scenario.

    "Newest" is the highest run id (ids grow with creation time).

    Args:
        store: The open store.
        scenario: Scenario name as stored in ``runs.scenario``.

    Returns:
        Columns ``id, arm, seed, started_at, finished_at``, ordered by arm and seed.
    """
    return store.frame(
        f"SELECT id, arm, seed, started_at, finished_at FROM runs WHERE id IN ({_SELECTED}) "
        "ORDER BY arm, seed",
        {"s": scenario},
    )


def load_metrics(store: Store, scenario: str) -> pd.DataFrame:
    """The metric time series of a scenario's complete runs, joined with their arm and seed.

    Only runs with status ``complete`` count; when several complete runs share a
    scenario, arm and seed, only the newest (highest id) is kept.

    Args:
        store: The open store.
        scenario: Scenario name as stored in ``runs.scenario``.

    Returns:
        Long frame with columns ``run_id, arm, seed, t, name, value``, ordered by arm,
        seed, name and t.
    """
    df = store.frame(
        "SELECT m.run_id AS run_id, r.arm AS arm, r.seed AS seed, m.t AS t, m.name AS name, "
        "m.value AS value FROM metrics m JOIN runs r ON r.id = m.run_id "
        f"WHERE r.id IN ({_SELECTED}) ORDER BY r.arm, r.seed, m.name, m.t",
        {"s": scenario},
    )
    if df.empty:
        return pd.DataFrame({
            "run_id": pd.Series(dtype="int64"), "arm": pd.Series(dtype="object"),
            "seed": pd.Series(dtype="int64"), "t": pd.Series(dtype="float64"),
            "name": pd.Series(dtype="object"), "value": pd.Series(dtype="float64"),
        })
    return df.astype({"run_id": "int64", "seed": "int64", "t": "float64", "value": "float64"})


# -- a tiny document model rendered to both Markdown and HTML ----------------------------
@dataclass
class _H:
    level: int
    text: str


@dataclass
class _P:
    text: str


@dataclass
class _Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class _Img:
    alt: str
    path: Path


@dataclass
class _Doc:
    blocks: list[_H | _P | _Table | _Img] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(_H(level, text))

    def p(self, text: str) -> None:
        self.blocks.append(_P(text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(_Table(header, rows))

    def img(self, alt: str, path: Path) -> None:
        self.blocks.append(_Img(alt, path))

    def markdown(self) -> str:
        out: list[str] = []
        for b in self.blocks:
            if isinstance(b, _H):
                out.append(f"{'#' * b.level} {b.text}")
            elif isinstance(b, _P):
                out.append(b.text)
            elif isinstance(b, _Table):
                cell = [[c.replace("|", "\\|") for c in r] for r in [b.header, *b.rows]]
                lines = ["| " + " | ".join(cell[0]) + " |",
                         "|" + "|".join("---" for _ in b.header) + "|"]
                lines += ["| " + " | ".join(r) + " |" for r in cell[1:]]
                out.append("\n".join(lines))
            else:
                out.append(f"![{b.alt}]({b.path.name})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        body: list[str] = []
        for b in self.blocks:
            if isinstance(b, _H):
                body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
            elif isinstance(b, _P):
                body.append(f"<p>{_inline_html(b.text)}</p>")
            elif isinstance(b, _Table):
                head = "".join(f"<th>{html.escape(c)}</th>" for c in b.header)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                    for r in b.rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            else:
                b64 = base64.b64encode(b.path.read_bytes()).decode("ascii")
                body.append(f'<img alt="{html.escape(b.alt)}" src="data:image/png;base64,{b64}">')
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
            "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
            "th{background:#f2f2f2}img{max-width:100%;display:block;margin:.5em 0}"
            "code{background:#f4f4f4;padding:0 3px}"
        )
        return (
            f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n"
        )


def _inline_html(text: str) -> str:
    """Escape text and turn `code` spans into <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _ci(lo: float, hi: float) -> str:
    return "n/a" if math.isnan(lo) or math.isnan(hi) else f"[{_fmt(lo)}, {_fmt(hi)}]"


def _pv(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _rel(r: float) -> str:
    return "n/a" if math.isnan(r) else f"{100 * r:+.1f}%"


# -- the report ---------------------------------------------------------------------------
def write_report(
    store: Store, scenario: str, out_dir: str | Path, baseline: str = "baseline"
) -> Path:
    """Write the comparison report of a scenario from the database alone.

    Every file is written atomically (:mod:`sim.atomic`): after an error (a full disk,
    a folder without write permission) no truncated file is left, and files of an
    earlier report stay as they were.

    Args:
        store: The open store (read-only is enough).
        scenario: Scenario name as stored in ``runs.scenario``.
        out_dir: Output folder (created if needed); receives ``report.md``,
            ``report.html`` and one ``ts_<metric>.png`` and ``final_<metric>.png`` per
            metric.
        baseline: The arm every other arm is compared with.

    Returns:
        The path of ``report.md``.

    Raises:
        SignsimError: When the scenario has no complete run with metrics, the baseline
            arm has no complete run, or a file cannot be written.
    """
    check_name(scenario, "report", "--scenario")
    try:
        return _write_report(store, scenario, Path(out_dir), baseline)
    except OSError as exc:
        raise SignsimError(
            f"Cannot write the report of scenario '{scenario}' to '{out_dir}': "
            f"{exc.strerror or exc} ({exc.filename or out_dir}). No partial file was left "
            "behind; free space or choose another folder with --out, then run "
            "`signsim report` again (the runs are in the database)."
        ) from None


def _twin_fidelity(store: Store, runs: pd.DataFrame, baseline: str
                   ) -> tuple[str, list[str], list[list[str]]] | None:
    """The fidelity section when the baseline arm ran on a learned twin (else None).

    The twin settings come from the scenario text stored with the runs; a relative twin
    path resolves from the working folder, then from ``scenarios/``. Imports the learning
    side only for twin scenarios.
    """
    ids = [int(i) for i in runs.loc[runs["arm"] == baseline, "id"]]
    if not ids:
        return None
    text = store.run(ids[0]).get("scenario_text") or ""
    if "twin" not in text:
        return None
    from sim.scenario import parse_scenario

    try:
        scenario = parse_scenario(text)
    except SignsimError:
        return None
    arm = next((a for a in scenario.arms if a.name == baseline), None)
    if arm is None or not arm.config.dynamics.twin:
        return None
    from sim.plugins import twin_fidelity_rows

    dyn = arm.config.dynamics
    return twin_fidelity_rows(store, ids, dyn.twin, dyn.twin_split, arm.config.horizon)


def _write_report(store: Store, scenario: str, out: Path, baseline: str) -> Path:
    frame = load_metrics(store, scenario)
    if frame.empty:
        statuses = store.frame(
            "SELECT status, COUNT(*) AS n FROM runs WHERE scenario = :s GROUP BY status",
            {"s": scenario},
        )
        found = ", ".join(f"{r.n} {r.status}" for r in statuses.itertuples()) or "no run"
        raise SignsimError(
            f"Cannot report on scenario '{scenario}': it has no complete run with metrics "
            f"in the database ({found})."
        )
    summaries = run_summaries(frame)
    comparisons = compare_arms(summaries, baseline)
    per_arm = arm_summary(summaries)
    runs = selected_runs(store, scenario)
    runs = runs[runs["id"].isin(frame["run_id"].unique())]
    arms = arm_order(list(runs["arm"].unique()), baseline)
    present = set(frame["name"])
    names = [n for n in METRIC_NAMES if n in present] + sorted(present - set(METRIC_NAMES))
    out.mkdir(parents=True, exist_ok=True)

    doc = _Doc()
    doc.h(1, f"Comparison report: {scenario}")
    n_cmp = int(comparisons["p_value"].notna().sum()) if not comparisons.empty else 0
    doc.p(
        f"Re-rendered from the database: {len(runs)} complete runs, {len(arms)} arms; "
        f"baseline arm `{baseline}`. Each run's metric series is summarised by its final "
        "value (at the last sampled time) and its time average (trapezoid rule). Arm means "
        "carry 95% t-confidence intervals over seeds. Arms are compared with the baseline "
        "by pairing runs on their seed (common random numbers): mean paired difference "
        "(arm - baseline) with a 95% t-interval and a paired t-test, Holm-Bonferroni "
        f"adjusted across all {n_cmp} comparisons of this report. A verdict reads "
        "\"no detectable difference\" when the interval covers 0."
    )
    fidelity = _twin_fidelity(store, runs, baseline)
    if fidelity is not None:
        note, header, rows = fidelity
        doc.h(2, "How far to trust the twin")
        doc.p(note)
        doc.table(header, rows)
    doc.h(2, "Runs")
    doc.table(["arm", "seeds", "run ids"], [
        [a, ", ".join(str(s) for s in runs.loc[runs["arm"] == a, "seed"]),
         ", ".join(str(i) for i in runs.loc[runs["arm"] == a, "id"])]
        for a in arms
    ])
    doc.h(2, f"Verdicts against `{baseline}`")
    if comparisons.empty:
        doc.p(f"Only the baseline arm `{baseline}` has complete runs: nothing to compare.")
    else:
        order = {n: i for i, n in enumerate(names)}
        cmp_sorted = comparisons.assign(
            _m=comparisons["name"].map(order), _a=comparisons["arm"].map(arms.index)
        ).sort_values(["_m", "_a", "stat"], kind="stable")
        doc.table(
            ["metric", "arm", "statistic", "pairs", "baseline mean", "arm mean", "difference",
             "95% CI", "change", "p", "Holm p", "verdict"],
            [[r["name"], r["arm"], _STAT_LABEL.get(r["stat"], r["stat"]), str(r["n_pairs"]),
              _fmt(r["baseline_mean"]), _fmt(r["arm_mean"]), _fmt(r["diff"]),
              _ci(r["ci_low"], r["ci_high"]), _rel(r["rel_change"]), _pv(r["p_value"]),
              _pv(r["p_holm"]), r["verdict"]]
             for r in cmp_sorted.to_dict("records")],
        )
    doc.h(2, "Metrics")
    for name in names:
        doc.h(3, name)
        if name in METRIC_DESCRIPTIONS:
            doc.p(METRIC_DESCRIPTIONS[name])
        rows = []
        for arm in arms:
            sel = per_arm[(per_arm["arm"] == arm) & (per_arm["name"] == name)]
            if sel.empty:
                continue
            fin = sel[sel["stat"] == "final"].iloc[0]
            avg = sel[sel["stat"] == "time_avg"].iloc[0]
            rows.append([arm, str(fin["n"]), _fmt(fin["mean"]), _ci(fin["ci_low"], fin["ci_high"]),
                         _fmt(avg["mean"]), _ci(avg["ci_low"], avg["ci_high"])])
        doc.table(["arm", "seeds", "final mean", "final 95% CI", "time-avg mean",
                   "time-avg 95% CI"], rows)
        ts = plot_timeseries(frame, name, out / f"ts_{slug(name)}.png", baseline)
        fin_png = plot_final_distribution(summaries, name, out / f"final_{slug(name)}.png",
                                          baseline)
        doc.img(f"{name} over time", ts)
        doc.img(f"{name} final values", fin_png)

    md_path = write_text_atomic(out / "report.md", doc.markdown())
    write_text_atomic(out / "report.html", doc.html(f"signsim report: {scenario}"))
    return md_path
