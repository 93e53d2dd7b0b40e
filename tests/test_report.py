import math

import numpy as np
import pytest
from scipy import stats as sps

from sim.errors import SignsimError
from sim.store.database import Store
from sim.sweep.plots import mean_band
from sim.sweep.report import load_metrics, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TS = (0.0, 1.0, 2.0)
# final negative_share per seed; the series is (0.5, 0.5, final)
FINALS = {"baseline": {1: 0.10, 2: 0.12, 3: 0.14}, "moderation": {1: 0.08, 2: 0.09, 3: 0.11}}


def _add_run(store, arm, seed, finals, status="complete", scenario="demo"):
    rid = store.create_run(scenario=scenario, arm=arm, seed=seed)
    rows = []
    for t, v in zip(TS, (0.5, 0.5, finals), strict=True):
        rows.append({"run_id": rid, "t": t, "name": "negative_share", "value": v})
        rows.append({"run_id": rid, "t": t, "name": "opinion_variance", "value": 0.2 + seed * t})
    store.write_rows("metrics", rows)
    if status != "running":
        store.finish_run(rid, status)
    return rid


@pytest.fixture
def store(tmp_path):
    st = Store(str(tmp_path / "sim.db"))
    # an older complete run of (baseline, 1) with other values: superseded by the newer one
    _add_run(st, "baseline", 1, 0.99)
    for arm, finals in FINALS.items():
        for seed, v in finals.items():
            _add_run(st, arm, seed, v)
    _add_run(st, "moderation", 4, 0.99, status="running")
    _add_run(st, "moderation", 5, 0.99, status="failed")
    _add_run(st, "baseline", 1, 0.99, scenario="other")
    yield st
    st.dispose()


def test_load_metrics_keeps_newest_complete_runs(store):
    df = load_metrics(store, "demo")
    assert list(df.columns) == ["run_id", "arm", "seed", "t", "name", "value"]
    assert df["run_id"].nunique() == 6
    assert sorted(set(zip(df["arm"], df["seed"], strict=True))) == [
        ("baseline", 1), ("baseline", 2), ("baseline", 3),
        ("moderation", 1), ("moderation", 2), ("moderation", 3),
    ]
    assert 0.99 not in set(df["value"])
    assert 1 not in set(df["run_id"])  # the superseded run
    assert load_metrics(store, "nope").empty


def test_write_report(store, tmp_path):
    out = tmp_path / "report"
    md_path = write_report(store, "demo", out, progress=False)
    assert md_path == out / "report.md"
    md = md_path.read_text()
    html = (out / "report.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["final_negative_share.png", "final_opinion_variance.png", "forest.png",
                    "ts_negative_share.png", "ts_opinion_variance.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
        assert f"]({name})" in md
    assert html.count("data:image/png;base64,") == 5
    assert "<table>" in html and "report.md" not in html
    # negative_share final: d = [-0.02, -0.03, -0.03] -> mean -0.02667, -22.2% of 0.12
    half = sps.t.ppf(0.975, 2) * math.sqrt(1 / 3) / 100 / math.sqrt(3)
    assert "| 0.12 | 0.09333 | -0.02667 |" in md
    assert f"[{-0.08 / 3 - half:.4g}, {-0.08 / 3 + half:.4g}]" in md
    assert "| -22.2% |" in md
    # p = 1 - 8/sqrt(66) before correction (4 comparisons in the family)
    p = 1 - 8 / math.sqrt(66)
    assert f"| {p:.3f} | {4 * p:.3f} | lower by 22.2% (Holm p = {4 * p:.3f})" in md
    assert "Holm family: the 4 paired comparisons of `moderation` with `baseline` on " \
        "`opinion_variance`, `negative_share`, each on its final value and its time " \
        "average" in md and "No comparison was left out." in md
    # Holm p = 0.061: nothing is a clear change
    assert "In short: no clear change in `opinion_variance`, `negative_share`.\n" in md
    # opinion_variance is 0.2 + seed*t in both arms: identical -> no detectable difference
    assert "| opinion_variance | moderation | final | 3 | 4.2 | 4.2 | 0 | [0, 0] |" in md
    assert "no detectable difference" in md
    assert "| baseline | 1, 2, 3 |" in md
    # the answer first: summary, forest plot, method, then the details
    order = [md.index(h) for h in ("# Comparison report", "## Summary", "## Paired effects",
                                   "## Method", "## Runs", "## Verdicts", "## Metrics")]
    assert order == sorted(order)
    assert html.index('<section id="summary">') < html.index("<h2>Paired effects</h2>")
    assert "logit scale" in md and "log scale" in md
    # re-rendering from the database alone gives the same Markdown
    assert write_report(store, "demo", out, progress=False).read_text() == md


def test_report_with_one_seed_says_so(tmp_path):
    st = Store(str(tmp_path / "one.db"))
    _add_run(st, "baseline", 1, 0.1)
    _add_run(st, "friction", 1, 0.05)
    md = write_report(st, "demo", tmp_path / "r", progress=False).read_text()
    assert "cannot assess: 1 paired seed, no confidence interval (difference -50.0%)" in md
    assert "n/a" in md
    # with seed 1 alone opinion_variance (0.2 + t) is the same in both runs: constant
    assert "### `friction` against `baseline` (1 paired seed)" in md
    assert "- Not tested, the same value in every run of every arm: `opinion_variance` " \
        "(2.2)." in md
    assert "- Cannot be assessed (fewer than 2 paired seeds): `negative_share`." in md
    assert "Holm family: empty, no comparison has a p-value. Left out: `opinion_variance` " \
        "(final value and time average): the same value in every run of every arm, so " \
        "there is no difference to test; `negative_share` (final value and time average): " \
        "fewer than 2 paired seeds, so no p-value." in md
    st.dispose()


def test_report_errors(store, tmp_path):
    with pytest.raises(SignsimError, match="no complete run with metrics"):
        write_report(store, "nope", tmp_path / "x", progress=False)
    with pytest.raises(SignsimError, match="Baseline arm 'control'"):
        write_report(store, "demo", tmp_path / "x", baseline="control", progress=False)


def test_mean_band_aligns_runs_on_time_grid():
    import pandas as pd

    df = pd.DataFrame({
        "run_id": [1, 1, 2, 2, 3],
        "t": [0.0, 1.0, 0.0, 1.0 + 1e-12, 0.0],
        "value": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    band = mean_band(df)
    assert list(band.index) == [0.0, 1.0]
    assert band["mean"].tolist() == [3.0, 3.0]
    assert band["n"].tolist() == [3, 2]
    half = sps.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)
    assert band["high"].iloc[0] == pytest.approx(3.0 + half)
    assert np.isclose(band["low"].iloc[1], 3.0 - sps.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2))


def test_summary_states_a_clear_change_and_the_holm_family(tmp_path):
    st = Store(str(tmp_path / "clear.db"))
    base = {1: 0.20, 2: 0.22, 3: 0.24, 4: 0.26}
    arm = {1: 0.10, 2: 0.122, 3: 0.14, 4: 0.162}  # d = -0.1, -0.098, -0.1, -0.098
    for name, finals in (("baseline", base), ("moderation", arm)):
        for seed, final in finals.items():
            rid = st.create_run(scenario="demo", arm=name, seed=seed)
            rows = []
            for t, v in zip(TS, (0.5, 0.5, final), strict=True):
                rows.append({"run_id": rid, "t": t, "name": "negative_share", "value": v})
                rows.append({"run_id": rid, "t": t, "name": "opinion_variance",
                             "value": 0.2 + seed * t})
                rows.append({"run_id": rid, "t": t, "name": "suspended", "value": 0.0})
            st.write_rows("metrics", rows)
            st.finish_run(rid, "complete")
    out = tmp_path / "r"
    md = write_report(st, "demo", out, progress=False).read_text()
    html = (out / "report.html").read_text()
    st.dispose()
    # final: mean d = -0.099, sd = 0.002/sqrt(3), half-width t(0.975, 3) sd / 2 = 0.001837;
    # -0.099 / 0.23 = -43.0%. Time average = 0.375 + final / 4: d / 4, the same t.
    half = sps.t.ppf(0.975, 3) * 0.002 / math.sqrt(3) / 2
    assert half == pytest.approx(0.0018374, abs=1e-7)
    p = 2 * sps.t.sf(0.099 / (0.002 / math.sqrt(3) / 2), 3)
    # Holm over the family of 4 (suspended left out) gives both 4 p, far below 0.0001
    assert 4 * p < 1e-4
    sentence = (
        "- `moderation` lowers `negative_share`: the final value by 0.0990 (-43.0%; 95% CI "
        "0.0972 to 0.1008; Holm p < 0.0001) and the time average by 0.02475 (-5.7%; 95% CI "
        "0.02429 to 0.02521; Holm p < 0.0001), paired over 4 seeds: clear decrease."
    )
    assert sentence in md
    assert "In short: lower `negative_share`; no clear change in `opinion_variance`.\n" in md
    assert "- Not tested, the same value in every run of every arm: `suspended` (0)." in md
    assert ("Holm family: the 4 paired comparisons of `moderation` with `baseline` on "
            "`opinion_variance`, `negative_share`, each on its final value and its time "
            "average; their p-values are adjusted together. Left out: `suspended` (final "
            "value and time average): the same value in every run of every arm, so there is "
            "no difference to test.") in md
    assert "| suspended | moderation | final | 4 |" in md
    assert "| not in family (constant) | the same value in every run: not tested |" in md
    assert "= <" not in md and "= <" not in html
    summary = html[html.index('<section id="summary">'):html.index("</section>")]
    assert "<li><code>moderation</code> lowers <code>negative_share</code>" in summary


def test_plot_band_of_a_share_near_one_stays_inside_its_range(tmp_path):
    import pandas as pd

    from sim.sweep.plots import plot_timeseries

    df = pd.DataFrame({
        "run_id": [1, 1, 2, 2, 3, 3], "arm": ["baseline"] * 6, "seed": [1, 1, 2, 2, 3, 3],
        "t": [0.0, 1.0] * 3, "name": ["balanced_triangles"] * 6,
        "value": [1.0, 1.0, 1.0, 0.98, 0.9, 0.8],
    })
    plain = mean_band(df)
    assert plain["high"].max() > 1.0  # the t-band would leave [0, 1]
    band = mean_band(df, bounds=(0.0, 1.0))
    assert (band["high"] <= 1.0).all() and (band["low"] >= 0.0).all()
    assert (band["low"] < band["mean"]).all() and (band["mean"] < band["high"]).all()
    png = plot_timeseries(df, "balanced_triangles", tmp_path / "ts.png")
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_report_shows_progress_unless_told_not_to(store, tmp_path, capsys):
    write_report(store, "demo", tmp_path / "a")
    err = capsys.readouterr().err
    # 3 steps + 2 metrics + the forest plot
    assert "report demo" in err and "6/6" in err and "written" in err
    write_report(store, "demo", tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""


def test_cli_report_shows_progress_unless_no_progress(store, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    db = str(tmp_path / "sim.db")  # the fixture's database
    runner = CliRunner()
    res = runner.invoke(app, ["report", "--scenario", "demo", "--db", db, "--out",
                              str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "report demo" in res.stderr and "6/6" in res.stderr
    assert res.stdout == f"report: {tmp_path / 'a' / 'report.md'} (and report.html)\n"
    res = runner.invoke(app, ["report", "--scenario", "demo", "--db", db, "--out",
                              str(tmp_path / "b"), "--no-progress"])
    assert res.exit_code == 0 and res.stderr == ""
    assert (tmp_path / "b" / "report.md").read_text() == (tmp_path / "a" / "report.md").read_text()
