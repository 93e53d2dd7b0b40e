"""The comparison report of a scenario: the answer first, then the evidence.

:func:`write_report` re-renders everything from the database alone: it reads the
``metrics`` of the scenario's complete runs (:func:`load_metrics`), summarises and
compares them (:mod:`sim.sweep.stats`), draws the PNGs (:mod:`sim.sweep.plots`) and writes
``report.md`` (Markdown) and ``report.html`` (standalone, the PNGs embedded as base64 data
URIs) into the output folder. Both open with a summary (per arm, the metrics that
changed, one sentence each, :mod:`sim.sweep.summary`; in the HTML the element
``<section id="summary">``), then a forest plot of every paired effect, the method and
the Holm family, and the details: runs, the table of every comparison, and per metric
its arm means and plots.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from sim.atomic import write_text_atomic
from sim.engine.metrics import METRIC_DESCRIPTIONS, METRIC_NAMES
from sim.errors import SignsimError
from sim.scenario import check_name
from sim.store.database import Store
from sim.sweep.document import Doc
from sim.sweep.intervals import INTERVAL_METHOD
from sim.sweep.plots import (
    arm_order,
    plot_final_distribution,
    plot_forest,
    plot_timeseries,
    slug,
)
from sim.sweep.stats import arm_summary, compare_arms, format_p, run_summaries
from sim.sweep.summary import family_text, summarise

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


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _ci(lo: float, hi: float) -> str:
    return "n/a" if math.isnan(lo) or math.isnan(hi) else f"[{_fmt(lo)}, {_fmt(hi)}]"


def _pv(p: float) -> str:
    return format_p(p, "")


def _rel(r: float) -> str:
    return "n/a" if math.isnan(r) else f"{100 * r:+.1f}%"


# -- the report ---------------------------------------------------------------------------
def write_report(
    store: Store, scenario: str, out_dir: str | Path, baseline: str = "baseline",
    *, progress: bool = True,
) -> Path:
    """Write the comparison report of a scenario from the database alone.

    Every file is written atomically (:mod:`sim.atomic`): after an error (a full disk,
    a folder without write permission) no truncated file is left, and files of an
    earlier report stay as they were.

    Args:
        store: The open store (read-only is enough).
        scenario: Scenario name as stored in ``runs.scenario``.
        out_dir: Output folder (created if needed); receives ``report.md``,
            ``report.html``, ``forest.png`` (when an arm is compared) and one
            ``ts_<metric>.png`` and ``final_<metric>.png`` per metric.
        baseline: The arm every other arm is compared with.
        progress: Show a progress bar over the rendering steps (on stderr).

    Returns:
        The path of ``report.md``.

    Raises:
        SignsimError: When the scenario has no complete run with metrics, the baseline
            arm has no complete run, or a file cannot be written.
    """
    check_name(scenario, "report", "--scenario")
    try:
        return _write_report(store, scenario, Path(out_dir), baseline, progress)
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


def _write_report(store: Store, scenario: str, out: Path, baseline: str,
                  progress: bool) -> Path:
    with tqdm(total=3, unit="step", desc=f"report {scenario}", disable=not progress,
              dynamic_ncols=True) as bar:
        return _render(store, scenario, out, baseline, bar)


def _step(bar: tqdm, what: str) -> None:
    bar.set_postfix_str(what, refresh=False)
    bar.update(1)


def _render(store: Store, scenario: str, out: Path, baseline: str, bar: tqdm) -> Path:
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
    _step(bar, "metrics read")
    summaries = run_summaries(frame)
    comparisons = compare_arms(summaries, baseline)
    per_arm = arm_summary(summaries)
    runs = selected_runs(store, scenario)
    runs = runs[runs["id"].isin(frame["run_id"].unique())]
    arms = arm_order(list(runs["arm"].unique()), baseline)
    present = set(frame["name"])
    names = [n for n in METRIC_NAMES if n in present] + sorted(present - set(METRIC_NAMES))
    bar.total = 3 + len(names) + (0 if comparisons.empty else 1)
    bar.refresh()
    _step(bar, "statistics")
    out.mkdir(parents=True, exist_ok=True)

    doc = Doc()
    doc.h(1, f"Comparison report: {scenario}")
    fidelity = _twin_fidelity(store, runs, baseline)
    _summary(doc, comparisons, names, arms, baseline, len(runs), twin=fidelity is not None)
    if fidelity is not None:
        note, header, rows = fidelity
        doc.h(2, "How far to trust the twin")
        doc.p(note)
        doc.table(header, rows)
    if not comparisons.empty:
        forest = plot_forest(comparisons, names, arms, out / "forest.png", baseline)
        _step(bar, "forest plot")
        doc.h(2, "Paired effects")
        doc.p("Every comparison with the baseline, one panel per metric on its own scale: "
              "the mean paired difference (circle: final value, square: time average) and "
              "its 95% CI. Filled markers are significant after Holm.")
        doc.img(f"paired effects against {baseline}", forest)
    doc.h(2, "Method")
    doc.p(
        f"Re-rendered from the database: {len(runs)} complete runs, {len(arms)} arms; "
        f"baseline arm `{baseline}`. Each run's metric series is summarised by its final "
        "value (at the last sampled time) and its time average (trapezoid rule). Arms are "
        "compared with the baseline by pairing runs on their seed (common random "
        "numbers): mean paired difference (arm - baseline) with its 95% paired t-interval "
        "(which excludes 0 exactly when the paired t-test gives p < 0.05; clipped to the "
        "range a difference of the metric can take) and the paired t-test, its p-value "
        "Holm-Bonferroni adjusted over the family stated in the summary. A verdict reads \"no detectable "
        "difference\" when the interval covers 0."
    )
    doc.p(INTERVAL_METHOD)
    doc.h(2, "Runs")
    older = store.frame(
        f"SELECT id FROM runs WHERE scenario = :s AND status = 'complete' AND id NOT IN "
        f"({_SELECTED}) ORDER BY id", {"s": scenario})["id"].tolist()
    doc.p("Per (arm, seed), the newest complete run of the scenario (the highest id)."
          + (f" Older complete runs of the same (arm, seed), kept in the database but not "
             f"used here ({len(older)}, e.g. from `signsim run --fresh`): ids "
             f"{', '.join(str(i) for i in older[:20])}{', ...' if len(older) > 20 else ''}."
             if older else ""))
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
              _pv(r["p_holm"]) if not r["excluded"] else f"not in family ({r['excluded']})",
              r["verdict"]]
             for r in cmp_sorted.to_dict("records")],
        )
    doc.h(2, "Metrics")
    doc.p("Per metric: each arm's mean over seeds with its 95% interval (inside the "
          "metric's range, see Method), its series over time (mean and band) and its final "
          "values per run.")
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
        _step(bar, name)

    md_path = write_text_atomic(out / "report.md", doc.markdown())
    write_text_atomic(out / "report.html", doc.html(f"signsim report: {scenario}"))
    _step(bar, "written")
    return md_path


def _summary(doc: Doc, comparisons: pd.DataFrame, names: list[str], arms: list[str],
             baseline: str, n_runs: int, twin: bool) -> None:
    """The summary section: per arm, what changed against the baseline."""
    doc.section("summary")
    doc.h(2, "Summary")
    if comparisons.empty:
        doc.p(f"Only the baseline arm `{baseline}` has complete runs ({n_runs}): nothing "
              "to compare.")
        doc.section(None)
        return
    doc.p(f"Each arm against `{baseline}`, runs paired on their seed: the mean paired "
          "difference (arm - baseline) of a metric's final value and of its time average, "
          "with its 95% confidence interval and its Holm-adjusted p-value. A change is "
          "called clear when its Holm p is below 0.05. Details: Method and the tables "
          "below.")
    for s in summarise(comparisons, names, arms, baseline):
        seeds = "1 paired seed" if s.n_pairs == 1 else f"{s.n_pairs} paired seeds"
        doc.h(3, f"`{s.arm}` against `{baseline}` ({seeds})")
        doc.p(f"In short: {s.in_short()}")
        lines = [c.sentence for c in s.changed]
        if s.constant:
            lines.append("Not tested, the same value in every run of every arm: "
                         + ", ".join(f"`{n}` ({_fmt(v)})" for n, v in s.constant) + ".")
        if s.unassessable:
            lines.append("Cannot be assessed (fewer than 2 paired seeds): "
                         + ", ".join(f"`{n}`" for n in s.unassessable) + ".")
        if lines:
            doc.items(lines)
    doc.p(family_text(comparisons, names, baseline))
    if twin:
        doc.p(f"`{baseline}` runs on a learned twin of a real network: read these effects "
              "only as far as the fidelity table below allows.")
    doc.section(None)
